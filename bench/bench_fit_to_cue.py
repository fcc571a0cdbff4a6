"""Fit-to-cue on the embedded test-book subtitles: cues over the box and over the reading
speed, cues refitted, and cue-level BLEU/chrF, for each fitting setting, in one run.

    python bench/bench_fit_to_cue.py RUN [--out FILE]

Translates data/subtitles/test.en.srt (the model loaded once) with: no fitting
(--fit-nbest 1 --no-fit-shorten), the 5-best alone (--no-fit-shorten), shortening alone
(--fit-nbest 1) and both (the default), and scores each against
data/subtitles/test.es.srt as `s2s score OUT.srt REF.srt` does. Prints one JSON object
and writes it to --out (default bench/results/fit_to_cue_cpu.json).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine  # noqa: E402
from pipeline.api import Translator  # noqa: E402
from pipeline.subtitle_cli import score_subtitles  # noqa: E402
from stages.subtitles.formats import load_subtitles  # noqa: E402

SUBTITLES = Path(__file__).resolve().parents[1] / "data" / "subtitles"
SETTINGS = {
    "no fitting (--fit-nbest 1 --no-fit-shorten)": {"fit_nbest": 1, "fit_shorten": False},
    "5-best only (--no-fit-shorten)": {"fit_nbest": 5, "fit_shorten": False},
    "shortening only (--fit-nbest 1)": {"fit_nbest": 1, "fit_shorten": True},
    "5-best and shortening (default)": {"fit_nbest": 5, "fit_shorten": True},
}


def source_over_box(path: Path, max_chars: int, max_lines: int) -> int:
    doc = load_subtitles(path)
    return sum(len(c.lines) > max_lines or any(len(line) > max_chars for line in c.lines) for c in doc.cues)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench/results/fit_to_cue_cpu.json"))
    args = parser.parse_args()
    source, reference = SUBTITLES / "test.en.srt", SUBTITLES / "test.es.srt"
    translator = Translator.load(args.run)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, options in SETTINGS.items():
            start = time.perf_counter()
            result, report = translator.translate_subtitles(source, **options)
            seconds = time.perf_counter() - start
            out = Path(tmp) / "out.srt"
            out.write_bytes(result.data)
            score = score_subtitles(str(out), str(reference))
            c = report["counts"]
            rows.append({"setting": name, **options, "cues_over_max_lines": c["cues_over_max_lines"],
                         "cues_with_a_line_over_max_chars": c["lines_over_limit"],
                         "cues_over_max_cps": c["cues_over_cps"], "fitted": c["fitted"],
                         "shortened": c["shortened"], "no_fit": c["no_fit"], "cue_bleu": score["bleu"],
                         "cue_chrf": score["chrf"], "seconds": round(seconds, 1)})
    limits = report["limits"]
    emit({"bench": "fit_to_cue", **machine(), "run": str(args.run), "input": str(source), "cues": c["cues_in"],
          "limits": limits, "source_cues_over_box": source_over_box(source, limits["max_chars"], limits["max_lines"]),
          "rows": rows}, args.out)


if __name__ == "__main__":
    main()
