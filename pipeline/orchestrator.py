"""Order the stages, fingerprint them, skip the up-to-date ones, keep the manifest.

Each stage reads its declared inputs, writes only into its own folder of the run
directory and returns a summary; only this module touches the manifest.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import yaml

from pipeline.config import RunConfig, dump_yaml, load_config, section_hash, to_dict
from pipeline.embedded import resolve_path
from pipeline.manifest import Manifest, hash_outputs, library_versions
from pipeline.runs import checkpoint_folder, find_run, run_dir_of, run_lock
from stages import artifacts
from stages.corpus.prepare import input_files, run_prepare
from stages.corpus.tokenization import run_tokenize
from stages.decode.scoring import run_score
from stages.decode.translation import run_translate
from stages.errors import (
    ArtifactError,
    ConfigError,
    S2SError,
    TrainingInterrupted,
)
from stages.files import (
    sha256_file,
    write_error,
    write_failure,
    write_json_atomic,
    write_text_atomic,
)
from stages.later_keys import earlier_forms
from stages.model.checkpoint import check_architecture, load_checkpoint, read_meta
from stages.train import distributed
from stages.train.state import (
    ResumeOptions,
    check_resume,
    config_changes,
    section_changes,
)
from stages.train.trainer import run_train

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Stage:
    name: str
    folder: str
    sections: tuple[str, ...]
    upstream: tuple[str, ...]
    run: Callable[[RunConfig, Path], dict[str, Any]]
    layout: int = 1  # raised when the stage's artifacts change shape, so older run folders redo it


def _prepare(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    return run_prepare(cfg.data, run_dir / artifacts.PREPARE_DIR, resolve_path, cfg.seed, cfg.num_proc)


def parent_checkpoint(ref: str, key: str, run_dir: Path) -> Path:
    """The checkpoint folder a `tokenizer.from_run` or `training.init_from` value names: a
    checkpoint folder, or a run (folder, name, or its config file) whose best checkpoint."""
    path = Path(ref).expanduser()
    if (path / artifacts.CKPT_META).is_file():
        folder = path
    else:
        try:
            folder = find_run(ref) / artifacts.TRAIN_DIR / artifacts.CKPT_BEST
        except ArtifactError as exc:
            raise ConfigError(f"{key}={ref}: {exc}") from None
    if folder.resolve() == (run_dir / artifacts.TRAIN_DIR / artifacts.CKPT_BEST).resolve() or \
            run_dir.resolve() in folder.resolve().parents:
        raise ConfigError(f"{key}={ref} is this run's own model, which training replaces; name another run")
    return folder


def check_parents(cfg: RunConfig, run_dir: Path) -> None:
    """Before any stage runs: `training.init_from` names a trained model of the same
    architecture (the error names that key, not the `tokenizer.from_run` it sets), and a
    `tokenizer.from_run` given
    beside it uses the same SentencePiece models, which the parent's weights need."""
    if not cfg.training.init_from:
        return
    parent = parent_checkpoint(cfg.training.init_from, "training.init_from", run_dir)
    check_architecture(cfg.model, parent)  # before tokenize reruns for a training that cannot start
    if not cfg.tokenizer.from_run or cfg.tokenizer.from_run == cfg.training.init_from:
        return
    tokenizer = parent_checkpoint(cfg.tokenizer.from_run, "tokenizer.from_run", run_dir)
    ours, theirs = read_meta(tokenizer)["tokenizer_sha256"], read_meta(parent)["tokenizer_sha256"]
    if ours != theirs:
        raise ConfigError(
            f"tokenizer.from_run={cfg.tokenizer.from_run} ({tokenizer}) has other SentencePiece models than "
            f"training.init_from={cfg.training.init_from} ({parent}), whose weights fit only their own; "
            f"leave tokenizer.from_run empty (fine-tuning takes the parent's)"
        )


def from_run_key(cfg: RunConfig) -> str:
    """The key to name for `tokenizer.from_run`: `training.init_from` when it was filled
    in from that key (fine-tuning keeps the parent's tokenizer)."""
    init = cfg.training.init_from
    return "training.init_from" if init and cfg.tokenizer.from_run == init else "tokenizer.from_run"


