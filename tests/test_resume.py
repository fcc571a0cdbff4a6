"""Resuming training: an interrupted run, resumed, ends with the uninterrupted run's weights;
a resume under a config that does not fit its checkpoint is refused."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch

from pipeline.config import RunConfig, load_config, to_dict
from pipeline.runs import run_dir_of
from stages import artifacts
from stages.errors import ArtifactError, ConfigError, TrainingInterrupted
from stages.model.checkpoint import load_checkpoint
from stages.train import trainer
from stages.train.state import ResumeOptions, check_resume
from stages.train.trainer import run_train


def _train(cfg: RunConfig, out_dir: Path, resume: ResumeOptions | None = None) -> dict[str, Any]:
    run_dir = run_dir_of(cfg)
    return run_train(
        cfg.model, cfg.training, run_dir / artifacts.TOKENIZE_DIR, run_dir / artifacts.PREPARE_DIR, out_dir,
        cfg.seed, upstream={"data": to_dict(cfg.data), "tokenizer": to_dict(cfg.tokenizer)}, resume=resume,
    )


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, step: int) -> None:
    """Send this process SIGINT right after training step `step` of the next run."""
    real, calls = trainer.train_step, [0]

    def stepping(*args: Any, **kwargs: Any) -> tuple[float, dict[str, float]]:
        out = real(*args, **kwargs)
        calls[0] += 1
        if calls[0] == step:
            os.kill(os.getpid(), signal.SIGINT)
        return out

    monkeypatch.setattr(trainer, "train_step", stepping)


def _history(out_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out_dir / artifacts.HISTORY).read_text().splitlines()]


def test_interrupted_and_resumed_training_ends_with_the_same_weights(
    tokenized_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Dropout draws from torch's generator; 64-pair batches make 7 steps an epoch, so the
    # run crosses an epoch boundary (a new shuffled batch order) after the first resume.
    cfg = load_config(tokenized_run, [
        "model.dropout=0.3", "training.batch_type=sentences", "training.batch_sentences=64",
        "training.max_steps=11", "training.epochs=3", "training.valid_every=4", "training.keep_best=2",
    ])
    whole = _train(cfg, tmp_path / "whole")
    assert whole["steps"] == 11 and whole["epochs"] == 2

    # Interrupted between validations (step 5), then right after a validation (step 8).
    _interrupt_at(monkeypatch, 5)
    with pytest.raises(TrainingInterrupted, match="stopped by SIGINT at step 5"):
        _train(cfg, tmp_path / "parts")
    state = json.loads((tmp_path / "parts" / "last" / artifacts.CKPT_TRAIN_STATE).read_text())
    assert state["loop"]["step"] == 5 and state["loop"]["batch_in_epoch"] == 5
    _interrupt_at(monkeypatch, 3)
    with pytest.raises(TrainingInterrupted, match="at step 8"):
        _train(cfg, tmp_path / "parts", ResumeOptions())
    monkeypatch.undo()
    parts = _train(cfg, tmp_path / "parts", ResumeOptions())
    assert parts["steps"] == 11 and parts["resumed_from_step"] == 8

    for name in ("last", "best"):
        a, _, _, _ = load_checkpoint(tmp_path / "whole" / name)
        b, _, _, _ = load_checkpoint(tmp_path / "parts" / name)
        for (key, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), f"{name}: {key}"
    strip = ("tokens_per_s", "elapsed_s")
    assert [{k: v for k, v in h.items() if k not in strip} for h in _history(tmp_path / "parts")] == [
        {k: v for k, v in h.items() if k not in strip} for h in _history(tmp_path / "whole")
    ]
    assert sorted(p.name for p in (tmp_path / "parts" / "top").iterdir()) == sorted(
        p.name for p in (tmp_path / "whole" / "top").iterdir()
    )


def _saved_config(folder: Path, cfg: RunConfig) -> None:
    """A train_state.json recording `cfg`, as training would have written it."""
    folder.mkdir(parents=True)
    config = {"seed": cfg.seed, **{s: to_dict(getattr(cfg, s)) for s in ("data", "tokenizer", "model", "training")}}
    (folder / artifacts.CKPT_TRAIN_STATE).write_text(json.dumps({"format_version": 1, "config": config}))


def _now(cfg: RunConfig) -> dict[str, Any]:
    return {"seed": cfg.seed, **{s: to_dict(getattr(cfg, s)) for s in ("data", "tokenizer", "model", "training")}}


def test_resume_refuses_a_changed_config_and_needs_a_flag_for_a_changed_lr(tmp_path: Path) -> None:
    cfg = RunConfig()
    _saved_config(tmp_path / "last", cfg)
    check_resume(tmp_path / "last", _now(cfg), ResumeOptions())
    check_resume(tmp_path / "last", _now(dataclasses.replace(
        cfg, training=dataclasses.replace(cfg.training, patience=3, max_minutes=1.0))), ResumeOptions())

    def changed(section: str, **values: Any) -> RunConfig:
        return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **values)})

    for new, message in (
        (changed("model", encoder_hidden=128), "model.encoder_hidden changed from 256 to 128"),
        (changed("model", decoder_self_attention=True), "model.decoder_self_attention changed from false to true"),
        (changed("data", max_words=80), "data.max_words changed from 150 to 80"),
        (changed("tokenizer", vocab_size=900), "tokenizer.vocab_size changed from 4000 to 900"),
        (dataclasses.replace(cfg, seed=1), "seed changed from 1234 to 1"),
        (changed("training", batch_tokens=1000), "training.batch_tokens changed from 2048 to 1000"),
    ):
        for options in (ResumeOptions(), ResumeOptions(allow_lr_change=True)):
            with pytest.raises(ConfigError, match=message):
                check_resume(tmp_path / "last", _now(new), options)
    for new, message in (
        (changed("training", lr=0.001), "training.lr changed from 0.003 to 0.001"),
        (changed("training", schedule="plateau"), "training.schedule changed from linear to plateau"),
        # the length of a linear schedule
        (changed("training", max_steps=3000), "training.max_steps changed from 2400 to 3000"),
    ):
        with pytest.raises(ConfigError, match=f"{message} .*pass --allow-lr-change"):
            check_resume(tmp_path / "last", _now(new), ResumeOptions())
        check_resume(tmp_path / "last", _now(new), ResumeOptions(allow_lr_change=True))
    with pytest.raises(ArtifactError, match="no training state to resume from"):
        check_resume(tmp_path / "nowhere", _now(cfg), ResumeOptions())


def test_who_holds_a_runs_lock_is_read_without_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins
    import errno
    import fcntl
    import json as json_module

    from pipeline import runs

    lock = tmp_path / runs.LOCK
    lock.write_text(json_module.dumps({"pid": 7, "command": "s2s run"}), encoding="utf-8")
    held = open(lock, encoding="utf-8")
    fcntl.flock(held, fcntl.LOCK_EX)

    def read_only(path: object, mode: str = "r", *args: object, **kwargs: object) -> object:
        if any(flag in mode for flag in "wa+"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return builtins.open(path, mode, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(runs, "open", read_only, raising=False)
    try:
        assert runs.lock_holder(tmp_path) == {"pid": 7, "command": "s2s run"}
    finally:
        held.close()
    assert runs.lock_holder(tmp_path) is None


def test_tokenize_rerun_on_the_same_inputs_writes_the_same_bytes(tokenized_run: Path, tmp_path: Path) -> None:
    """Otherwise a forced tokenize (or two runs of one config) would count the trained
    model as out of date, and `s2s average` would refuse runs trained alike."""
    from pipeline.config import load_config
    from pipeline.manifest import hash_outputs
    from stages.corpus.tokenization import run_tokenize

    cfg = load_config(tokenized_run)
    run_dir = tokenized_run.parent / "runs" / "tiny"
    for name in ("again", "and-again"):
        run_tokenize(cfg.tokenizer, run_dir / artifacts.PREPARE_DIR, tmp_path / name / artifacts.TOKENIZE_DIR, cfg.seed)
    first, second = (hash_outputs(tmp_path / name, artifacts.TOKENIZE_DIR) for name in ("again", "and-again"))
    assert first == second and len(first) > 2
    assert first == {k: v for k, v in hash_outputs(run_dir, artifacts.TOKENIZE_DIR).items()}
