"""The contrastive pronoun test (stages/decode/contrastive.py) on trained runs: how often
each model scores the reference above its gender-swapped contrast, with the previous
verse as context and without, beside each run's test BLEU.

    python bench/bench_contrastive.py RUN [RUN ...] [--out FILE]

The examples come from the embedded corpus's held-out books (dev and test, in verse
order); the verb list that tells a clitic from an article comes from its training
targets. A context model (data.context > 0) is scored with the previous verse and with
the separator alone; a model without context with the sentence alone.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine  # noqa: E402
from pipeline.api import saved_section  # noqa: E402
from pipeline.manifest import Manifest  # noqa: E402
from stages import artifacts  # noqa: E402
from stages.decode.contrastive import contrastive_accuracy, find_contrasts, verb_like  # noqa: E402
from stages.model.checkpoint import load_checkpoint  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "bible"


def rows(split: str) -> list[list[str]]:
    with gzip.open(DATA / f"{split}.tsv.gz", "rt", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]


def measure(run: Path, examples: list[Any]) -> dict[str, Any]:
    model, sp_src, sp_tgt, _ = load_checkpoint(run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST)
    context = int(saved_section(run, "data").get("context", 0))
    train = saved_section(run, "training")
    score = Manifest.load(run).stage("score").get("summary", {})
    out: dict[str, Any] = {"run": run.name, "data.context": context,
                           "training.context_dropout": train.get("context_dropout", 0.0),
                           "training.batch_tokens": train.get("batch_tokens"),
                           "test_bleu": score.get("bleu"), "test_chrf": score.get("chrf")}
    if context:
        out["with_context"] = contrastive_accuracy(model, sp_src, sp_tgt, examples, 1, True)
        out["without_context"] = contrastive_accuracy(model, sp_src, sp_tgt, examples, 0, True)
    else:
        out["without_context"] = contrastive_accuracy(model, sp_src, sp_tgt, examples, 0, False)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench/results/contrastive_cpu.json"))
    args = parser.parse_args()
    verbs = verb_like(r[2] for r in rows("train"))
    examples = []
    for split in ("dev", "test"):
        held_out = rows(split)
        examples += find_contrasts([r[1] for r in held_out], [r[2] for r in held_out], verbs)
    result = {"bench": "contrastive_pronouns", "machine": machine(), "examples": len(examples),
              "previous_only": sum(e.previous_only for e in examples),
              "runs": [measure(run, examples) for run in args.runs]}
    emit(result, args.out)


if __name__ == "__main__":
    main()
