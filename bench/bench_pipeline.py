"""Benchmark a trained run: training speed, translation speed, peak memory, BLEU.

    python bench/bench_pipeline.py runs/default [--train-steps 30] [--batch-size 32]

Prints one JSON object. Training speed is measured on a fresh copy of the run's model
(same config, same tokenized data) for --train-steps steps after 3 warm-up steps;
translation speed on the run's test split with its best checkpoint, greedy and beam 5.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import test_split, timed_translation  # noqa: E402
from stages import artifacts  # noqa: E402
from stages.corpus.batching import TrainData  # noqa: E402
from stages.decode.config import DecodeConfig  # noqa: E402
from stages.decode.scoring import score_lines  # noqa: E402
from stages.decode.translation import checkpoint_output_pieces, prepare_for_inference  # noqa: E402
from stages.model.checkpoint import load_checkpoint  # noqa: E402
from stages.model.seq2seq import Seq2Seq  # noqa: E402
from stages.train.config import TrainConfig  # noqa: E402
from stages.train.precision import pick_precision  # noqa: E402
from stages.train.step import train_step  # noqa: E402
from stages.train.trainer import make_optimizer  # noqa: E402


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def bench_training(run_dir: Path, steps: int) -> dict[str, object]:
    cfg_all = json.loads((run_dir / artifacts.RESOLVED_CONFIG).read_text())
    tcfg = TrainConfig(**cfg_all["training"])
    ckpt_meta = json.loads((run_dir / "train" / "best" / artifacts.CKPT_META).read_text())
    from stages.model.config import ModelConfig

    model = Seq2Seq(ModelConfig(**ckpt_meta["model"]), ckpt_meta["src_vocab"], ckpt_meta["tgt_vocab"])
    data = TrainData.load(artifacts.split_ids(run_dir / artifacts.TOKENIZE_DIR, "train"), tcfg.max_len)
    batches = data.batches(tcfg.batch_tokens, np.random.default_rng(0))[: steps + 3]
    opt = make_optimizer(model, tcfg)
    amp = pick_precision(tcfg.precision, "cpu")
    for b in batches[:3]:
        train_step(model, opt, b, tcfg, amp, "cpu")
    start, tokens = time.perf_counter(), 0
    for b in batches[3:]:
        train_step(model, opt, b, tcfg, amp, "cpu")
        tokens += b.n_tokens
    seconds = time.perf_counter() - start
    return {
        "train_target_tokens_per_s": round(tokens / seconds, 1),
        "train_steps_timed": len(batches) - 3,
        "train_precision": str(amp).replace("torch.", "") if amp else "fp32",
        "parameters": sum(p.numel() for p in model.parameters()),
    }


def bench_translation(run_dir: Path, batch_size: int = 0) -> dict[str, object]:
    """The run's test split translated as `s2s translate` does (the model prepared for
    inference: fast search step, output pieces), greedy and beam 5, in batches of
    `batch_size` sentences (0: the run's `decoding.batch_size`)."""
    folder = run_dir / artifacts.TRAIN_DIR / artifacts.CKPT_BEST
    model, sp_src, sp_tgt, meta = load_checkpoint(folder, "cpu")
    src, refs = test_split(run_dir)
    saved = json.loads((run_dir / artifacts.RESOLVED_CONFIG).read_text())["decoding"]
    out: dict[str, object] = {"test_sentences": len(src), "batch_size": batch_size or saved["batch_size"]}
    for label, beam in (("greedy", 1), ("beam5", 5)):
        cfg = DecodeConfig(**{**saved, "beam_size": beam, "batch_size": batch_size or saved["batch_size"]})
        ready = prepare_for_inference(model, cfg, "cpu", checkpoint_output_pieces(folder, meta))
        hyps, speed = timed_translation(ready, sp_src, sp_tgt, src, cfg)
        scores = score_lines(hyps, refs)
        out.update({f"{label}_{key}": value for key, value in speed.items()})
        out[f"{label}_bleu"] = scores["bleu"]
        out[f"{label}_chrf"] = scores["chrf"]
    out["bleu_signature"] = scores["bleu_signature"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--train-steps", type=int, default=30)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=0, help="sentences per batch (default: the run's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    result: dict[str, object] = {
        "run": str(args.run_dir),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
    }
    result.update(bench_translation(args.run_dir, args.batch_size))
    result.update(bench_training(args.run_dir, args.train_steps))
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
