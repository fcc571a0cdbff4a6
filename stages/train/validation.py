"""Validation during training: dev loss and BLEU, history, last/best/top checkpoints, patience."""

from __future__ import annotations

import json
import logging
import math
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np
import torch

from stages import artifacts
from stages.corpus.batching import TrainData
from stages.corpus.tokenization import load_processor
from stages.decode.config import DecodeConfig
from stages.decode.scoring import score_lines
from stages.decode.translation import translate_ids
from stages.devices import device_type
from stages.files import read_lines_strict, read_records, write_text_atomic
from stages.model.checkpoint import save_checkpoint
from stages.model.fast import search_step
from stages.model.seq2seq import Seq2Seq

if TYPE_CHECKING:
    from stages.train.config import TrainConfig

log = logging.getLogger(__name__)

WriteState = Callable[[Path], None]  # writes the training state into a checkpoint folder


class Validator:
    """Dev loss (teacher forced) and dev BLEU (greedy) for the current weights."""

    def __init__(self, tokenize_dir: Path, prepare_dir: Path, cfg: TrainConfig, device: str):
        self.data = TrainData.load(artifacts.split_ids(tokenize_dir, "dev"), max_len=0)
        self.batches = list(self.data.batches(cfg.batch_tokens, np.random.default_rng(0), multiple=cfg.pad_multiple))
        self.refs = read_lines_strict(artifacts.split_text(prepare_dir, "dev", artifacts.TGT_SUFFIX))
        self.src = [self.data.src[i].tolist()[:250] for i in range(len(self.data.src))]
        self.sp_tgt = load_processor(tokenize_dir / artifacts.SPM_TGT)
        self.cfg, self.device = cfg, device

    @torch.inference_mode()
    def __call__(self, model: Seq2Seq, amp: torch.dtype | None) -> dict[str, float]:
        model.eval()
        search_step.forget_tables(model)  # the weights moved since the last validation, unseen by the cache
        total, tokens = 0.0, 0
        dev_type = device_type(self.device)
        with torch.autocast(dev_type, dtype=amp or torch.bfloat16, enabled=amp is not None):
            for batch in self.batches:
                b = batch.to(self.device)
                total += float(model(b.src, b.src_lens, b.tgt_in, b.tgt_out, 0.0))
                tokens += b.n_tokens
            out: dict[str, float] = {"dev_loss": round(total / max(tokens, 1), 4)}
            out["dev_ppl"] = round(math.exp(min(out["dev_loss"], 50)), 2)
            if self.cfg.valid_bleu:
                keep = [i for i, s in enumerate(self.src) if s]
                hyp_ids = translate_ids(model, [self.src[i] for i in keep], DecodeConfig(beam_size=1), self.device)
                hyps = [""] * len(self.src)
                for i, ids in zip(keep, hyp_ids):
                    hyps[i] = self.sp_tgt.decode(ids)
                out["dev_bleu"] = score_lines(hyps, self.refs)["bleu"]
        model.train()
        return out


def dev_metric(choice: str, valid_bleu: bool) -> str:
    """The history key of a `*_metric` setting: `bleu` -> dev_bleu, `loss` -> dev_loss,
    `auto` -> the one that picks the best checkpoint (dev BLEU when training.valid_bleu)."""
    if choice == "auto":
        return "dev_bleu" if valid_bleu else "dev_loss"
    return f"dev_{choice}"


def out_of_patience(scores: list[float], higher_is_better: bool, patience: int) -> bool:
    """True once the last `patience` validations all failed to beat the best before them."""
    if patience <= 0 or len(scores) <= patience:
        return False
    best_before = max(scores[:-patience]) if higher_is_better else min(scores[:-patience])
    recent = scores[-patience:]
    return all(s <= best_before for s in recent) if higher_is_better else all(s >= best_before for s in recent)


CHECKPOINT_DATA_KEYS = ("src_lang", "tgt_lang", "context", "target_context")


