"""How prepare + tokenize scale with the corpus: time and peak memory for N pairs.

    python bench/bench_data_scaling.py [--pairs 30000,300000,3000000] [--num-proc 0]
        [--max-sentences 200000] [--work /tmp/s2s_scaling]

Larger corpora are made by repeating the embedded training split with each copy
perturbed (a copy number appended to both sides, so no two pairs are equal). Each size
runs prepare and tokenize (the default config's data and tokenizer sections) in a fresh
process. Reported: wall time, and the peak over time of the memory of that process and
its `num_proc` workers together, sampled every 0.1 s from /proc/<pid>/smaps_rollup as
proportional set sizes (a page shared by n processes counts 1/n in each, so forked
workers are not counted twice): `peak_anon_mb` is anonymous memory, what the stages
themselves hold; `peak_pss_mb` adds the resident pages of memory-mapped files (the
Arrow tables), which the kernel can drop and reread. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, json
sys.path.insert(0, {root!r})
from pathlib import Path
from stages.corpus.prepare import run_prepare
from stages.corpus.config import DataConfig
from stages.corpus.tokenization import run_tokenize
from stages.corpus.config import TokenizerConfig
work = Path({work!r})
data = DataConfig(train=str(work / "train.tsv"), dev={dev!r}, test={test!r})
run_prepare(data, work / "prepare", lambda p: Path(p), 1234, {num_proc})
run_tokenize(TokenizerConfig(max_sentences={max_sentences}), work / "prepare", work / "tokenize", 1234, {num_proc})
"""


def _tree(root: int) -> list[int]:
    """`root` and every process descended from it."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    parents[int(entry)] = int(handle.read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sorted(tree)


def _memory_kb(pids: list[int]) -> tuple[int, int]:
    """Summed Pss_Anon and Pss (all resident pages, proportionally shared) of `pids`, in kB."""
    anon = total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as handle:
                for line in handle:
                    if line.startswith("Pss_Anon:"):
                        anon += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return anon, total


def run_measured(command: list[str]) -> dict[str, float]:
    """Run `command`; its wall time and the peak memory of its process tree."""
    peak = {"anon": 0, "pss": 0, "procs": 0}
    start = time.perf_counter()
    child = subprocess.Popen(command)

    def sample() -> None:
        while child.poll() is None:
            pids = _tree(child.pid)
            anon, total = _memory_kb(pids)
            peak.update(anon=max(peak["anon"], anon), pss=max(peak["pss"], total),
                        procs=max(peak["procs"], len(pids)))
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    if child.wait() != 0:
        raise SystemExit(f"prepare + tokenize failed (exit {child.returncode})")
    seconds = time.perf_counter() - start
    sampler.join()
    return {"seconds": round(seconds, 1), "peak_anon_mb": round(peak["anon"] / 1024, 1),
            "peak_pss_mb": round(peak["pss"] / 1024, 1), "processes": peak["procs"]}


def make_corpus(rows: list[dict[str, str]], pairs: int, path: Path) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_NONE, escapechar="\\")
        writer.writerow(["ref", "en", "es"])
        for i in range(pairs):
            row, copy = rows[i % len(rows)], i // len(rows)
            tail = f" ({copy})" if copy else ""
            writer.writerow([row["ref"], row["en"] + tail, row["es"] + tail])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pairs", default="30000,300000,3000000")
    parser.add_argument("--num-proc", type=int, default=0, help="the config's num_proc (0: auto)")
    parser.add_argument("--max-sentences", type=int, default=200_000, help="tokenizer.max_sentences")
    parser.add_argument("--work", type=Path, default=Path("/tmp/s2s_scaling"))
    args = parser.parse_args()
    with gzip.open(ROOT / "data" / "bible" / "train.tsv.gz", "rt", encoding="utf-8") as handle:
        rows = list(csv.DictReader(io.StringIO(handle.read()), delimiter="\t", quoting=csv.QUOTE_NONE))
    dev, test = str(ROOT / "data" / "bible" / "dev.tsv.gz"), str(ROOT / "data" / "bible" / "test.tsv.gz")
    results = []
    for pairs in (int(p) for p in args.pairs.split(",")):
        work = args.work / str(pairs)
        work.mkdir(parents=True, exist_ok=True)
        make_corpus(rows, pairs, work / "train.tsv")
        code = CHILD.format(root=str(ROOT), work=str(work), dev=dev, test=test, num_proc=args.num_proc,
                           max_sentences=args.max_sentences)
        setting = {"num_proc": args.num_proc, "max_sentences": args.max_sentences}
        results.append({"pairs": pairs, **setting, **run_measured([sys.executable, "-c", code])})
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"prepare_plus_tokenize": results}, indent=1))


if __name__ == "__main__":
    main()
