"""Translation speed of a trained run: greedy and beam 5, fp32, bf16 and int8, batch 1 and batched.

    python bench/bench_translate.py runs/default [--batch1-sentences 100]

Prints one JSON object: per configuration, sentences/s, target tokens/s and (for the
full test split) BLEU. Batch-1 rows use the first N test sentences to stay short.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import test_split, timed_translation  # noqa: E402
from stages import artifacts  # noqa: E402
from stages.decode.config import DecodeConfig  # noqa: E402
from stages.decode.scoring import score_lines  # noqa: E402
from stages.decode.translation import checkpoint_output_pieces, prepare_for_inference  # noqa: E402
from stages.model.checkpoint import load_checkpoint  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--batch1-sentences", type=int, default=100)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = args.run_dir / artifacts.TRAIN_DIR / artifacts.CKPT_BEST
    model, sp_src, sp_tgt, meta = load_checkpoint(folder)
    pieces = checkpoint_output_pieces(folder, meta)
    src, refs = test_split(args.run_dir)
    rows = []
    batched = DecodeConfig().batch_size
    for quantize, precision in (("none", "fp32"), ("none", "bf16"), ("int8", "fp32")):
        for beam in (1, 5):
            for batch in (batched, 1):
                cfg = DecodeConfig(beam_size=beam, batch_size=batch, quantize=quantize, precision=precision)  # type: ignore[arg-type]
                runnable = prepare_for_inference(model, cfg, "cpu", pieces)
                lines = src if batch > 1 else src[: args.batch1_sentences]
                hyps, speed = timed_translation(runnable, sp_src, sp_tgt, lines, cfg)
                row: dict[str, object] = {
                    "precision": "int8" if quantize == "int8" else precision,
                    "search": "greedy" if beam == 1 else f"beam{beam}",
                    "batch_size": batch,
                    "sentences": len(lines),
                    **speed,
                }
                if len(lines) == len(refs):
                    row["bleu"] = score_lines(hyps, refs)["bleu"]
                rows.append(row)
                print(json.dumps(row), file=sys.stderr, flush=True)
    print(json.dumps({
        "run": str(args.run_dir),
        "machine": f"{platform.machine()} {torch.get_num_threads()} threads, torch {torch.__version__}",
        "results": rows,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }, indent=1))


if __name__ == "__main__":
    main()
