"""`s2s translate --run RUN`: translate any text file (or stdin) with a trained run."""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Optional

from pipeline.config import build_section, load_config
from stages import artifacts
from stages.attention_plot import plot_attention
from stages.checkpoint import load_checkpoint
from stages.errors import ArtifactError
from stages.files import read_lines_strict, write_lines_atomic
from stages.translation import DecodeConfig, pick_device, prepare_for_inference, translate_lines_nbest


def find_run_dir(run_ref: str, runs_dir: str = "runs") -> Path:
    for candidate in (Path(run_ref), Path(runs_dir) / run_ref):
        if (candidate / artifacts.TRAIN_DIR).is_dir():
            return candidate
    raise ArtifactError(f"{run_ref}: no trained run there (looked for {run_ref}/train and {runs_dir}/{run_ref}/train)")


def decode_config(
    run_dir: Path, overrides: list[str], beam_size: Optional[int], checkpoint: Optional[str], quantize: Optional[str] = None
) -> DecodeConfig:
    """The run's own decoding section, then --set overrides, then the flags."""
    saved = run_dir / artifacts.RESOLVED_CONFIG
    base = json.loads(saved.read_text(encoding="utf-8")).get("decoding", {}) if saved.exists() else {}
    for item in overrides:
        if not item.startswith("decoding."):
            raise ArtifactError(f"--set {item!r}: only decoding.* keys apply when translating a file")
    cfg = build_section(DecodeConfig, base, "decoding")
    if overrides:
        cfg = load_config(None, [*(f"decoding.{k}={json.dumps(v)}" for k, v in dataclasses.asdict(cfg).items()), *overrides]).decoding
    if beam_size is not None:
        cfg = dataclasses.replace(cfg, beam_size=beam_size)
    if checkpoint is not None:
        cfg = dataclasses.replace(cfg, checkpoint=checkpoint)
    if quantize is not None:
        cfg = dataclasses.replace(cfg, quantize=quantize)  # type: ignore[arg-type]
    return cfg


def _without_attention(hyps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k in ("text", "score", "log_prob")} for h in hyps]


def _alignment(hyps: list[dict[str, Any]]) -> dict[str, Any]:
    """The best hypothesis's pieces and attention; empty for an empty line."""
    if not hyps:
        return {"source_pieces": [], "target_pieces": [], "attention": []}
    return {k: hyps[0][k] for k in ("source_pieces", "target_pieces", "attention")}


def translate_file(
    run_ref: str, input_path: Optional[str], output_path: Optional[str], beam_size: Optional[int],
    checkpoint: Optional[str], overrides: list[str], n_best: Optional[int] = None, quantize: Optional[str] = None,
    alignments: Optional[str] = None, plot_dir: Optional[str] = None,
) -> None:
    run_dir = find_run_dir(run_ref)
    cfg = decode_config(run_dir, overrides, beam_size, checkpoint, quantize)
    device = pick_device(cfg.device)
    model, sp_src, sp_tgt, _ = load_checkpoint(run_dir / artifacts.TRAIN_DIR / cfg.checkpoint, device)
    model = prepare_for_inference(model, cfg, device)  # type: ignore[assignment]
    if input_path:
        lines = read_lines_strict(Path(input_path))
        where = input_path
    else:
        lines = [line.rstrip("\r\n") for line in sys.stdin]
        where = "<stdin>"
    want_attention = bool(alignments or plot_dir)
    nbest = translate_lines_nbest(model, sp_src, sp_tgt, lines, cfg, device, where, n_best or 1, want_attention)
    if n_best:
        hyps = [json.dumps({"line": i, "hypotheses": _without_attention(h)}, ensure_ascii=False)
                for i, h in enumerate(nbest, start=1)]
    else:
        hyps = [h[0]["text"] if h else "" for h in nbest]
    if alignments:
        rows = [json.dumps({"line": i, **_alignment(h)}, ensure_ascii=False) for i, h in enumerate(nbest, start=1)]
        write_lines_atomic(Path(alignments), rows)
    if plot_dir:
        folder = Path(plot_dir)
        folder.mkdir(parents=True, exist_ok=True)
        width = len(str(len(nbest)))
        for i, h in enumerate(nbest, start=1):
            if h:
                plot_attention(folder / f"line{i:0{width}d}.png", h[0]["source_pieces"], h[0]["target_pieces"],
                               h[0]["attention"], title=f"line {i}: {h[0]['text'][:80]}")
    if output_path:
        write_lines_atomic(Path(output_path), hyps)
    else:
        sys.stdout.write("".join(h + "\n" for h in hyps))