def _tokenize(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    reuse = parent_checkpoint(cfg.tokenizer.from_run, from_run_key(cfg), run_dir) if cfg.tokenizer.from_run else None
    return run_tokenize(
        cfg.tokenizer, run_dir / artifacts.PREPARE_DIR, run_dir / artifacts.TOKENIZE_DIR, cfg.seed, cfg.num_proc,
        reuse=reuse,
    )


def _train(cfg: RunConfig, run_dir: Path, resume: ResumeOptions | None = None) -> dict[str, Any]:
    init = cfg.training.init_from
    return run_train(
        cfg.model, cfg.training, run_dir / artifacts.TOKENIZE_DIR, run_dir / artifacts.PREPARE_DIR,
        run_dir / artifacts.TRAIN_DIR, cfg.seed, upstream=_upstream_config(cfg), resume=resume,
        init_from=parent_checkpoint(init, "training.init_from", run_dir) if init else None,
    )


def _upstream_config(cfg: RunConfig) -> dict[str, Any]:
    """The sections training's inputs come from, recorded so that a resume can check them."""
    return {"data": to_dict(cfg.data), "tokenizer": to_dict(cfg.tokenizer)}


def _say_what_retraining_discards(cfg: RunConfig, run_dir: Path, manifest: Manifest, echo: Callable[[str], None],
                                  forced: bool = False) -> None:
    """Training starts over and empties train/: say so when a trained model is there, and
    which keys changed since it was trained."""
    last = run_dir / artifacts.TRAIN_DIR / artifacts.CKPT_LAST
    if not last.is_dir():
        return
    changes = config_changes(last, _training_config(cfg))
    interrupted = manifest.stage("train").get("status") == "interrupted"
    why = ("--force train was given" if forced else
           "its training was interrupted" if interrupted else
           f"the config changed since it was trained ({'; '.join(changes[:5])})" if changes else
           "it is out of date (an earlier stage was redone, or its files changed)")
    echo(f"[train] {last.parent} holds a trained model, but {why}: training starts over and replaces it "
         f"(to continue it instead: s2s train CONFIG --resume, with the keys it was trained with)")


def _resumed(stage: Stage, resume: ResumeOptions) -> Stage:
    """The train stage, continuing from train/last instead of starting over."""
    return dataclasses.replace(stage, run=lambda cfg, run_dir: _train(cfg, run_dir, resume))


def decoding_checkpoint(cfg: RunConfig, run_dir: Path) -> Path:
    """The checkpoint folder `decoding.checkpoint` names (`pipeline.runs.checkpoint_folder`)."""
    return checkpoint_folder(run_dir, cfg.decoding.checkpoint)


def check_decoding_checkpoint(cfg: RunConfig, run_dir: Path) -> None:
    """Before any stage runs: a `decoding.checkpoint` folder is a checkpoint, so a
    translate stage that could not load it never empties its folder first."""
    if cfg.decoding.checkpoint in artifacts.RUN_CHECKPOINTS:
        return
    hint = "give best, last, or a checkpoint folder such as one `s2s average` wrote (relative to the working folder)"
    folder = decoding_checkpoint(cfg, run_dir)
    if not folder.is_dir():
        raise ConfigError(f"decoding.checkpoint={cfg.decoding.checkpoint}: no such folder; {hint}")
    try:
        load_checkpoint(folder)  # meta.json, the weights against it, the tokenizer models
    except ArtifactError as exc:
        raise ConfigError(f"decoding.checkpoint: {exc}; {hint}") from None


def _checkpoint_weights(cfg: RunConfig) -> str | None:
    """The sha256 of the weights in a `decoding.checkpoint` folder (None: no such file)."""
    weights = decoding_checkpoint(cfg, run_dir_of(cfg)) / artifacts.CKPT_WEIGHTS
    return sha256_file(weights) if weights.is_file() else None


def _translate(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    folder = decoding_checkpoint(cfg, run_dir).resolve()
    return run_translate(
        dataclasses.replace(cfg.decoding, checkpoint=str(folder)), run_dir / artifacts.TRAIN_DIR,
        run_dir / artifacts.TOKENIZE_DIR, run_dir / artifacts.PREPARE_DIR, run_dir / artifacts.TRANSLATE_DIR,
    )


def _score(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    return run_score(
        cfg.scoring, run_dir / artifacts.TRANSLATE_DIR, run_dir / artifacts.PREPARE_DIR, run_dir / artifacts.SCORE_DIR
    )


STAGES: tuple[Stage, ...] = (
    Stage("prepare", artifacts.PREPARE_DIR, ("data",), (), _prepare, layout=2),  # 2: Arrow tables
    Stage("tokenize", artifacts.TOKENIZE_DIR, ("tokenizer",), ("prepare",), _tokenize, layout=2),
    Stage("train", artifacts.TRAIN_DIR, ("model", "training"), ("tokenize", "prepare"), _train),
    Stage("translate", artifacts.TRANSLATE_DIR, ("decoding",), ("train", "tokenize", "prepare"), _translate),
    Stage("score", artifacts.SCORE_DIR, ("scoring",), ("translate", "prepare"), _score),
)
STAGE_NAMES = tuple(s.name for s in STAGES)


def fingerprint(stage: Stage, cfg: RunConfig, manifest: Manifest) -> str:
    """Hash of the stage's config sections, the seed, upstream fingerprints and inputs."""
    return known_fingerprints(stage, cfg, manifest)[0]


def known_fingerprints(stage: Stage, cfg: RunConfig, manifest: Manifest) -> list[str]:
    """`fingerprint`, then the fingerprints that runs made before later config keys
    existed recorded for the same config (`stages.later_keys`): any of them is current.
    The prepare stage hashes its input files by content; runs made before keyed them by
    their path as resolved from the working directory, which stays current too."""
    sections = {s: to_dict(getattr(cfg, s)) for s in stage.sections}
    by_content = _parents_by_content(sections)
    forms = [*earlier_forms(by_content), *earlier_forms(sections)] if by_content != sections else earlier_forms(sections)
    if stage.name != "prepare":
        outside = _outside_files(stage, cfg)  # read once for every form
        return [_hash(stage, cfg, manifest, form, outside) for form in forms]
    files = _input_hashes(cfg)
    keyed = ([sha for _, sha in files], {path: sha for path, sha in files})
    return [_hash(stage, cfg, manifest, form, {"inputs": inputs}) for inputs in keyed for form in forms]


def _parents_by_content(sections: dict[str, Any]) -> dict[str, Any]:
    """`sections` with a `training.init_from` or `tokenizer.from_run` value left out: the
    parent counts by its files, which `_hash` hashes, not by how it is named (a run's
    name, its folder or its config name the same parent). Runs made before hashed the
    value as given; those fingerprints stay current (`known_fingerprints`)."""
    out = copy.deepcopy(sections)
    for section, key in (("training", "init_from"), ("tokenizer", "from_run")):
        if out.get(section, {}).get(key):
            out[section][key] = "(the parent's files)"
    return out


def _outside_files(stage: Stage, cfg: RunConfig) -> dict[str, Any]:
    """The hashes of files outside the run that `stage` reads, as fingerprint parts: the
    prepare stage's input files ("inputs", by content), a parent model's
    (`tokenizer.from_run`, `training.init_from`; retrained since: out of date) and a
    `decoding.checkpoint` folder's weights (averaged again since: redo)."""
    out: dict[str, Any] = {}
    if stage.name == "prepare":
        out["inputs"] = [sha for _, sha in _input_hashes(cfg)]
    parent = {"tokenize": (from_run_key(cfg), cfg.tokenizer.from_run, (artifacts.SPM_SRC, artifacts.SPM_TGT)),
              "train": ("training.init_from", cfg.training.init_from, (artifacts.CKPT_WEIGHTS,))}.get(stage.name)
    if parent and parent[1]:
        folder = parent_checkpoint(parent[1], parent[0], run_dir_of(cfg))
        out["parent"] = {name: sha256_file(folder / name) for name in parent[2] if (folder / name).is_file()}
    if stage.name == "translate" and cfg.decoding.checkpoint not in artifacts.RUN_CHECKPOINTS:
        out["checkpoint"] = _checkpoint_weights(cfg)
    return out


def _hash(stage: Stage, cfg: RunConfig, manifest: Manifest, sections: dict[str, Any], files: dict[str, Any]) -> str:
    """The fingerprint of `stage` over `sections`, its upstream stages' records and
    `files`: the hashes of what it reads from elsewhere (prepare: its input files as
    "inputs"; `_outside_files` for the others)."""
    parts: dict[str, Any] = {**sections, **files}
    parts["seed"] = cfg.seed
    if stage.layout > 1:
        parts["layout"] = stage.layout
    for up in stage.upstream:
        entry = manifest.stage(up)
        parts[f"upstream:{up}"] = [entry.get("fingerprint"), entry.get("outputs")]
    return section_hash(parts)


def run_pipeline(
    cfg: RunConfig,
    until: str = "score",
    force: tuple[str, ...] = (),
    echo: Callable[[str], None] = print,
    resume: ResumeOptions | None = None,
    command: str = "",
) -> Manifest:
    """Run every stage up to `until`, skipping those whose fingerprint and outputs match.

    With `resume`, the train stage always runs, continuing from train/last (its folder
    is kept); a config that does not fit that checkpoint is refused before any stage runs.
    The run folder is locked meanwhile (`command` names the holder to a second writer).
    """
    run_dir = run_dir_of(cfg)
    if resume is not None and STAGE_NAMES.index(until) < STAGE_NAMES.index("train"):
        resume = None  # nothing to resume before training
    ranks = distributed.from_env()
    if ranks.active and not ranks.main:
        return _follow_main(cfg, until, resume, ranks)
    if resume is not None:  # refused before the run folder is made or locked
        _check_resume(cfg, run_dir, resume)
    if STAGE_NAMES.index(until) >= STAGE_NAMES.index("tokenize"):
        check_parents(cfg, run_dir)
    if STAGE_NAMES.index(until) >= STAGE_NAMES.index("translate"):
        check_decoding_checkpoint(cfg, run_dir)
    with run_lock(run_dir, command or f"s2s {until}"):
        return _run_locked(cfg, run_dir, until, force, echo, resume, ranks)


def _run_locked(
    cfg: RunConfig, run_dir: Path, until: str, force: tuple[str, ...], echo: Callable[[str], None],
    resume: ResumeOptions | None, ranks: distributed.Ranks,
) -> Manifest:
    if resume is not None:  # again, now that no other writer can change it
        _check_resume(cfg, run_dir, resume)
    manifest = Manifest.load(run_dir)
    manifest.data.update(
        name=cfg.name, seed=cfg.seed, config_hash=section_hash(to_dict(cfg)), versions=library_versions()
    )
    write_json_atomic(run_dir / artifacts.RESOLVED_CONFIG, to_dict(cfg))
    write_text_atomic(run_dir / artifacts.RESOLVED_CONFIG_YAML, dump_yaml(cfg))
    for stage in STAGES:
        known = known_fingerprints(stage, cfg, manifest)
        fp = known[0]
        resuming = resume is not None and stage.name == "train"
        current = not resuming and stage.name not in force and manifest.is_current(stage.name, known, run_dir,
                                                                                    stage.folder)
        if stage.name == "train":
            distributed.from_main(ranks, not current)  # tell the other ranks whether to train
        if resuming and resume is not None:
            _run_stage(_resumed(stage, resume), cfg, run_dir, manifest, fp, echo, keep_folder=True)
        elif current:
            echo(f"[{stage.name}] up to date, skipped")
        else:
            if stage.name == "train":
                _say_what_retraining_discards(cfg, run_dir, manifest, echo, forced="train" in force)
            _run_stage(stage, cfg, run_dir, manifest, fp, echo)
        if stage.name == until:
            break
    return manifest


def _training_config(cfg: RunConfig) -> dict[str, Any]:
    """What a training state records of the config: seed, model, training and its inputs' sections."""
    return {"seed": cfg.seed, "model": to_dict(cfg.model), "training": to_dict(cfg.training), **_upstream_config(cfg)}


def _check_resume(cfg: RunConfig, run_dir: Path, resume: ResumeOptions) -> None:
    check_resume(run_dir / artifacts.TRAIN_DIR / artifacts.CKPT_LAST, _training_config(cfg), resume)


def stale_stages(run_dir: Path, manifest: Manifest, cfg: RunConfig | None = None) -> dict[str, str]:
    """Stages recorded as done that the next run would redo, each with the reason: their
    inputs have changed since (an upstream stage reran, or the config changed their
    section: `cfg`, else the run's latest config, not checked when that cannot be read
    here), or their output files have (a file edited or removed by hand), and every stage
    after such a one (a run skips those again when the stage it redoes writes the same
    files as before)."""
    if cfg is None:
        try:
            cfg = load_config(run_dir / artifacts.RESOLVED_CONFIG_YAML)
        except S2SError:
            cfg = None
    stale: dict[str, str] = {}
    for stage in STAGES:
        entry = manifest.stage(stage.name)
        if entry.get("status") != "done":
            continue
        if stale:
            stale[stage.name] = f"after {next(iter(stale))}"
        elif cfg is None and (why := _rerun_upstream(stage, manifest)):
            stale[stage.name] = why
        elif cfg is not None and entry.get("fingerprint") not in known_fingerprints(stage, cfg, manifest):
            stale[stage.name] = (_changed_keys(stage, cfg, run_dir) or _changed_inputs(entry.get("inputs") or {}, cfg)
                                 or _rerun_upstream(stage, manifest) or _changed_checkpoint(entry, cfg)
                                 or "its inputs or settings changed since it ran")
        elif (outputs := hash_outputs(run_dir, stage.folder)) != entry.get("outputs"):
            stale[stage.name] = _changed_files(entry.get("outputs") or {}, outputs)
    return stale


def _input_hashes(cfg: RunConfig) -> list[tuple[str, str]]:
    """(path as resolved, sha256) of each local input file of the data section, in order."""
    return [(str(path), sha256_file(path)) for path in input_files(cfg.data, resolve_path) if path.exists()]


def _changed_inputs(recorded: dict[str, str], cfg: RunConfig) -> str:
    """The input files whose content differs from what prepare recorded reading."""
    changed = [name for name, sha in _input_hashes(cfg) if name in recorded and recorded[name] != sha]
    return f"input file changed: {', '.join(changed)}" if changed else ""


def _changed_checkpoint(entry: dict[str, Any], cfg: RunConfig) -> str:
    """For a translation from a `decoding.checkpoint` folder, that its weights changed
    since (averaged again, say), as a reason; '' otherwise."""
    recorded = entry.get("checkpoint_sha256")
    if recorded is None or _checkpoint_weights(cfg) == recorded:
        return ""
    return f"the weights in decoding.checkpoint ({cfg.decoding.checkpoint}) changed since it ran"


def _rerun_upstream(stage: Stage, manifest: Manifest) -> str:
    """The stages this one reads that started after it did (ran again since), as a
    reason; '' for stages recorded before the manifest counted their order."""
    order = int(manifest.stage(stage.name).get("order", 0))
    later = [up for up in STAGE_NAMES if up in stage.upstream and int(manifest.stage(up).get("order", 0)) > order]
    if not (order and later):
        return ""
    ended = {up: manifest.stage(up).get("status") for up in later}
    unfinished = [f"{up} {'failed' if s == 'failed' else 'was interrupted'}" for up, s in ended.items()
                  if s in ("failed", "interrupted", "running")]
    return (f"{' and '.join(unfinished)} since it ran" if unfinished
            else f"{' and '.join(later)} ran again since it ran")


def _changed_keys(stage: Stage, cfg: RunConfig, run_dir: Path) -> str:
    """`key: old -> new` for the keys where `cfg` differs from those the stage ran with:
    for training, the config its last checkpoint recorded; for another stage, the run's
    latest config file (a key missing there holds its earlier value,
    `stages.later_keys`). '' when none does or that cannot be read."""
    if stage.name == "train":
        changes = config_changes(run_dir / artifacts.TRAIN_DIR / artifacts.CKPT_LAST, _training_config(cfg))
        return "; ".join(changes)
    try:
        saved = yaml.safe_load((run_dir / artifacts.RESOLVED_CONFIG_YAML).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return ""
    config = {"seed": cfg.seed, **{section: to_dict(getattr(cfg, section)) for section in stage.sections}}
    return "; ".join(section_changes(saved if isinstance(saved, dict) else {}, config, ("seed", *stage.sections)))


def _changed_files(recorded: dict[str, str], now: dict[str, str]) -> str:
    """Which output files differ from those the stage recorded."""
    edited = [name for name in recorded if name in now and now[name] != recorded[name]]
    removed = [name for name in recorded if name not in now]
    added = [name for name in now if name not in recorded]
    parts = [f"{what} {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
             for what, names in (("edited", edited), ("removed", removed), ("added", added)) if names]
    return "outputs changed: " + "; ".join(parts)


def _follow_main(cfg: RunConfig, until: str, resume: ResumeOptions | None, ranks: distributed.Ranks) -> Manifest:
    """A rank other than 0 under torchrun: rank 0 prepares, tokenizes and keeps the
    books; this rank joins it for training only (if rank 0 trains), then stops."""
    run_dir = run_dir_of(cfg)
    if STAGE_NAMES.index(until) >= STAGE_NAMES.index("train") and distributed.from_main(ranks, False):
        _train(cfg, run_dir, resume)
    return Manifest.load(run_dir)


def _run_stage(
    stage: Stage, cfg: RunConfig, run_dir: Path, manifest: Manifest, fp: str, echo: Callable[[str], None],
    keep_folder: bool = False,
) -> None:
    echo(f"[{stage.name}] {'resuming' if keep_folder else 'running'}")
    previous = copy.deepcopy(manifest.data["stages"].get(stage.name))
    manifest.start(stage.name, fp)
    folder, aside = run_dir / stage.folder, run_dir / f".{stage.folder}.previous"
    if not keep_folder:
        # A rerun starts from an empty folder, so no file of an earlier run lingers among the outputs.
        # Except for training (an interrupted one leaves train/last to resume from), the earlier
        # outputs wait aside until the stage succeeds, and come back if it fails.
        shutil.rmtree(aside, ignore_errors=True)
        if stage.name != "train" and folder.is_dir():
            os.replace(folder, aside)
        shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    try:
        try:
            summary = stage.run(cfg, run_dir)
        except BaseException:
            if aside.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                os.replace(aside, folder)
            raise
        shutil.rmtree(aside, ignore_errors=True)
    except (S2SError, KeyboardInterrupt) as exc:
        by_user = isinstance(exc, (TrainingInterrupted, KeyboardInterrupt))  # not by a fault
        manifest.fail(stage.name, str(exc) or type(exc).__name__, time.perf_counter() - start,
                      "interrupted" if by_user else "failed")
        raise
    except Exception as exc:  # a bug, unless the disk refused a write: record it, keep the traceback
        failed = write_failure(exc)
        if failed is not None:
            error = write_error(run_dir / stage.folder, failed)
            manifest.fail(stage.name, str(error), time.perf_counter() - start)
            raise error from exc
        manifest.fail(stage.name, f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
        raise
    seconds = time.perf_counter() - start
    outputs = hash_outputs(run_dir, stage.folder)
    if keep_folder and _nothing_resumed(previous, outputs, summary):
        manifest.data["stages"][stage.name] = previous  # keep the record of the training that did run
        manifest.save()
        stopped = summary.get("stopped")
        more = "training.patience (0: never stop early)" if stopped == "early_stopping" else \
            "training.max_steps or training.epochs"
        echo(f"[{stage.name}] nothing to resume: training had already stopped at step {summary.get('steps')} "
             f"({stopped}); raise {more} to train on")
        return
    manifest.finish(stage.name, outputs, seconds, summary)
    if stage.name == "prepare":  # which input file changed, for `s2s status` to name
        manifest.data["stages"]["prepare"]["inputs"] = dict(_input_hashes(cfg))
        manifest.save()
    if stage.name == "translate" and cfg.decoding.checkpoint not in artifacts.RUN_CHECKPOINTS:
        manifest.data["stages"]["translate"]["checkpoint_sha256"] = _checkpoint_weights(cfg)  # for `s2s status`
        manifest.save()
    echo(f"[{stage.name}] done in {seconds:.1f}s: {_headline(stage.name, summary)}")


def _nothing_resumed(previous: dict[str, Any] | None, outputs: dict[str, str], summary: dict[str, Any]) -> bool:
    """A resume of a finished training: no step taken and its files unchanged."""
    return (
        previous is not None and previous.get("status") == "done" and previous.get("outputs") == outputs
        and summary.get("resumed_from_step") == summary.get("steps")
    )


def _headline(name: str, summary: dict[str, Any]) -> str:
    keys = {
        "prepare": ("pairs", "dropped", "context_halves"),
        "tokenize": ("src_vocab", "tgt_vocab"),
        "train": ("steps", "stopped", "target_tokens_per_s", "precision"),
        "translate": ("sentences", "sentences_per_s"),
        "score": ("bleu", "chrf", "bleu_signature"),
    }[name]
    optional = {"context_halves"}  # only in the summaries of runs that use them
    return ", ".join(f"{k}={summary.get(k)}" for k in keys if k in summary or k not in optional)