class CheckpointKeeper:
    """Log validations to history.jsonl, save `last` (with the training state), and
    save `best` (and the `keep_best` top checkpoints) when dev improves."""

    def __init__(self, out_dir: Path, tokenize_dir: Path, cfg: TrainConfig, resume_step: int | None = None,
                 output_pieces: list[int] | None = None, data: dict[str, Any] | None = None):
        self.out_dir, self.tokenize_dir = out_dir, tokenize_dir
        # written into every checkpoint: the target pieces the model can produce (decoding.output_vocab), and
        # the data keys a translator of the folder alone needs (its languages and context)
        self.pieces: dict[str, Any] = {} if output_pieces is None else {"output_pieces": output_pieces}
        if data:
            self.pieces["data"] = {key: data[key] for key in CHECKPOINT_DATA_KEYS if key in data}
        self.key = dev_metric("auto", cfg.valid_bleu)
        self.best: dict[str, Any] = {}
        self.keep_best = cfg.keep_best
        self.top: list[tuple[float, int]] = []  # (score, step) of the checkpoints in train/top/
        out_dir.mkdir(parents=True, exist_ok=True)
        self.history = out_dir / artifacts.HISTORY
        if resume_step is None:
            self.history.unlink(missing_ok=True)
        else:
            _truncate_history(self.history, resume_step)

    def snapshot(self) -> dict[str, Any]:
        """What a resumed run needs to go on keeping checkpoints (JSON)."""
        return {"best": self.best, "top": [list(item) for item in self.top]}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.best = snapshot["best"]
        self.top = [(float(score), int(step)) for score, step in snapshot["top"]]

    def __call__(self, model: Seq2Seq, record: dict[str, Any], write_state: WriteState) -> None:
        """Log a validation `record`; save last, best and top checkpoints."""
        _append_jsonl(self.history, record)
        log.info("validation %s", json.dumps(record))
        extra = {"step": record["step"], "epoch": record["epoch"], "dev": record, **self.pieces}
        if self._improves(record):
            self.best = record
            save_checkpoint(self.out_dir / artifacts.CKPT_BEST, model, self.tokenize_dir, extra)
        if self.keep_best > 1:
            self._keep_top(model, record, extra)
        # Last, so that the training state it holds includes this validation's bookkeeping.
        save_checkpoint(self.out_dir / artifacts.CKPT_LAST, model, self.tokenize_dir, extra, write_state)

    def save_last(self, model: Seq2Seq, step: int, epoch: int, write_state: WriteState) -> None:
        """Save `last` with the training state, without validating (on an interruption)."""
        extra = {"step": step, "epoch": epoch, "dev": None, **self.pieces}
        save_checkpoint(self.out_dir / artifacts.CKPT_LAST, model, self.tokenize_dir, extra, write_state)

    def _keep_top(self, model: Seq2Seq, record: dict[str, Any], extra: dict[str, Any]) -> None:
        """Keep the `keep_best` best checkpoints as train/top/step<N> (for `s2s average`)."""
        sign = 1.0 if self.key == "dev_bleu" else -1.0
        self.top.append((sign * record[self.key], record["step"]))
        self.top.sort(key=lambda item: (-item[0], item[1]))
        folder = self.out_dir / artifacts.CKPT_TOP
        if (sign * record[self.key], record["step"]) in self.top[: self.keep_best]:
            save_checkpoint(folder / f"step{record['step']}", model, self.tokenize_dir, extra)
        for _, step in self.top[self.keep_best :]:
            shutil.rmtree(folder / f"step{step}", ignore_errors=True)
        self.top = self.top[: self.keep_best]

    def _improves(self, record: dict[str, Any]) -> bool:
        if not self.best:
            return True
        if self.key == "dev_bleu":
            return bool(record[self.key] > self.best[self.key])
        return bool(record[self.key] < self.best[self.key])


def _truncate_history(path: Path, last_step: int) -> None:
    """Drop history lines after `last_step` (written after the state being resumed)."""
    if not path.exists():
        return
    records = read_records(path)
    kept = [r for r in records if isinstance(r.get("step"), int) and r["step"] <= last_step]
    text = "".join(json.dumps(r) + "\n" for r in kept)
    if text != path.read_text(encoding="utf-8"):
        write_text_atomic(path, text)


def _append_jsonl(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
