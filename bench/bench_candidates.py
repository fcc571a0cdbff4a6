"""Beam-search candidates taken per hypothesis (the top_log_probs kernel) against the
log-softmax over every hypothesis's whole output vocabulary and one top-k per sentence.

    python bench/bench_candidates.py RUN... [--repeats 2] [--out bench/results/candidates_cpu.json]

For each run's test split (beam 5, batch 32, search only with the model loaded), fp32 and
int8, `decoding.stopping` bound and current, the two ways alternating `--repeats` times
in one process (stages.decode.search.CANDIDATES_BY_ROW): best seconds, BLEU, and how many
1-best outputs differ between the two ways.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from common import SearchRun, emit, machine, runs_arguments, timed_search

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sacrebleu  # noqa: E402
import torch  # noqa: E402

from stages.decode import search  # noqa: E402
from stages.decode.config import DecodeConfig  # noqa: E402
from stages.model.fast import cpu_kernels  # noqa: E402


def main() -> None:
    args = runs_arguments(__doc__ or "", "candidates_cpu.json")
    torch.set_num_threads(2)
    result: dict[str, Any] = {"bench": "candidates", **machine(), "torch": torch.__version__,
                              "kernels": cpu_kernels.status(), "beam": 5, "batch": 32, "runs": {}}
    for run in args.runs:
        loaded = SearchRun(run)
        rows: dict[str, Any] = {}
        for quantize in ("none", "int8"):
            for stopping in ("bound", "current"):
                cfg = DecodeConfig(batch_size=32, beam_size=5, quantize=quantize, stopping=stopping)
                ready = loaded.ready(cfg)
                seconds: dict[str, list[float]] = {"whole vocabulary": [], "by hypothesis": []}
                outputs: dict[str, list[list[int]]] = {}
                for _ in range(args.repeats):
                    for way in seconds:
                        search.CANDIDATES_BY_ROW = way == "by hypothesis"
                        found, took = timed_search(ready, loaded.ids, cfg)
                        outputs[way] = [n[0].tokens for n in found]
                        seconds[way].append(round(took, 2))
                        print(run, quantize, stopping, way, round(took, 2), flush=True)
                search.CANDIDATES_BY_ROW = True
                row: dict[str, Any] = {}
                for way, times in seconds.items():
                    hyps = [loaded.sp_tgt.decode(t) for t in outputs[way]]
                    row[way] = {"seconds": times, "best_s": min(times),
                                "bleu": round(sacrebleu.corpus_bleu(hyps, [loaded.refs]).score, 2)}
                row["speedup"] = round(row["whole vocabulary"]["best_s"] / row["by hypothesis"]["best_s"], 2)
                row["outputs_differing"] = sum(a != b for a, b in zip(outputs["whole vocabulary"], outputs["by hypothesis"]))
                rows[f"{quantize}.{stopping}"] = row
        result["runs"][str(run)] = rows
    emit(result, args.out)


if __name__ == "__main__":
    main()
