"""An ensemble against its members: test BLEU/chrF and speed of each run alone and of all
of them together, on the first run's test split, in one process.

    python bench/bench_ensemble.py runs/default runs/seed2 [--beam-size 5] [--out FILE]

The runs must share their tokenizer (`tokenizer.from_run`). Speed is the best of
`--repeats` passes over the split (decoding.batch_size sentences per batch).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine, test_split  # noqa: E402
from pipeline.api import Translator  # noqa: E402
from stages.decode.config import ScoreConfig  # noqa: E402
from stages.decode.scoring import score_lines  # noqa: E402


def measure(translator: Translator, sources: list[str], refs: list[str], repeats: int) -> dict[str, Any]:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        hyps = translator.translate(sources)
        best = min(best, time.perf_counter() - start)
    scores = score_lines(hyps, refs, ScoreConfig())
    return {"bleu": scores["bleu"], "chrf": scores["chrf"], "seconds": round(best, 2),
            "sentences_per_s": round(len(sources) / best, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    sources, refs = test_split(args.runs[0])
    rows = []
    for runs in [[run] for run in args.runs] + [args.runs]:
        translator = Translator.load(runs, beam_size=args.beam_size)
        rows.append({"runs": [str(r) for r in runs], **measure(translator, sources, refs, args.repeats)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    result = {"bench": "ensemble", **machine(),
              "beam_size": args.beam_size, "sentences": len(sources), "rows": rows}
    emit(result, args.out)


if __name__ == "__main__":
    main()
