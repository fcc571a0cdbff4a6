"""What fine-tuning gains and forgets: a parent run and its fine-tuned child
(`training.init_from`), each scored on both runs' test splits.

    python bench/bench_finetune.py runs/default runs/software [--out FILE]

Prints test BLEU/chrF of the parent and of the child on the parent's test split (what
the child forgets) and on the child's (what it gains), beam 5, plus the child's training
summary (steps, seconds, its parent).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import emit, test_split  # noqa: E402
from pipeline.api import Translator  # noqa: E402
from stages import artifacts  # noqa: E402
from stages.decode.config import ScoreConfig  # noqa: E402
from stages.decode.scoring import score_lines  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("parent", type=Path)
    parser.add_argument("child", type=Path)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    splits = {"parent_test": test_split(args.parent), "child_test": test_split(args.child)}
    rows = {}
    for name, run in (("parent", args.parent), ("child", args.child)):
        translator = Translator.load(run, beam_size=5)
        for split, (sources, refs) in splits.items():
            scores = score_lines(translator.translate(sources), refs, ScoreConfig())
            rows[f"{name} on {split}"] = {"bleu": scores["bleu"], "chrf": scores["chrf"], "sentences": len(sources)}
            print(name, split, rows[f"{name} on {split}"], file=sys.stderr)
    manifest = json.loads((args.child / artifacts.MANIFEST).read_text(encoding="utf-8"))
    train = manifest["stages"]["train"]["summary"]
    result = {"bench": "finetune", "parent": str(args.parent), "child": str(args.child), "scores": rows,
              "child_training": {k: train.get(k) for k in ("steps", "stopped", "seconds", "train_pairs", "init_from")}}
    emit(result, args.out)


if __name__ == "__main__":
    main()
