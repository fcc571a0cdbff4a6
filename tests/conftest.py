"""Shared fixtures: a tiny slice of the embedded corpus and a tiny config around it."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]

torch.set_num_threads(2)


def _rows(split: str, n: int) -> list[str]:
    with gzip.open(ROOT / "data" / "bible" / f"{split}.tsv.gz", "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    return lines[: n + 1]  # header + n rows


@pytest.fixture
def tiny_corpus(tmp_path: Path) -> Path:
    """train/dev/test TSVs of 400/20/20 verses in tmp_path/corpus."""
    return write_tiny_corpus(tmp_path / "corpus")


def write_tiny_corpus(folder: Path) -> Path:
    """train/dev/test TSVs of 400/20/20 verses of the embedded corpus in `folder`."""
    folder.mkdir(exist_ok=True)
    for split, n in (("train", 400), ("dev", 20), ("test", 20)):
        (folder / f"{split}.tsv").write_text("\n".join(_rows(split, n)) + "\n", encoding="utf-8")
    return folder


def tiny_config_text(corpus: Path, runs: Path, **extra: str) -> str:
    text = f"""\
name: tiny
seed: 7
runs_dir: {runs}
data:
  train: {corpus / 'train.tsv'}
  dev: {corpus / 'dev.tsv'}
  test: {corpus / 'test.tsv'}
tokenizer:
  vocab_size: 200
model:
  embedding_size: 32
  encoder_hidden: 32
  decoder_hidden: 64
  dropout: 0.0
training:
  batch_tokens: 800
  epochs: 2
  max_steps: 20
  valid_every: 10
  warmup_steps: 5
  precision: fp32
  threads: 2
decoding:
  beam_size: 3
  batch_size: 16
"""
    for key, value in extra.items():
        text += f"{key}: {value}\n"
    return text


@pytest.fixture
def tiny_config(tiny_corpus: Path, tmp_path: Path) -> Path:
    path = tmp_path / "tiny.yaml"
    path.write_text(tiny_config_text(tiny_corpus, tmp_path / "runs"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenized_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny config (as `tiny_config`) whose run is prepared and tokenized, shared by a
    test module; its tests train into folders of their own."""
    from pipeline.config import load_config
    from pipeline.orchestrator import run_pipeline

    path = _tiny_setup(tmp_path_factory.mktemp("tokenized"))
    run_pipeline(load_config(path), until="tokenize", echo=lambda _: None)
    return path


def _tiny_setup(tmp: Path) -> Path:
    """The tiny corpus and config (as `tiny_config`) in `tmp`; the config's path."""
    corpus = write_tiny_corpus(tmp / "corpus")
    path = tmp / "tiny.yaml"
    path.write_text(tiny_config_text(corpus, tmp / "runs"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny config's whole run (`s2s run`), shared by a test module: its config path;
    the run is in runs/tiny beside it. Tests that change the run work on a copy."""
    from click.testing import CliRunner

    from pipeline.cli import main

    path = _tiny_setup(tmp_path_factory.mktemp("trained"))
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny config's whole run, shared by every module that only reads it (the API,
    the server, the browser): the run folder."""
    from click.testing import CliRunner

    from pipeline.cli import main

    path = _tiny_setup(tmp_path_factory.mktemp("shared"))
    result = CliRunner().invoke(main, ["run", str(path)])
    assert result.exit_code == 0, result.output
    return path.parent / "runs" / "tiny"
