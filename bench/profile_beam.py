"""Where beam-search time goes: torch.profiler over translating a run's test split.

    python bench/profile_beam.py runs/default [--beam-size 5] [--batch-size 64] [--sentences 552]

Prints JSON: wall time, target tokens/s, and the self CPU time of the heaviest operators
grouped into encoder / decoder RNN / attention / output projection and softmax / beam
bookkeeping, plus the time not spent in any operator (Python). Matrix products are told
apart by their output width: the vocabulary (output layer), the decoder RNN's gates
(its step in stages/model/fast/search_step.py), anything else (combine, bridge, attention keys).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from torch.profiler import ProfilerActivity, profile, record_function

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import test_split  # noqa: E402
from stages import artifacts  # noqa: E402
from stages.decode.config import DecodeConfig  # noqa: E402
from stages.decode.translation import prepare_for_inference, translate_lines  # noqa: E402
from stages.model.checkpoint import load_checkpoint  # noqa: E402

# Operator name -> part of the search. Linear layers are split by their output width.
GROUPS = {
    "aten::lstm": "decoder/encoder RNN", "aten::gru": "decoder/encoder RNN", "aten::rnn_tanh": "decoder/encoder RNN",
    "aten::mkldnn_rnn": "decoder/encoder RNN", "aten::mkldnn_rnn_layer": "decoder/encoder RNN", "aten::bmm": "attention", "aten::softmax": "attention",
    "aten::_softmax": "attention", "aten::masked_fill": "attention", "aten::log_softmax": "output softmax",
    "aten::_log_softmax": "output softmax", "aten::topk": "beam bookkeeping", "aten::index_select": "beam bookkeeping",
    "aten::cat": "beam bookkeeping", "aten::gather": "beam bookkeeping", "aten::item": "beam bookkeeping",
    "aten::_local_scalar_dense": "beam bookkeeping", "aten::embedding": "embeddings",
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("run", type=Path)
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sentences", type=int, default=552)
    parser.add_argument("--quantize", default="none")
    args = parser.parse_args()
    model, sp_src, sp_tgt, _ = load_checkpoint(args.run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST)
    cfg = dataclasses.replace(DecodeConfig(), beam_size=args.beam_size, batch_size=args.batch_size, quantize=args.quantize)
    model = prepare_for_inference(model, cfg, "cpu")  # type: ignore[assignment]
    lines = test_split(args.run)[0][: args.sentences]
    translate_lines(model, sp_src, sp_tgt, lines[:16], cfg, "cpu")  # warm-up
    start = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        with record_function("translate"):
            hyps = translate_lines(model, sp_src, sp_tgt, lines, cfg, "cpu")
    wall = time.perf_counter() - start
    tokens = sum(len(sp_tgt.encode(h)) + 1 for h in hyps)
    parts: dict[str, float] = defaultdict(float)
    top = []
    widths = {sp_tgt.get_piece_size(): "output layer", gates(model): "decoder RNN"}
    for event in prof.key_averages(group_by_input_shape=True):
        if event.key == "translate":
            continue
        ms = event.self_cpu_time_total / 1000
        top.append((event.key, round(ms, 1), event.count))
        parts[GROUPS.get(event.key, _linear_or_other(event.key, event.input_shapes, widths))] += ms
    total_ops = sum(parts.values())
    translate_ms = next(e.cpu_time_total for e in prof.key_averages() if e.key == "translate") / 1000
    parts["python and dispatch (not in any operator)"] = max(0.0, translate_ms - total_ops)
    print(json.dumps({
        "run": str(args.run), "beam_size": args.beam_size, "batch_size": args.batch_size, "sentences": len(lines),
        "quantize": args.quantize, "wall_s_profiled": round(wall, 2), "target_tokens": tokens,
        "target_tokens_per_s_profiled": round(tokens / wall, 1),
        "share_percent": {k: round(100 * v / translate_ms, 1) for k, v in sorted(parts.items(), key=lambda kv: -kv[1])},
        "top_operators_ms": _top(top),
    }, indent=2))


def gates(model: Any) -> int:
    """The width of the decoder RNN's gate products."""
    rnn = model.decoder_rnn
    return {"LSTM": 4, "GRU": 3}.get(getattr(rnn, "mode", ""), 1) * int(getattr(rnn, "hidden_size", 0))


def _linear_or_other(key: str, shapes: list[list[int]], widths: dict[int, str]) -> str:
    if key in ("aten::addmm", "aten::mm", "aten::linear", "aten::matmul", "quantized::linear_dynamic"):
        out_width = next((s[-1] for s in reversed(shapes) if len(s) == 2), 0)  # the weight (K, N)
        if key == "aten::linear":  # weight (N, K)
            out_width = shapes[1][0] if len(shapes) > 1 and len(shapes[1]) == 2 else 0
        return f"matrix products: {widths.get(out_width, 'other (combine, bridge, keys)')}"
    return "other operators"


def _top(rows: list[tuple[str, float, int]]) -> list[tuple[str, float, int]]:
    """The 15 heaviest operators, shapes merged."""
    merged: dict[str, list[float]] = defaultdict(lambda: [0.0, 0])
    for key, ms, count in rows:
        merged[key][0] += ms
        merged[key][1] += count
    return sorted(((k, round(v[0], 1), int(v[1])) for k, v in merged.items()), key=lambda r: -r[1])[:15]


if __name__ == "__main__":
    main()
