"""Data-parallel training under torchrun (gloo, CPU): 2 ranks with batch B step exactly
like 1 process with batch 2B."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from tests.conftest import ROOT, tiny_config_text


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tiny_corpus: Path, tmp_path: Path, name: str, accumulate: int) -> Path:
    text = tiny_config_text(tiny_corpus, tmp_path / "runs").replace("name: tiny", f"name: {name}")
    text = text.replace("training:\n", f"training:\n  accumulate: {accumulate}\n  valid_bleu: false\n  threads: 1\n")
    text = text.replace("  threads: 2\n", "")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_two_ranks_step_like_one_process_with_twice_the_batch(tiny_corpus: Path, tmp_path: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    one = _config(tiny_corpus, tmp_path, "one", accumulate=2)
    two = _config(tiny_corpus, tmp_path, "two", accumulate=1)
    cli = [sys.executable, "-m", "pipeline.cli", "train"]
    subprocess.run([*cli, str(one)], check=True, env=env, cwd=ROOT, capture_output=True)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
                "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}"]
    done = subprocess.run([*launcher, "-m", "pipeline.cli", "train", str(two)], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = tmp_path / "runs"
    a = load_file(str(runs / "one" / "train" / "last" / "model.safetensors"))
    b = load_file(str(runs / "two" / "train" / "last" / "model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    history = (runs / "two" / "train" / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(history) == 2  # one writer: rank 0
    assert done.stdout.count("[prepare] running") == 1 and done.stdout.count("[train] running") == 1

    # Resuming works the same under torchrun: both go on from step 20 to 30.
    more = ["--resume", "--allow-lr-change", "--set", "training.max_steps=30"]
    subprocess.run([*cli, str(one), *more], check=True, env=env, cwd=ROOT, capture_output=True)
    launcher[-1] = f"127.0.0.1:{_free_port()}"
    done = subprocess.run([*launcher, "-m", "pipeline.cli", "train", str(two), *more], env=env, cwd=ROOT,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    a = load_file(str(runs / "one" / "train" / "last" / "model.safetensors"))
    b = load_file(str(runs / "two" / "train" / "last" / "model.safetensors"))
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-4, atol=1e-5, msg=key)
    history = (runs / "two" / "train" / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(history) == 3
