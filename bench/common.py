"""What the benchmarks share: a run's test split, its model ready to search, timed translation."""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages import artifacts  # noqa: E402
from stages.corpus.vocab import without_context  # noqa: E402
from stages.decode.config import DecodeConfig  # noqa: E402
from stages.decode.translation import (  # noqa: E402
    checkpoint_output_pieces,
    prepare_for_inference,
    translate_ids_nbest,
    translate_lines,
)
from stages.files import read_lines_strict  # noqa: E402
from stages.model.checkpoint import load_checkpoint  # noqa: E402


def test_split(run_dir: Path) -> tuple[list[str], list[str]]:
    """The run's prepared test sources and references."""
    prepared = run_dir / artifacts.PREPARE_DIR
    src = read_lines_strict(artifacts.split_text(prepared, "test", artifacts.SRC_SUFFIX))
    refs = read_lines_strict(artifacts.split_text(prepared, "test", artifacts.TGT_SUFFIX))
    return src, refs


class SearchRun:
    """A run's best checkpoint and its test split as source ids, for timing the search."""

    def __init__(self, run_dir: Path) -> None:
        self.folder = run_dir / artifacts.TRAIN_DIR / artifacts.CKPT_BEST
        self.model, self.sp_src, self.sp_tgt, self.meta = load_checkpoint(self.folder)
        src, self.refs = test_split(run_dir)
        self.ids = [self.sp_src.encode(text) for text in without_context(src)]

    def ready(self, cfg: DecodeConfig) -> Any:
        """The model prepared for `cfg` on the CPU, over the checkpoint's output pieces."""
        return prepare_for_inference(self.model, cfg, "cpu", checkpoint_output_pieces(self.folder, self.meta))


def runs_arguments(doc: str, results_file: str) -> argparse.Namespace:
    """The command line of a benchmark over runs: RUN..., --repeats (2), --out (bench/results/FILE)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results" / results_file)
    return parser.parse_args()


def timed_search(model: Any, ids: list[list[int]], cfg: DecodeConfig) -> tuple[list[list[Any]], float]:
    """Search alone, ids in and ids out, on the CPU after one warm-up batch (step tables,
    kernels): each sentence's 1-best list, and the seconds it took."""
    translate_ids_nbest(model, ids[: cfg.batch_size], cfg, "cpu", 1)
    start = time.perf_counter()
    found = translate_ids_nbest(model, ids, cfg, "cpu", 1)
    return found, time.perf_counter() - start


def timed_translation(model: Any, sp_src: Any, sp_tgt: Any, lines: list[str], cfg: DecodeConfig) -> tuple[list[str], dict[str, float]]:
    """Translate on the CPU; return the hypotheses and sentences/s, target tokens/s (EOS counted)."""
    start = time.perf_counter()
    hyps = translate_lines(model, sp_src, sp_tgt, lines, cfg, "cpu")
    seconds = time.perf_counter() - start
    tokens = sum(len(sp_tgt.encode(h)) + 1 for h in hyps)
    return hyps, {
        "sentences_per_s": round(len(lines) / seconds, 1),
        "target_tokens_per_s": round(tokens / seconds, 1),
    }


def machine() -> dict[str, Any]:
    """The fields every result file starts with after its name: the machine."""
    return {"machine": platform.machine(), "cpus": os.cpu_count()}


def emit(result: dict[str, Any], out: Path | None, shown: dict[str, Any] | None = None) -> None:
    """Print a benchmark's JSON (or `shown`, a shorter view of it) and write the whole
    of it to `out` when given."""
    text = json.dumps(result, indent=1)
    print(text if shown is None else json.dumps(shown, indent=1))
    if out:
        out.write_text(text + "\n", encoding="utf-8")
