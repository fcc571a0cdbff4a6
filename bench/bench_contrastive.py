"""Context on trained runs: test BLEU and the contrastive pronoun test
(stages/decode/contrastive.py: how often the model scores the reference above its
gender-swapped contrast), with the previous verse as context and without.

    python bench/bench_contrastive.py RUN [RUN ...] [--out FILE]

The examples come from the embedded corpus's held-out books (dev and test, in verse
order); the verb list that tells a clitic from an article comes from its training
targets. A context model (data.context > 0) is scored with the previous verse and with
the separator alone; a model without context with the sentence alone. Test BLEU/chrF:
the test books translated with the run's decoding settings through `Translator`
(`context` 1 and 0), scored against their references. For a context model,
`context_gain`: CXMI over the test books, how much the previous verse raises the
references' log-probability per token (`stages.decode.contrastive.context_gain`).
A model trained with `data.target_context` is scored behind the previous verse's
reference.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, machine  # noqa: E402
from pipeline.api import Translator, saved_section  # noqa: E402
from pipeline.manifest import Manifest  # noqa: E402
from stages import artifacts  # noqa: E402
from stages.decode.contrastive import (  # noqa: E402
    context_gain,
    contrastive_accuracy,
    find_contrasts,
    verb_like,
)
from stages.decode.scoring import score_lines  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "data" / "bible"


def rows(split: str) -> list[list[str]]:
    with gzip.open(DATA / f"{split}.tsv.gz", "rt", encoding="utf-8") as f:
        return list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]


def measure(run: Path, examples: list[Any]) -> dict[str, Any]:
    context = int(saved_section(run, "data").get("context", 0))
    target_context = bool(saved_section(run, "data").get("target_context", False))
    train = saved_section(run, "training")
    manifest = Manifest.load(run)
    score = manifest.stage("score").get("summary", {})
    trained = manifest.stage("train").get("summary", {})
    out: dict[str, Any] = {"run": run.name, "data.context": context, "data.target_context": target_context,
                           "training.context_dropout": train.get("context_dropout", 0.0),
                           "training.batch_tokens": train.get("batch_tokens"),
                           "train": {k: trained.get(k) for k in ("steps", "seconds", "target_tokens_per_s")},
                           "best_step": trained.get("best", {}).get("step"),
                           "run_score": {"bleu": score.get("bleu"), "chrf": score.get("chrf")}}
    history = run / artifacts.TRAIN_DIR / artifacts.HISTORY
    if history.exists():
        out["dev"] = [{k: h[k] for k in ("step", "dev_loss", "dev_bleu") if k in h}
                      for h in map(json.loads, history.read_text(encoding="utf-8").splitlines())]
    test = rows("test")
    for key, size in (("with_context", 1), ("without_context", 0)) if context else (("without_context", None),):
        translator = Translator.load(run, context=size)  # its model scores targets over the whole vocabulary
        scores = score_lines(translator.translate([r[1] for r in test]), [r[2] for r in test])
        contrastive = contrastive_accuracy(translator.model, translator.sp_src, translator.sp_tgt, examples, size or 0,
                                           bool(context), target_context=target_context)
        out[key] = {"test_bleu": scores["bleu"], "test_chrf": scores["chrf"], "contrastive": contrastive}
        if context and size:
            out["context_gain"] = context_gain(translator.model, translator.sp_src, translator.sp_tgt,
                                               [r[1] for r in test], [r[2] for r in test], target_context)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", type=Path, default=Path("bench/results/context_cpu.json"))
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
