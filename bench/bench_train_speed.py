"""Benchmark training speed (target tokens/s) of model variants on real batches.

    python bench/bench_train_speed.py [--steps 20] [--rounds 3] [--vocab 8000]
        [--variant if_off:input_feeding=false --variant if_on:input_feeding=true]

Prints one JSON object. The embedded corpus is prepared and tokenized with the
pipeline's own stages (SentencePiece, --vocab pieces, joint) into --work (cached
there for the next call). Every variant trains a fresh default model (with its
overrides) on the same batches of --batch-tokens padded tokens, under the training
stage's precision choice (bf16 autocast on CPUs with AVX-512 BF16). Variants are
timed interleaved, in --rounds rounds of --steps steps each after 3 warm-up steps,
so that load from other processes hits all of them alike.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipeline.orchestrator import resolve_path  # noqa: E402
from stages import artifacts  # noqa: E402
from stages.corpus.batching import Batch, TrainData  # noqa: E402
from stages.corpus.config import (
    DataConfig,  # noqa: E402
    TokenizerConfig,  # noqa: E402
)
from stages.corpus.prepare import run_prepare  # noqa: E402
from stages.corpus.tokenization import load_processor, run_tokenize  # noqa: E402
from stages.model.config import ModelConfig  # noqa: E402
from stages.model.fast import cpu_kernels  # noqa: E402
from stages.model.seq2seq import Seq2Seq  # noqa: E402
from stages.train.config import TrainConfig  # noqa: E402
from stages.train.step import train_step  # noqa: E402
from stages.train.trainer import make_optimizer, pick_precision  # noqa: E402


def tokenized_corpus(work: Path, vocab: int) -> Path:
    """The embedded corpus, prepared and tokenized into `work` (reused when present)."""
    prepare_dir, tokenize_dir = work / artifacts.PREPARE_DIR, work / f"{artifacts.TOKENIZE_DIR}{vocab}"
    if not artifacts.split_ids(tokenize_dir, "train").exists():
        if not (prepare_dir / artifacts.PREPARE_SUMMARY).exists():
            run_prepare(DataConfig(), prepare_dir, resolve_path, seed=1234)
        run_tokenize(TokenizerConfig(vocab_size=vocab), prepare_dir, tokenize_dir, seed=1234)
    return tokenize_dir


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    """`label:key=value,key=value` -> (label, model overrides)."""
    label, _, spec = text.partition(":")
    overrides = {}
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        overrides[key.strip()] = yaml.safe_load(value)
    return label, overrides


class Timed:
    """One variant: its model, optimizer and the time and tokens spent so far."""

    def __init__(self, cfg: ModelConfig, vocab: int, tcfg: TrainConfig, seed: int):
        torch.manual_seed(seed)
        self.cfg, self.tcfg = cfg, tcfg
        self.model = Seq2Seq(cfg, vocab, vocab).train()
        self.optimizer = make_optimizer(self.model, tcfg)
        self.amp = pick_precision(tcfg.precision, "cpu")
        self.seconds, self.tokens, self.steps = 0.0, 0, 0
        self.losses: list[float] = []

    def run(self, batches: list[Batch], timed: bool) -> None:
        start = time.perf_counter()
        for b in batches:
            loss, _ = train_step(self.model, self.optimizer, b, self.tcfg, self.amp, "cpu")
            self.losses.append(loss)
        if timed:
            self.seconds += time.perf_counter() - start
            self.tokens += sum(b.n_tokens for b in batches)
            self.steps += len(batches)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "s2s_bench_train_speed")
    parser.add_argument("--vocab", type=int, default=8000)
    parser.add_argument("--batch-tokens", type=int, default=2048)
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--variant", action="append", default=[],
                        help="label:model.key=value,... (default: input_feeding false and true)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tokenize_dir = tokenized_corpus(args.work, args.vocab)
    vocab = load_processor(tokenize_dir / artifacts.SPM_TGT).get_piece_size()
    tcfg = TrainConfig(batch_tokens=args.batch_tokens)
    data = TrainData.load(artifacts.split_ids(tokenize_dir, "train"), tcfg.max_len)
    batches = data.batches(tcfg.batch_tokens, np.random.default_rng(0))
    specs = args.variant or ["if_off:input_feeding=false", "if_on:input_feeding=true"]
    overrides = dict(map(parse_variant, specs))
    variants = {label: Timed(dataclasses.replace(ModelConfig(), **keys), vocab, tcfg, seed=0)
                for label, keys in overrides.items()}
    for timed in variants.values():
        timed.run(batches[:3], timed=False)
    cursor = 3
    for _ in range(args.rounds):
        chunk = batches[cursor : cursor + args.steps]
        cursor += args.steps
        for timed in variants.values():
            timed.run(chunk, timed=True)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        "vocab": vocab,
        "batch_tokens": args.batch_tokens,
        "precision": str(pick_precision(tcfg.precision, "cpu")).replace("torch.", ""),
        "cpu_kernels": cpu_kernels.library() is not None,  # S2S_CPU_KERNELS=0 for the operators alone
        "steps_timed_per_variant": args.steps * args.rounds,
    }
    for label, timed in variants.items():
        result[label] = {
            "target_tokens_per_s": round(timed.tokens / timed.seconds, 1),
            "mean_step_s": round(timed.seconds / timed.steps, 4),
            "last_loss": round(timed.losses[-1], 3),
            "model_overrides": overrides[label],
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
