"""Resident memory of training and translating: the peak, the level after warm-up, and
the RSS curve, for a run's model.

    python bench/bench_memory.py runs/default [--steps 300] [--out bench/results/memory_cpu.json]

Training: `--steps` steps of the run's model and training config (validation every
`--steps`/2 steps, into a temporary folder) in a child process. Translation:
`s2s translate` of the run's test split. Each child's VmRSS is sampled every 0.25 s from
/proc; `peak_mb` is its VmHWM, `steady_mb` the mean of the last half of the samples.
Prints one JSON object (and writes it with --out).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.common import emit, machine  # noqa: E402

TRAIN = """
import json, sys
from pathlib import Path
sys.path.insert(0, {root!r})
from pipeline.config import load_config
from stages.train.trainer import run_train
import dataclasses
run, out, steps = Path({run!r}), Path({out!r}), {steps}
cfg = load_config(run / "config.yaml")
training = dataclasses.replace(cfg.training, max_steps=steps, valid_every=max(1, steps // 2), max_minutes=0,
                               tensorboard=False, pad_multiple={pad})
summary = run_train(cfg.model, training, run / "tokenize", run / "prepare", out, cfg.seed)
print(json.dumps({{"steps": summary["steps"], "target_tokens_per_s": summary["target_tokens_per_s"]}}))
"""


def watch(command: list[str], cwd: Path) -> dict[str, Any]:
    """Run `command`, sampling its resident memory; the curve, peak and steady level."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    start, curve, peak = time.perf_counter(), [], 0.0
    while process.poll() is None:
        try:
            fields = dict(line.split(":", 1) for line in Path(f"/proc/{process.pid}/status").read_text().splitlines()
                          if ":" in line)
            rss, peak = int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024
            curve.append([round(time.perf_counter() - start, 2), round(rss, 1)])
        except (FileNotFoundError, KeyError, ProcessLookupError):
            pass
        time.sleep(0.25)
    output = process.stdout.read() if process.stdout else ""
    if process.returncode != 0:
        raise SystemExit(f"{command[:3]}... failed with {process.returncode}")
    late = [rss for _, rss in curve[len(curve) // 2:]] or [0.0]
    return {"seconds": round(time.perf_counter() - start, 1), "peak_mb": round(peak, 1),
            "steady_mb": round(sum(late) / len(late), 1), "output": output.strip().splitlines()[-1:] or [],
            "rss_curve_mb": curve[:: max(1, len(curve) // 200)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--pad-multiple", type=int, default=1, help="training.pad_multiple for the training")
    parser.add_argument("--no-translation", action="store_true", help="measure training only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    run = args.run_dir.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        code = TRAIN.format(root=str(ROOT), run=str(run), out=str(Path(tmp) / "train"), steps=args.steps,
                            pad=args.pad_multiple)
        training = watch([sys.executable, "-c", code], ROOT)
        test_src = run / "prepare" / "test.src"
        translating = None if args.no_translation else watch(
            [sys.executable, "-c", "from pipeline.cli import main; main()", "translate", str(test_src),
             "--run", str(run), "-o", str(Path(tmp) / "test.hyp")], ROOT)
    result = {"bench": "memory", "run": str(args.run_dir), **machine(),
              "env": {k: v for k, v in os.environ.items() if k.startswith(("ONEDNN", "DNNL", "MALLOC", "OMP"))},
              "train_steps": args.steps, "pad_multiple": args.pad_multiple, "training": training,
              "translation": translating}
    emit(result, args.out, shown={k: ({kk: vv for kk, vv in v.items() if kk != "rss_curve_mb"} if isinstance(v, dict)
                                      else v) for k, v in result.items()})


if __name__ == "__main__":
    main()
