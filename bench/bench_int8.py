"""int8 search: the quantized engine and the fused recurrent product, against the previous way.

    python bench/bench_int8.py RUN... [--repeats 2] [--out bench/results/int8_engine_cpu.json]

For each run's test split (beam 5, batch 32, decoding.quantize=int8, search loop only
with the model loaded, as bench_onmt.py times it), the settings alternate `--repeats`
times in one process:

- "x86, separate": fbgemm's kernels (PyTorch's x86 engine), a layer's input and recurrent
  products apart: the int8 search as it was before oneDNN and the fused product;
- "onednn, separate": oneDNN's kernels (AMX int8 where the CPU has it), products apart;
- "onednn, fused": what s2s runs now on a CPU with AMX int8 (stages/model/fast/int8.py,
  stages/model/fast/search_step.py).

Prints and writes JSON: best seconds per setting, test BLEU, and how many 1-best outputs
differ from the first setting's.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from common import SearchRun, emit, machine, runs_arguments, timed_search

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sacrebleu  # noqa: E402
import torch  # noqa: E402

from stages.decode.config import DecodeConfig  # noqa: E402
from stages.model.fast import int8, search_step  # noqa: E402

BUILD = search_step._build_tables
SETTINGS = [("x86", False), ("onednn", False), ("onednn", True)]


def separate_products(model: Any, version: Any) -> Any:
    """The step tables without the fused [x; h] weights: each product on its own."""
    tables = BUILD(model, version)
    return dataclasses.replace(tables, w_xh=[None] * len(tables.w_xh))


def search(model: Any, ids: list[list[int]], cfg: DecodeConfig, engine: str, fused: bool) -> tuple[list[list[int]], float]:
    int8.ENGINE = engine
    search_step._build_tables = BUILD if fused else separate_products  # type: ignore[assignment]
    search_step.forget_tables(model)
    try:
        found, seconds = timed_search(model, ids, cfg)
    finally:
        search_step._build_tables = BUILD  # type: ignore[assignment]
        int8.ENGINE = int8.default_engine()
    return [n[0].tokens for n in found], seconds


def main() -> None:
    args = runs_arguments(__doc__ or "", "int8_engine_cpu.json")
    torch.set_num_threads(2)
    settings = [s for s in SETTINGS if s[0] in torch.backends.quantized.supported_engines]
    result: dict[str, Any] = {"bench": "int8", **machine(), "torch": torch.__version__, "beam": 5, "batch": 32,
                              "default_engine": int8.default_engine(), "runs": {}}
    for run in args.runs:
        loaded = SearchRun(run)
        cfg = DecodeConfig(batch_size=32, beam_size=5, quantize="int8")
        ready = loaded.ready(cfg)
        rows: dict[str, dict[str, Any]] = {}
        outputs: dict[str, list[list[int]]] = {}
        for _ in range(args.repeats):
            for engine, fused in settings:
                name = f"{engine}, {'fused' if fused else 'separate'}"
                tokens, seconds = search(ready, loaded.ids, cfg, engine, fused)
                row = rows.setdefault(name, {"seconds": []})
                row["seconds"].append(round(seconds, 2))
                outputs.setdefault(name, tokens)
                print(run, name, round(seconds, 2), flush=True)
        first = next(iter(outputs.values()))
        for name, row in rows.items():
            hyps = [loaded.sp_tgt.decode(t) for t in outputs[name]]
            row["best_s"] = min(row["seconds"])
            row["bleu"] = round(sacrebleu.corpus_bleu(hyps, [loaded.refs]).score, 2)
            row["outputs_differing_from_first"] = sum(a != b for a, b in zip(first, outputs[name]))
        base = rows[next(iter(rows))]["best_s"]
        for row in rows.values():
            row["speedup_over_first"] = round(base / row["best_s"], 2)
        result["runs"][str(run)] = rows
    emit(result, args.out)


if __name__ == "__main__":
    main()
