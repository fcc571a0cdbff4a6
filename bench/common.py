"""What the benchmarks share: a run's test split and timed translation."""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stages import artifacts  # noqa: E402
from stages.decode.config import DecodeConfig  # noqa: E402
from stages.decode.translation import translate_ids_nbest, translate_lines  # noqa: E402
from stages.files import read_lines_strict  # noqa: E402


def test_split(run_dir: Path) -> tuple[list[str], list[str]]:
    """The run's prepared test sources and references."""
    prepared = run_dir / artifacts.PREPARE_DIR
    src = read_lines_strict(artifacts.split_text(prepared, "test", artifacts.SRC_SUFFIX))
    refs = read_lines_strict(artifacts.split_text(prepared, "test", artifacts.TGT_SUFFIX))
    return src, refs


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
