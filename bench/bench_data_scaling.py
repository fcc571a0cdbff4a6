"""How prepare + tokenize scale with the corpus: time and peak memory for N pairs.

    python bench/bench_data_scaling.py [--pairs 30000,300000,3000000] [--work /tmp/s2s_scaling]

Larger corpora are made by repeating the embedded training split with each copy
perturbed (a copy number appended to both sides, so no two pairs are equal). Each size
runs prepare and tokenize (the default config's data and tokenizer sections) in a fresh
process; its wall time and peak resident memory are reported. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, json
sys.path.insert(0, {root!r})
from pathlib import Path
from stages.prepare import DataConfig, run_prepare
from stages.tokenization import TokenizerConfig, run_tokenize
work = Path({work!r})
data = DataConfig(train=str(work / "train.tsv"), dev={dev!r}, test={test!r})
run_prepare(data, work / "prepare", lambda p: Path(p), 1234)
run_tokenize(TokenizerConfig(), work / "prepare", work / "tokenize", 1234)
"""


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
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        start = time.perf_counter()
        code = CHILD.format(root=str(ROOT), work=str(work), dev=dev, test=test)
        subprocess.run([sys.executable, "-c", code], check=True)
        seconds = time.perf_counter() - start
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        results.append({
            "pairs": pairs, "seconds": round(seconds, 1),
            "peak_rss_mb": round(peak / 1024, 1) if peak > before else "not above an earlier size's peak",
        })
        print(json.dumps(results[-1]), file=sys.stderr, flush=True)
    print(json.dumps({"prepare_plus_tokenize": results}, indent=1))


if __name__ == "__main__":
    main()
