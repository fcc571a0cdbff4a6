"""The beam search's stopping rule: the sound bound against comparing at the current length.

    python bench/bench_stopping_rule.py runs/default [--repeats 3] > bench/results/stopping_rule_cpu.json

For the run's test split (fp32, beam 5, batch 128), with the rule in stages/decode/search.py
("sound": a sentence stops once its n-th best finished hypothesis scores at least the best
alive log-probability over the length penalty at the output limit) and the earlier rule
("current": the best alive hypothesis taken at its current length, written out here),
measures test BLEU, seconds (best of --repeats, alternating the rules), and how many
1-best outputs differ between --n-best 1 and 3. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import test_split  # noqa: E402
from stages import artifacts  # noqa: E402
from stages.decode import search  # noqa: E402
from stages.decode.config import DecodeConfig  # noqa: E402
from stages.decode.scoring import score_lines  # noqa: E402
from stages.decode.translation import translate_lines_nbest  # noqa: E402
from stages.model.checkpoint import load_checkpoint  # noqa: E402

SOUND = search.best_reachable


def current_length_rule(log_prob: float, limit: int, alpha: float) -> float:
    """The earlier bound: not a bound, the alive score at its current length. The length
    is not passed to `best_reachable`, so it is read from the search's frame."""
    frame = sys._getframe(1)
    return log_prob / search.length_penalty(frame.f_locals["t"] + 1, alpha)


def translate(rule: Any, model: Any, sp_src: Any, sp_tgt: Any, lines: list[str], n_best: int) -> tuple[list[str], float]:
    search.best_reachable = rule  # type: ignore[assignment]
    try:
        start = time.perf_counter()
        out = translate_lines_nbest(model, sp_src, sp_tgt, lines, DecodeConfig(beam_size=5), "cpu", n_best=n_best)
        return [h[0]["text"] if h else "" for h in out], time.perf_counter() - start
    finally:
        search.best_reachable = SOUND  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    model, sp_src, sp_tgt, _ = load_checkpoint(args.run_dir / artifacts.TRAIN_DIR / artifacts.CKPT_BEST)
    src, refs = test_split(args.run_dir)
    rules = {"sound": SOUND, "current": current_length_rule}
    seconds: dict[str, list[float]] = {name: [] for name in rules}
    hyps: dict[str, list[str]] = {}
    for _ in range(args.repeats):
        for name, rule in rules.items():
            hyps[name], took = translate(rule, model, sp_src, sp_tgt, src, 1)
            seconds[name].append(round(took, 2))
    rows = {}
    for name, rule in rules.items():
        three, _ = translate(rule, model, sp_src, sp_tgt, src, 3)
        rows[name] = {
            "bleu": score_lines(hyps[name], refs)["bleu"],
            "seconds": seconds[name],
            "best_seconds": min(seconds[name]),
            "one_best_differs_n_best_1_vs_3": sum(a != b for a, b in zip(hyps[name], three)),
        }
    print(json.dumps({
        "run": str(args.run_dir), "sentences": len(src), "search": "beam 5, gnmt alpha 1.0, batch 128, fp32",
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        "rules": rows,
        "sound_over_current_seconds": round(rows["sound"]["best_seconds"] / rows["current"]["best_seconds"], 3),
    }, indent=1))


if __name__ == "__main__":
    main()
