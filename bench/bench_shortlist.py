"""The lexical shortlist (decoding.shortlist) on a run: output pieces per batch, BLEU and
search seconds, without it and at several sizes.

    python bench/bench_shortlist.py RUN [RUN ...] [--sizes 20 50] [--batch-size 32] [--out FILE]

Beam 5, fp32, on each run's prepared test split; search time alone (ids in, ids out,
model loaded, one warm-up batch first). Prints one JSON object (and writes it with --out).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import sacrebleu
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine, test_split, timed_search  # noqa: E402
from stages import artifacts  # noqa: E402
from stages.corpus.vocab import without_context  # noqa: E402
from stages.decode.config import DecodeConfig  # noqa: E402
from stages.decode.translation import (  # noqa: E402
    checkpoint_output_pieces,
    prepare_for_inference,
    run_shortlist,
)
from stages.model.checkpoint import load_checkpoint  # noqa: E402


def measure(run: Path, sizes: list[int], batch: int) -> list[dict[str, Any]]:
    folder = run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST
    model, sp_src, sp_tgt, meta = load_checkpoint(folder)
    pieces = checkpoint_output_pieces(folder, meta)
    src, refs = test_split(run)
    ids = [sp_src.encode(text) for text in without_context(src)]
    rows = []
    for size in [0] + sizes:
        cfg = DecodeConfig(beam_size=5, batch_size=batch, shortlist=size)
        start = time.perf_counter()
        lexical = run_shortlist(folder, meta, cfg)
        learn = time.perf_counter() - start
        ready = prepare_for_inference(model, cfg, "cpu", pieces, lexical)
        if lexical is None:
            per_batch = [len(pieces) if pieces else model.generator.out_features]
        else:
            per_batch = [len(lexical.pieces(ids[i : i + batch], ready.output_pieces)) for i in range(0, len(ids), batch)]
        found, seconds = timed_search(ready, ids, cfg)
        hyps = [sp_tgt.decode(n[0].tokens) for n in found]
        rows.append({"shortlist": size, "learn_s": round(learn, 2), "pieces_per_batch": round(sum(per_batch) / len(per_batch)),
                     "search_s": round(seconds, 2), "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)})
        print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--sizes", type=int, nargs="+", default=[20, 50])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(2)
    result = {"bench": "shortlist", **machine(), "beam": 5, "batch": args.batch_size,
              "runs": {str(run): measure(run, args.sizes, args.batch_size) for run in args.runs}}
    emit(result, args.out)


if __name__ == "__main__":
    main()
