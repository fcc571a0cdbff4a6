"""Peak memory and time of `s2s translate` by batch size: the whole command, as a user
runs it, under `/usr/bin/time -v`.

    python bench/bench_batch_memory.py RUN [RUN ...] [--batches 32 64] [--rounds 2] [--out FILE]

Each RUN translates its own prepared test split at beam 5 (its decoding settings) in fp32
and int8, at each batch size; the settings take turns, `--rounds` times over, so that
the machine's drift falls on all of them alike. Reports per setting the peak RSS (MiB,
the largest of the rounds), the command's wall time (the fastest of the rounds; it
includes about 3 s of start-up and model loading), and whether the translations were
the same at every batch size.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import emit, machine

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stages import artifacts  # noqa: E402


def translate(run: Path, quantize: str, batch: int, work: Path) -> dict[str, Any]:
    """One timed `s2s translate --run RUN` of the run's test sources."""
    source = artifacts.split_text(run / artifacts.PREPARE_DIR, "test", artifacts.SRC_SUFFIX)
    out, timing = work / f"{run.name}.{quantize}.{batch}.out", work / "time.txt"
    command = ["/usr/bin/time", "-v", "-o", str(timing), str(ROOT / ".venv" / "bin" / "s2s"), "translate",
               "--run", str(run), "-i", str(source), "-o", str(out), "--quantize", quantize,
               "--set", f"decoding.batch_size={batch}"]
    done = subprocess.run(command, capture_output=True, text=True, env=dict(os.environ), check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    text = timing.read_text()
    peak = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))  # type: ignore[union-attr]
    clock = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", text)
    h, m, s = clock.groups()  # type: ignore[union-attr]
    return {"peak_rss_mib": round(peak / 1024), "wall_s": round(int(h or 0) * 3600 + int(m) * 60 + float(s), 2),
            "output": out.read_text(encoding="utf-8")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 64])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("bench/results/batch_memory_cpu.json"))
    args = parser.parse_args()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as scratch:
        for run in args.runs:
            for quantize in ("none", "int8"):
                seen: dict[int, list[dict[str, Any]]] = {b: [] for b in args.batches}
                for _ in range(args.rounds):
                    for batch in args.batches:
                        seen[batch].append(translate(run, quantize, batch, Path(scratch)))
                outputs = {seen[b][0]["output"] for b in args.batches}
                for batch in args.batches:
                    rows.append({"run": run.name, "quantize": quantize, "batch": batch,
                                 "peak_rss_mib": max(r["peak_rss_mib"] for r in seen[batch]),
                                 "wall_s": min(r["wall_s"] for r in seen[batch]),
                                 "same_output_at_every_batch": len(outputs) == 1})
                    print(rows[-1], flush=True)
    emit({"bench": "batch_memory", "machine": machine(), "rounds": args.rounds, "rows": rows}, args.out)


if __name__ == "__main__":
    main()
