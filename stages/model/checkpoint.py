"""Checkpoints without pickle: weights in safetensors, everything else in JSON.

A checkpoint is a folder holding `model.safetensors`, `meta.json` and the
SentencePiece models it was trained with, whose hashes `meta.json` records.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from pathlib import Path
from typing import Any, Callable

import sentencepiece as spm
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stages import artifacts
from stages.errors import ArtifactError, ConfigError, as_yaml
from stages.files import atomic_dir, sha256_file
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq

FORMAT_VERSION = 1


def save_checkpoint(
    target: Path, model: Seq2Seq, spm_dir: Path, extra: dict[str, Any],
    write_more: Callable[[Path], None] | None = None,
) -> None:
    """Write a complete checkpoint folder atomically (built aside, then renamed);
    `write_more(folder)` adds files to it (the training state of `last`)."""
    with atomic_dir(target) as tmp:
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        for alias in model.tied_weights():  # the same storage as another tensor saved
            state.pop(alias)
        save_weights(state, tmp / artifacts.CKPT_WEIGHTS)
        hashes = {}
        for name in (artifacts.SPM_SRC, artifacts.SPM_TGT):
            shutil.copyfile(spm_dir / name, tmp / name)
            hashes[name] = sha256_file(tmp / name)
        meta = {
            "format_version": FORMAT_VERSION,
            "model": dataclasses.asdict(model.cfg),
            "src_vocab": model.encoder.embed.num_embeddings,
            "tgt_vocab": model.tgt_embed.num_embeddings,
            "tokenizer_sha256": hashes,
            **extra,
        }
        (tmp / artifacts.CKPT_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
        if write_more is not None:
            write_more(tmp)


def save_weights(state: dict[str, torch.Tensor], path: Path) -> None:
    """`safetensors` save of `state`; its I/O failures (a SafetensorError naming "os error
    N") raised as the OSError they are, so the caller's write handling names the output."""
    try:
        save_file(state, str(path))
    except SafetensorError as exc:
        code = re.search(r"os error (\d+)", str(exc))
        if code is None:
            raise
        raise OSError(int(code.group(1)), os.strerror(int(code.group(1))), str(path)) from exc


DAMAGED_HINT = "the checkpoint folder is damaged or not one s2s wrote: retrain, or restore it from a copy"


def read_meta(folder: Path) -> dict[str, Any]:
    """A checkpoint's meta.json, checked for the keys loading needs."""
    meta_path = folder / artifacts.CKPT_META
    if not folder.is_dir():
        raise ArtifactError(f"{folder}: no such checkpoint folder; train the run first, or give a checkpoint folder")
    if not meta_path.exists():
        for inner, what in ((folder / artifacts.TRAIN_DIR, "a run folder"), (folder, "a training folder")):
            if (inner / artifacts.CKPT_BEST / artifacts.CKPT_META).exists():
                raise ArtifactError(f"{folder}: {what}, not a checkpoint; give one of its checkpoint folders, such "
                                    f"as {inner / artifacts.CKPT_BEST} or {inner / artifacts.CKPT_TOP}/stepN")
        raise ArtifactError(f"{folder}: not a checkpoint (no {artifacts.CKPT_META}); train the run first")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{meta_path}: not valid JSON ({exc}); {DAMAGED_HINT}") from exc
    missing = [k for k in ("model", "src_vocab", "tgt_vocab", "tokenizer_sha256") if not isinstance(meta, dict)
               or k not in meta]
    if missing:
        raise ArtifactError(f"{meta_path}: no {', '.join(missing)} in it; {DAMAGED_HINT}")
    wrong = _meta_problem(meta)
    if wrong:
        raise ArtifactError(f"{meta_path}: {wrong}; {DAMAGED_HINT}")
    return dict(meta)


def _meta_problem(meta: dict[str, Any]) -> str:
    """What is wrong with the fields of a meta.json that has them all ("" when nothing)."""
    def count(value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0

    if not isinstance(meta["model"], dict):
        return f"\"model\" is {json.dumps(meta['model'])[:60]}, not a mapping of keys"
    if not (count(meta["src_vocab"]) and count(meta["tgt_vocab"])):
        return "\"src_vocab\" and \"tgt_vocab\" must be piece counts"
    hashes = meta["tokenizer_sha256"]
    if not isinstance(hashes, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in hashes.items()):
        return f"\"tokenizer_sha256\" is {json.dumps(hashes)[:60]}, not file names with their hashes"
    data = meta.get("data", {})
    if not isinstance(data, dict):
        return f"\"data\" is {json.dumps(data)[:60]}, not a mapping of keys"
    if "context" in data and not count(data["context"]):
        return f"\"data\": context is {json.dumps(data['context'])}, not a count of previous lines"
    pieces = meta.get("output_pieces")
    if pieces is not None and not (isinstance(pieces, list) and all(count(p) and p < meta["tgt_vocab"]
                                                                    for p in pieces)):
        return f"\"output_pieces\" must be target piece ids below tgt_vocab ({meta['tgt_vocab']})"
    return ""


def _read_weights(folder: Path) -> dict[str, torch.Tensor]:
    return read_tensors(folder / artifacts.CKPT_WEIGHTS)


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """A safetensors file of a checkpoint folder; an error naming it when it is missing or damaged."""
    if not path.is_file():
        raise ArtifactError(f"{path}: missing; {DAMAGED_HINT}")
    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for truncated or foreign files
        raise ArtifactError(f"{path}: not a readable safetensors file ({type(exc).__name__}: "
                            f"{str(exc)[:200]}); {DAMAGED_HINT}") from exc
    for name, tensor in tensors.items():  # s2s never saves NaN or inf: the search would index with them
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ArtifactError(f"{path}: tensor {name!r} holds NaN or infinite values; {DAMAGED_HINT}")
    return tensors


def _model_of(folder: Path, meta: dict[str, Any], state: dict[str, torch.Tensor]) -> Seq2Seq:
    """The model meta.json describes, with the weights `state`; an error naming the
    files where the two do not fit."""
    try:
        cfg = ModelConfig(**meta["model"])  # keys added since the checkpoint was written take their defaults
        model = Seq2Seq(cfg, int(meta["src_vocab"]), int(meta["tgt_vocab"]))
    except (TypeError, ValueError, KeyError) as exc:
        raise ArtifactError(f"{folder / artifacts.CKPT_META}: not a model this version of s2s can build "
                            f"({exc}); {DAMAGED_HINT}") from exc
    for alias, saved in model.tied_weights().items():
        if saved in state:
            state[alias] = state[saved]
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise ArtifactError(f"{folder / artifacts.CKPT_WEIGHTS}: its weights do not fit the model of "
                            f"{artifacts.CKPT_META} ({detail}); {DAMAGED_HINT}") from exc
    return model


def _processor(path: Path, pieces: int) -> spm.SentencePieceProcessor:
    try:
        processor = spm.SentencePieceProcessor(model_file=str(path))
    except (OSError, RuntimeError) as exc:
        raise ArtifactError(f"{path}: not a SentencePiece model ({exc}); {DAMAGED_HINT}") from exc
    if processor.get_piece_size() != pieces:
        raise ArtifactError(f"{path}: {processor.get_piece_size()} pieces, but the model's embeddings have "
                            f"{pieces}; {DAMAGED_HINT}")
    return processor


def check_tokenizer(folder: Path, spm_dir: Path) -> None:
    """Refuse a checkpoint whose tokenizer differs from the one in `spm_dir`."""
    expected = read_meta(folder)["tokenizer_sha256"]
    for name, digest in expected.items():
        other = spm_dir / name
        if other.exists() and sha256_file(other) != digest:
            raise ArtifactError(
                f"{other} differs from the tokenizer checkpoint {folder} was trained with; "
                f"retrain, or translate with the checkpoint's own {name}"
            )


def check_architecture(cfg: ModelConfig, folder: Path) -> None:
    """Refuse a `training.init_from` checkpoint whose model section differs from `cfg`
    in anything but dropout (ConfigError naming every key that differs)."""
    mine, theirs = dataclasses.asdict(cfg), read_meta(folder)["model"]
    differ = [k for k in mine if k in theirs and mine[k] != theirs[k] and "dropout" not in k]
    if differ:
        shown = ", ".join(f"model.{k}: {theirs[k]!r} there, {mine[k]!r} here" for k in differ)
        raise ConfigError(f"training.init_from: {folder} is another architecture ({shown}); fine-tuning keeps "
                          f"the parent's architecture: copy its model section (dropout may differ)")


def initialize_from(model: Seq2Seq, folder: Path, tokenize_dir: Path) -> dict[str, Any]:
    """Copy the weights of checkpoint `folder` into `model` (fine-tuning: training.init_from)
    after checking that both use the same SentencePiece models and architecture; returns
    the parent's record for the training summary. Dropout may differ."""
    meta = read_meta(folder)
    for name in (artifacts.SPM_SRC, artifacts.SPM_TGT):
        ours = tokenize_dir / name
        if sha256_file(ours) != meta["tokenizer_sha256"].get(name):
            raise ArtifactError(
                f"{ours} differs from {folder / name}, the tokenizer of training.init_from's model; fine-tuning "
                f"needs the parent's SentencePiece models: leave tokenizer.from_run empty (it then takes "
                f"training.init_from's) or set it to the same run"
            )
    check_architecture(model.cfg, folder)
    model.load_state_dict(_model_of(folder, meta, _read_weights(folder)).state_dict())
    return {"checkpoint": str(folder), "step": meta.get("step"),
            "weights_sha256": sha256_file(folder / artifacts.CKPT_WEIGHTS)}


def load_checkpoint(folder: Path, device: str = "cpu") -> tuple[Seq2Seq, spm.SentencePieceProcessor, spm.SentencePieceProcessor, dict[str, Any]]:
    """Load model and tokenizers, checking that the tokenizer files match their hashes."""
    meta = read_meta(folder)
    for name in (artifacts.SPM_SRC, artifacts.SPM_TGT):
        path, digest = folder / name, meta["tokenizer_sha256"].get(name)
        if not path.exists() or sha256_file(path) != digest:
            raise ArtifactError(
                f"{path}: tokenizer missing or not the one this checkpoint was trained with; "
                f"the checkpoint folder is damaged, retrain or restore it"
            )
    model = _model_of(folder, meta, _read_weights(folder))
    model.to(device).eval()
    sp_src = _processor(folder / artifacts.SPM_SRC, int(meta["src_vocab"]))
    sp_tgt = _processor(folder / artifacts.SPM_TGT, int(meta["tgt_vocab"]))
    return model, sp_src, sp_tgt, meta


def _check_average_target(folders: list[Path], target: Path) -> None:
    """The average goes to a new folder: never over one of its inputs, nor over a run's
    own best/last checkpoint, which its manifest records (a changed one makes the run's
    training stage out of date)."""
    where = target.resolve()
    for folder in folders:
        inside = folder.resolve()
        if where == inside or where in inside.parents or inside in where.parents:
            raise ArtifactError(
                f"-o {target} is, holds or lies in {folder}, one of the checkpoints being averaged; "
                f"write the average to a new folder"
            )
    if target.exists():
        raise ArtifactError(f"-o {target} already exists, and writing the average would replace everything in "
                            f"it; give a new folder, or delete that one first")
    stage_folders = (artifacts.PREPARE_DIR, artifacts.TOKENIZE_DIR, artifacts.TRAIN_DIR, artifacts.TRANSLATE_DIR,
                     artifacts.SCORE_DIR)
    for run in where.parents:
        if (run / artifacts.MANIFEST).exists() and where.relative_to(run).parts[0] in stage_folders:
            raise ArtifactError(
                f"-o {target} lies in run {run}'s stage folder {where.relative_to(run).parts[0]}/, which a rerun "
                f"empties; write the average elsewhere (e.g. {run / 'average'}) and translate with --checkpoint FOLDER"
            )
    seen = [f.resolve() for f in folders]
    twice = next((f for i, f in enumerate(folders) if seen[i] in seen[:i]), None)
    if twice is not None:
        raise ArtifactError(f"{twice} is given twice, which would count its weights double; give each checkpoint once")


def average_checkpoints(folders: list[Path], target: Path) -> dict[str, Any]:
    """Average the weights of checkpoints of one model (same config and tokenizer).

    The result is a complete checkpoint folder (weights, meta, tokenizer models).
    """
    if len(folders) < 2:
        raise ArtifactError("give two or more checkpoint folders to average (one alone averages to itself)")
    _check_average_target(folders, target)
    metas = [load_checkpoint(f)[3] for f in folders]  # every input checked whole before anything is written
    for folder, meta in zip(folders[1:], metas[1:]):
        for key in ("model", "src_vocab", "tgt_vocab", "tokenizer_sha256", "data"):
            if key == "data" and not ("data" in meta and "data" in metas[0]):
                continue  # a checkpoint written before checkpoints recorded their data keys
            if meta[key] != metas[0][key]:
                what = key
                if isinstance(meta[key], dict):
                    keys = sorted(k for k in {**meta[key], **metas[0][key]} if meta[key].get(k) != metas[0][key].get(k))
                    what = f"{key} ({', '.join(f'{k}: {as_yaml(metas[0][key].get(k))} against {as_yaml(meta[key].get(k))}' for k in keys)})"
                raise ArtifactError(
                    f"{folder}: its {what} differs from {folders[0]}'s; only checkpoints of the same "
                    f"model and tokenizer can be averaged"
                )
    digests = [sha256_file(f / artifacts.CKPT_WEIGHTS) for f in folders]
    for i, digest in enumerate(digests):
        if digest in digests[:i]:
            raise ArtifactError(f"{folders[i]} holds the same weights as {folders[digests.index(digest)]} (one "
                                f"checkpoint under two names: train/best and train/last are copies when the last "
                                f"validation was the best), which would count them double; give each checkpoint once")
    total: dict[str, Any] = {}
    for folder in folders:
        for name, tensor in _read_weights(folder).items():
            value = tensor.double()
            total[name] = value if name not in total else total[name] + value
    averaged = {name: (value / len(folders)).to(torch.float32).contiguous() for name, value in total.items()}
    with atomic_dir(target) as tmp:
        save_weights(averaged, tmp / artifacts.CKPT_WEIGHTS)
        for name in metas[0]["tokenizer_sha256"]:
            shutil.copyfile(folders[0] / name, tmp / name)
        meta = {**metas[0], "averaged_from": [str(f) for f in folders],
                "step": [m.get("step") for m in metas], "dev": None}
        data = next((m["data"] for m in metas if "data" in m), None)  # the first may predate the data keys
        if data is not None:
            meta["data"] = data
        (tmp / artifacts.CKPT_META).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return {"checkpoints": len(folders), "tensors": len(averaged)}
