"""Every artifact file name of a run directory, in one place.

Layout of `runs/<name>/`:

    manifest.json            the orchestrator's books
    config.json              the resolved config of the last run
    prepare/{split}.{src,tgt}   cleaned, line-aligned text
    prepare/arrow/{split}/      the same pairs as a `datasets` Arrow table (columns src, tgt)
    prepare/summary.json
    tokenize/spm.src.model, spm.tgt.model   (the same file twice when joint)
    tokenize/ids/{split}/       token ids, a `datasets` Arrow table (columns src_ids, tgt_ids)
    train/best/, train/last/    checkpoints (model.safetensors + meta.json + spm)
    train/last/optimizer.safetensors, rng.safetensors, train_state.json   what resuming needs
    train/top/step<N>/          the training.keep_best best checkpoints, when above 1
    train/history.jsonl
    translate/test.hyp
    score/scores.json
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = "manifest.json"
RESOLVED_CONFIG = "config.json"
RESOLVED_CONFIG_YAML = "config.yaml"

PREPARE_DIR = "prepare"
TOKENIZE_DIR = "tokenize"
TRAIN_DIR = "train"
TRANSLATE_DIR = "translate"
SCORE_DIR = "score"

SPLITS = ("train", "dev", "test")
SRC_SUFFIX = "src"
TGT_SUFFIX = "tgt"
PREPARE_SUMMARY = "summary.json"

SPM_SRC = "spm.src.model"
SPM_TGT = "spm.tgt.model"

CKPT_BEST = "best"
CKPT_LAST = "last"
CKPT_TOP = "top"
RUN_CHECKPOINTS = (CKPT_BEST, CKPT_LAST)  # decoding.checkpoint names of a run's own checkpoints
CKPT_WEIGHTS = "model.safetensors"
CKPT_META = "meta.json"
CKPT_OPTIMIZER = "optimizer.safetensors"
CKPT_RNG = "rng.safetensors"
CKPT_TRAIN_STATE = "train_state.json"
HISTORY = "history.jsonl"
TENSORBOARD_DIR = "tensorboard"  # in train/: TensorBoard event files

TEST_HYP = "test.hyp"
SCORES = "scores.json"


def split_text(folder: Path, split: str, side: str) -> Path:
    """`prepare/train.src` and friends."""
    return folder / f"{split}.{side}"


def split_table(folder: Path, split: str) -> Path:
    """`prepare/arrow/train/` and friends: a saved `datasets` table of text pairs."""
    return folder / "arrow" / split


def split_ids(folder: Path, split: str) -> Path:
    """`tokenize/ids/train/` and friends: a saved `datasets` table of token ids."""
    return folder / "ids" / split
