"""Reduce-on-plateau and early stopping, driven by scripted dev scores."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from pipeline.config import load_config
from pipeline.runs import run_dir_of
from stages import artifacts
from stages.errors import ConfigError
from stages.train import trainer
from stages.train.config import TrainConfig
from stages.train.schedule import Plateau
from stages.train.trainer import run_train


def test_plateau_reduces_after_patience_bad_validations_down_to_min_lr() -> None:
    cfg = TrainConfig(lr=0.01, schedule="plateau", plateau_factor=0.5, plateau_patience=2, min_lr=0.003)
    plateau = Plateau()
    losses = [5.0, 4.0, 4.5, 4.2, 4.1, 3.9, 4.0, 4.0, 3.95, 3.95, 3.95, 3.95]
    reduced = [plateau.observe(loss, False, cfg) for loss in losses]
    # bad validations: 4.5, 4.2 -> reduce; 4.1 (bad 1), 3.9 best; 4.0, 4.0 -> reduce (to min_lr);
    # then at min_lr, never again
    assert reduced == [False, False, False, True, False, False, False, True, False, False, False, False]
    assert plateau.scale == pytest.approx(0.3) and plateau.best == 3.9
    bleu = Plateau()
    assert [bleu.observe(s, True, cfg) for s in (1.0, 2.0, 2.0, 1.5, 3.0)] == [False, False, False, True, False]


class _ScriptedValidator:
    """Stands in for Validator: the next scripted dev scores at each call."""

    script: list[dict[str, float]] = []

    def __init__(self, *args: Any) -> None:
        self.calls = 0

    def __call__(self, model: Any, amp: Any) -> dict[str, float]:
        self.calls += 1
        return dict(self.script[self.calls - 1])


def _train_scripted(
    tokenized_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: list[dict[str, float]],
    *overrides: str,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    monkeypatch.setattr(_ScriptedValidator, "script", script)
    monkeypatch.setattr(trainer, "Validator", _ScriptedValidator)
    cfg = load_config(tokenized_run, ["training.valid_every=1", "training.warmup_steps=0", *overrides])
    run_dir = run_dir_of(cfg)
    out = tmp_path / "train"
    summary = run_train(cfg.model, cfg.training, run_dir / artifacts.TOKENIZE_DIR, run_dir / artifacts.PREPARE_DIR,
                        out, cfg.seed)
    history = [json.loads(line) for line in (out / artifacts.HISTORY).read_text().splitlines()]
    return summary, history


def test_plateau_schedule_lowers_the_lr_in_training_and_logs_it(
    tokenized_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    losses = [5.0, 4.0, 4.5, 4.2, 4.1, 3.9, 4.0, 4.0]
    _, history = _train_scripted(
        tokenized_run, tmp_path, monkeypatch, [{"dev_loss": x, "dev_bleu": 1.0} for x in losses],
        "training.max_steps=8", "training.lr=0.01", "training.schedule=plateau", "training.plateau_metric=loss",
        "training.plateau_patience=2", "training.min_lr=0.003",
    )
    assert [h["lr"] for h in history] == pytest.approx([0.01] * 4 + [0.005] * 4)
    assert {h["step"]: h["lr_reduced_to"] for h in history if "lr_reduced_to" in h} == pytest.approx({4: 0.005, 8: 0.003})


def test_early_stopping_follows_its_own_metric(
    tokenized_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # dev BLEU keeps improving while dev loss gets worse.
    script = [{"dev_loss": 3.0 + i / 10, "dev_bleu": 1.0 + i} for i in range(6)]
    summary, history = _train_scripted(
        tokenized_run, tmp_path / "loss", monkeypatch, script,
        "training.max_steps=6", "training.patience=2", "training.early_stopping_metric=loss",
    )
    assert summary["stopped"] == "early_stopping" and [h["step"] for h in history] == [1, 2, 3]
    assert summary["best"]["step"] == 3  # the best checkpoint still follows dev BLEU
    summary, history = _train_scripted(
        tokenized_run, tmp_path / "bleu", monkeypatch, script,
        "training.max_steps=6", "training.patience=2", "training.early_stopping_metric=bleu",
    )
    assert summary["stopped"] == "max_steps" and len(history) == 6


def test_training_config_checks(tokenized_run: Path) -> None:
    for key in ("plateau_metric", "early_stopping_metric"):
        with pytest.raises(ConfigError, match=f"training.{key}=bleu needs dev BLEU, but training.valid_bleu is false"):
            load_config(tokenized_run, [f"training.{key}=bleu", "training.valid_bleu=false"])
    with pytest.raises(ConfigError, match="training.plateau_factor=1.5: must be between 0 and 1"):
        load_config(tokenized_run, ["training.plateau_factor=1.5"])
    with pytest.raises(ConfigError, match="training.precision=fp16 needs a CUDA device"):
        load_config(tokenized_run, ["training.precision=fp16", "training.device=cpu"])
    with pytest.raises(ConfigError, match="training.batch_sentences=0: must be at least 1"):
        load_config(tokenized_run, ["training.batch_sentences=0"])
