"""The beam search's stopping rule (`decoding.stopping`): the bound against the current length.

    python bench/bench_stopping_rule.py RUN... [--repeats 2] [--out bench/results/stopping_rule_cpu.json]

For each run's test split (beam 5, GNMT alpha 1.0, batch 32, fp32 and int8; search loop
only, model loaded), with `decoding.stopping: bound` (a sentence stops once its n-th best
finished hypothesis scores at least the best alive log-probability over the length
penalty at the output limit) and `current` (the best alive hypothesis taken at its
current length, as OpenNMT-py stops), the rules alternating `--repeats` times: test BLEU,
search seconds, and how many 1-best outputs differ between n-best 1 and 3. Prints and
writes one JSON object.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Literal

from common import SearchRun, emit, machine, runs_arguments

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sacrebleu  # noqa: E402
import torch  # noqa: E402

from stages.decode.config import DecodeConfig  # noqa: E402
from stages.decode.translation import (  # noqa: E402
    translate_ids_nbest,
)

RULES: tuple[Literal["bound", "current"], ...] = ("bound", "current")


def search(model: Any, ids: list[list[int]], cfg: DecodeConfig, n_best: int) -> tuple[list[list[int]], float]:
    start = time.perf_counter()
    found = translate_ids_nbest(model, ids, cfg, "cpu", n_best)
    return [n[0].tokens for n in found], time.perf_counter() - start


def main() -> None:
    args = runs_arguments(__doc__ or "", "stopping_rule_cpu.json")
    torch.set_num_threads(2)
    result: dict[str, Any] = {"bench": "stopping_rule", **machine(), "torch": torch.__version__,
                              "search": "beam 5, gnmt alpha 1.0, batch 32, search only", "runs": {}}
    for run in args.runs:
        loaded = SearchRun(run)
        ids = loaded.ids
        rows: dict[str, Any] = {}
        for quantize in ("none", "int8"):
            configs = {rule: DecodeConfig(batch_size=32, beam_size=5, quantize=quantize, stopping=rule) for rule in RULES}
            ready = loaded.ready(configs["bound"])
            search(ready, ids[:32], configs["bound"], 1)  # warm-up: step tables, kernels
            seconds: dict[str, list[float]] = {rule: [] for rule in RULES}
            outputs: dict[str, list[list[int]]] = {}
            for _ in range(args.repeats):
                for rule in RULES:
                    outputs[rule], took = search(ready, ids, configs[rule], 1)
                    seconds[rule].append(round(took, 2))
                    print(run, quantize, rule, round(took, 2), flush=True)
            for rule in RULES:
                three, _ = search(ready, ids, configs[rule], 3)
                rows[f"{quantize}.{rule}"] = {
                    "bleu": round(sacrebleu.corpus_bleu([loaded.sp_tgt.decode(t) for t in outputs[rule]], [loaded.refs]).score, 2),
                    "seconds": seconds[rule], "best_s": min(seconds[rule]),
                    "one_best_differs_n_best_1_vs_3": sum(a != b for a, b in zip(outputs[rule], three)),
                }
            rows[f"{quantize}.bound_over_current_seconds"] = round(
                rows[f"{quantize}.bound"]["best_s"] / rows[f"{quantize}.current"]["best_s"], 2)
        result["runs"][str(run)] = rows
    emit(result, args.out)


if __name__ == "__main__":
    main()
