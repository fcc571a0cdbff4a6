"""TensorBoard event files of a training, read back with the tensorboard package's reader."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from pipeline.cli import main
from stages import artifacts


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_a_training_writes_readable_event_files(tiny_config: Path) -> None:
    result = CliRunner().invoke(main, ["train", str(tiny_config), "--set", "training.log_every=4"])
    assert result.exit_code == 0, result.output
    train = tiny_config.parent / "runs" / "tiny" / artifacts.TRAIN_DIR
    found = scalars(train / artifacts.TENSORBOARD_DIR)
    assert [step for step, _ in found["train/loss"]] == [4, 8, 12, 16, 20]
    assert {"train/lr", "train/tokens_per_s", "dev/loss", "dev/ppl", "dev/bleu", "train/window_loss"} <= set(found)
    assert any(tag.startswith("grad_norm/") for tag in found)
    history = [line for line in (train / artifacts.HISTORY).read_text().splitlines() if line]
    assert [step for step, _ in found["dev/loss"]] == [10, 20] and len(history) == 2


def test_tensorboard_off(tiny_config: Path) -> None:
    result = CliRunner().invoke(main, ["train", str(tiny_config), "--set", "training.tensorboard=false"])
    assert result.exit_code == 0, result.output
    assert not (tiny_config.parent / "runs" / "tiny" / artifacts.TRAIN_DIR / artifacts.TENSORBOARD_DIR).exists()


@pytest.mark.parametrize("value", ["0", "-5"])
def test_log_every_must_be_positive(tiny_config: Path, value: str) -> None:
    result = CliRunner().invoke(main, ["train", str(tiny_config), "--set", f"training.log_every={value}"])
    assert result.exit_code == 1 and f"training.log_every={value}: must be at least 1" in result.output
