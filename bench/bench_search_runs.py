"""Search speed and BLEU of several runs side by side, the runs alternating.

    python bench/bench_search_runs.py RUN... [--repeats 2] [--out bench/results/search_runs_cpu.json]

For each run's test split (its best checkpoint, batch 32, beam 5 and greedy, fp32 and
int8, GNMT alpha 1.0; search loop only, model loaded and warmed up), the runs take turns
`--repeats` times, so that a change in the machine's load hits all of them alike: search
seconds (each repeat, and the best), output pieces per second over the best, and test
BLEU. Made to compare architectures (e.g. `model.decoder_self_attention`) at equal
settings. Prints and writes one JSON object.
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

from stages.decode.config import DecodeConfig  # noqa: E402

SETTINGS = {f"{quantize}.{name}": DecodeConfig(batch_size=32, beam_size=beam, quantize=quantize)
            for quantize in ("none", "int8") for name, beam in (("beam5", 5), ("greedy", 1))}


def main() -> None:
    args = runs_arguments(__doc__ or "", "search_runs_cpu.json")
    torch.set_num_threads(2)
    loaded = {str(run): SearchRun(run) for run in args.runs}
    result: dict[str, Any] = {"bench": "search_runs", **machine(), "torch": torch.__version__,
                              "search": "batch 32, gnmt alpha 1.0, search only", "runs": {}}
    for setting, cfg in SETTINGS.items():
        seconds: dict[str, list[float]] = {run: [] for run in loaded}
        outputs: dict[str, list[list[int]]] = {}
        for _ in range(args.repeats):
            for run, search_run in loaded.items():
                found, took = timed_search(search_run.ready(cfg), search_run.ids, cfg)
                outputs[run] = [n[0].tokens for n in found]
                seconds[run].append(round(took, 2))
                print(setting, run, round(took, 2), flush=True)
        for run, search_run in loaded.items():
            best = min(seconds[run])
            pieces = sum(len(t) + 1 for t in outputs[run])  # EOS counted
            hyps = [search_run.sp_tgt.decode(t) for t in outputs[run]]
            result["runs"].setdefault(run, {})[setting] = {
                "seconds": seconds[run], "best_s": best, "pieces_per_s": round(pieces / best),
                "bleu": round(sacrebleu.corpus_bleu(hyps, [search_run.refs]).score, 2),
            }
    emit(result, args.out)


if __name__ == "__main__":
    main()
