"""The cell x attention experiment: {rnn, gru, lstm} x {none, bahdanau, luong_general}.

    python bench/bench_grid.py RUN [--budget-tokens 4.9e6] [--jobs 1] [--out bench/results/grid.json]

Every combination trains from scratch on RUN's tokenized data (RUN/tokenize, RUN/prepare:
any run that got past tokenize, e.g. runs/default) with the same number of target
tokens, everything else as in RUN's config, then translates and scores the test split
(beam 5). For each it reports test BLEU and chrF, training tokens/s, and how the loss
gradient reaches the source: the median over dev sentences of at least 20 tokens of
||dL/d x_last|| / ||dL/d x_first||, x_t being the encoder's input embedding at step t,
for the freshly initialised and for the trained model. Prints one JSON object and
writes it to --out.

A small version runs in minutes: --budget-tokens 2e5 --cells gru --attentions none,luong_general.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages import artifacts  # noqa: E402
from stages.corpus.batching import Batch, TrainData  # noqa: E402
from stages.corpus.tokenization import load_processor  # noqa: E402
from stages.decode.config import (
    DecodeConfig,  # noqa: E402
    ScoreConfig,  # noqa: E402
)
from stages.decode.scoring import run_score  # noqa: E402
from stages.decode.translation import run_translate  # noqa: E402
from stages.devices import pick_device  # noqa: E402
from stages.model.checkpoint import load_checkpoint  # noqa: E402
from stages.model.config import ModelConfig  # noqa: E402
from stages.model.seq2seq import Seq2Seq, sequence_loss  # noqa: E402
from stages.train.config import TrainConfig  # noqa: E402
from stages.train.trainer import run_train  # noqa: E402

CELLS = ("rnn", "gru", "lstm")
ATTENTIONS = ("none", "bahdanau", "luong_general")


def gradient_ratio(model: Seq2Seq, batches: list[Batch], device: str, min_len: int = 20) -> float:
    """Median over sentences of ||dL/dx_last|| / ||dL/dx_first|| at the encoder's input."""
    model.train()
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.eval()  # no dropout noise; the RNNs stay in training mode (cuDNN backward needs it)
    captured: dict[str, torch.Tensor] = {}

    def keep(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> None:
        output.retain_grad()
        captured["x"] = output

    hook = model.encoder.embed.register_forward_hook(keep)
    ratios = []
    try:
        for batch in batches:
            batch = batch.to(device)
            model.zero_grad()
            logits = model(batch.src, batch.src_lens, batch.tgt_in)
            sequence_loss(logits, batch.tgt_out, 0.0).backward()
            grad = captured["x"].grad.float().norm(dim=-1)  # (B, S)
            for i, n in enumerate(batch.src_lens.tolist()):
                if n >= min_len and grad[i, 0] > 0:
                    ratios.append(float(grad[i, n - 1] / grad[i, 0]))
    finally:
        hook.remove()
        model.zero_grad()
    return round(statistics.median(ratios), 4) if ratios else float("nan")


def dev_batches(tokenize_dir: Path) -> list[Batch]:
    data = TrainData.load(artifacts.split_ids(tokenize_dir, "dev"), 150)
    return data.batches(2048, np.random.default_rng(0))


def run_one(run_dir: Path, cell: str, attention: str, budget: float, work: Path, seed: int) -> dict[str, Any]:
    saved = json.loads((run_dir / artifacts.RESOLVED_CONFIG).read_text(encoding="utf-8"))
    tokenize_dir, prepare_dir = run_dir / artifacts.TOKENIZE_DIR, run_dir / artifacts.PREPARE_DIR
    model_cfg = dataclasses.replace(ModelConfig(**saved["model"]), cell=cell, attention=attention)  # type: ignore[arg-type]
    base = TrainConfig(**saved["training"])
    data = TrainData.load(artifacts.split_ids(tokenize_dir, "train"), base.max_len)
    epoch = data.batches(base.batch_tokens, np.random.default_rng(seed))
    per_step = sum(b.n_tokens for b in epoch) / len(epoch)
    steps = max(1, int(budget / per_step))
    cfg = dataclasses.replace(
        base, max_steps=steps, epochs=1000, max_minutes=0, valid_every=max(1, steps // 4), patience=0
    )
    out = work / f"{cell}-{attention}"
    device = pick_device(cfg.device)
    torch.manual_seed(seed)
    fresh = Seq2Seq(model_cfg, *_vocab_sizes(tokenize_dir)).to(device)
    dev = dev_batches(tokenize_dir)
    ratio_init = gradient_ratio(fresh, dev, device)
    start = time.perf_counter()
    summary = run_train(model_cfg, cfg, tokenize_dir, prepare_dir, out / "train", seed)
    train_s = time.perf_counter() - start
    decoding = DecodeConfig(**saved.get("decoding", {}))
    run_translate(decoding, out / "train", tokenize_dir, prepare_dir, out / "translate")
    scores = run_score(ScoreConfig(), out / "translate", prepare_dir, out / "score")
    trained, _, _, _ = load_checkpoint(out / "train" / decoding.checkpoint, device)
    return {
        "cell": cell, "attention": attention, "steps": steps, "budget_target_tokens": int(budget),
        "test_bleu": scores["bleu"], "test_chrf": scores["chrf"],
        "train_target_tokens_per_s": summary["target_tokens_per_s"], "train_seconds": round(train_s, 1),
        "grad_ratio_last_first_init": ratio_init, "grad_ratio_last_first_trained": gradient_ratio(trained, dev, device),
        "parameters": sum(p.numel() for p in fresh.parameters()),
    }


def _vocab_sizes(tokenize_dir: Path) -> tuple[int, int]:
    src, tgt = (load_processor(tokenize_dir / name) for name in (artifacts.SPM_SRC, artifacts.SPM_TGT))
    return src.get_piece_size(), tgt.get_piece_size()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", type=Path)
    parser.add_argument("--budget-tokens", type=float, default=4.9e6, help="target tokens per combination")
    parser.add_argument("--cells", default=",".join(CELLS))
    parser.add_argument("--attentions", default=",".join(ATTENTIONS))
    parser.add_argument("--jobs", type=int, default=1, help="combinations trained at once (a GPU has room for several)")
    parser.add_argument("--work", type=Path, default=Path("runs/grid"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/grid.json"))
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--only", help=argparse.SUPPRESS)  # CELL:ATTENTION, used for --jobs
    args = parser.parse_args()
    if args.only:
        cell, attention = args.only.split(":")
        print(json.dumps(run_one(args.run, cell, attention, args.budget_tokens, args.work, args.seed)))
        return
    combos = [(c, a) for c in args.cells.split(",") for a in args.attentions.split(",")]
    start = time.perf_counter()
    results = _run_all(args, combos)
    report = {
        "run": str(args.run), "budget_target_tokens": int(args.budget_tokens), "jobs": args.jobs,
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
        "wall_seconds": round(time.perf_counter() - start, 1), "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))


def _run_all(args: argparse.Namespace, combos: list[tuple[str, str]]) -> list[dict[str, Any]]:
    """Each combination in its own process (--jobs at a time), so one's memory and
    threads do not leak into the next's timing."""
    results: list[dict[str, Any]] = []
    pending = list(combos)
    running: list[subprocess.Popen[str]] = []
    while pending or running:
        while pending and len(running) < args.jobs:
            cell, attention = pending.pop(0)
            cmd = [sys.executable, __file__, str(args.run), "--only", f"{cell}:{attention}",
                   "--budget-tokens", str(args.budget_tokens), "--work", str(args.work), "--seed", str(args.seed)]
            running.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
        done = running.pop(0)
        stdout, _ = done.communicate()
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(map(str, done.args))} failed with exit code {done.returncode}")
        results.append(json.loads(stdout.strip().splitlines()[-1]))
    order = {combo: i for i, combo in enumerate(combos)}
    return sorted(results, key=lambda r: order[(r["cell"], r["attention"])])


if __name__ == "__main__":
    main()
