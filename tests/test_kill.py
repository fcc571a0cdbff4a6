"""kill -9 at any stage leaves a run folder that the next command redoes or resumes,
never trusts half-written: the end result equals an uninterrupted run's."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from stages import artifacts
from tests.conftest import tiny_config_text, write_tiny_corpus

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Result:
    returncode: int
    stdout: str


def s2s(*args: str) -> Result:
    """The CLI in this process (only the command to kill runs in its own)."""
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Result(result.exit_code, result.output)


def killed_when(config: Path, ready: Callable[[], bool], *args: str) -> None:
    """Start `s2s run CONFIG` (or ARGS), kill -9 it as soon as `ready()` holds."""
    process = subprocess.Popen([sys.executable, "-m", "pipeline.cli", *(args or ("run", str(config)))],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    deadline = time.monotonic() + 120
    while not ready() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert process.poll() is None, "the command ended before the moment to kill it"
    process.send_signal(signal.SIGKILL)
    process.wait()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def outputs(run: Path) -> dict[str, str]:
    return {name: digest(run / name) for name in ("train/best/model.safetensors", "train/last/model.safetensors",
                                                  "translate/test.hyp")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_corpus(tmp_path_factory.mktemp("corpus"))


def config_in(folder: Path, corpus: Path) -> Path:
    path = folder / "tiny.yaml"
    path.write_text(tiny_config_text(corpus, folder / "runs"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def reference(corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The outputs of an uninterrupted run."""
    config = config_in(tmp_path_factory.mktemp("reference"), corpus)
    assert s2s("run", str(config)).returncode == 0
    return outputs(config.parent / "runs" / "tiny")


MOMENTS = {
    "prepare": lambda run: (run / "prepare").exists(),
    "tokenize": lambda run: (run / "tokenize").exists(),
    "train": lambda run: (run / "train" / "history.jsonl").exists(),
    "translate": lambda run: (run / "translate").exists(),
}


@pytest.mark.parametrize("stage", list(MOMENTS))
def test_a_run_killed_in_any_stage_is_redone_to_the_same_result(stage: str, corpus: Path, tmp_path: Path,
                                                                 reference: dict[str, str]) -> None:
    config = config_in(tmp_path, corpus)
    run = tmp_path / "runs" / "tiny"
    killed_when(config, lambda: MOMENTS[stage](run))
    status = s2s("status", str(run))
    if status.returncode == 0:  # a manifest was written before the kill
        states = " ".join(line.split()[1] for line in status.stdout.splitlines()[2:7])
        # done stages, then the one killed mid-way (none when killed between two stages), then not started
        assert re.fullmatch(r"(done ?)*(interrupted ?)?(- ?)*", states), status.stdout
    again = s2s("run", str(config))
    assert again.returncode == 0, again.stdout
    manifest = json.loads((run / artifacts.MANIFEST).read_text())
    assert all(entry["status"] == "done" for entry in manifest["stages"].values())
    assert outputs(run) == reference, again.stdout


def test_a_training_killed_after_a_checkpoint_resumes_to_the_same_weights(corpus: Path, tmp_path: Path,
                                                                          reference: dict[str, str]) -> None:
    config = config_in(tmp_path, corpus)
    run = tmp_path / "runs" / "tiny"
    state = run / "train" / "last" / artifacts.CKPT_TRAIN_STATE
    killed_when(config, state.exists)  # killed after the step-10 checkpoint, before step 20's
    resumed = s2s("train", str(config), "--resume")
    assert resumed.returncode == 0 and "[train] resuming" in resumed.stdout, resumed.stdout
    assert s2s("run", str(config)).returncode == 0
    assert outputs(run) == reference
