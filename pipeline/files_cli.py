"""`s2s translate --run RUN`: translate any text file (or stdin) with a trained run."""

from __future__ import annotations

import dataclasses
import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, TextIO

from tqdm import tqdm

from pipeline.config import RunConfig, apply_overrides, build_section, validate
from stages import artifacts
from stages.corpus.vocab import CONTEXT_SEP, with_context, without_context
from stages.decode.config import DecodeConfig
from stages.decode.translation import prepare_for_inference, translate_lines_nbest
from stages.devices import pick_device
from stages.errors import ArtifactError, ConfigError, InputDataError, OutputError
from stages.files import (
    atomic_path,
    check_output_file,
    check_output_folder,
    iter_lines_strict,
    iter_stream_lines,
)
from stages.model.checkpoint import load_checkpoint
from stages.plots.attention import plot_attention


def saved_section(run_dir: Path, section: str) -> dict[str, Any]:
    """One section of the config the run was made with ({} for a bare checkpoint folder)."""
    saved = run_dir / artifacts.RESOLVED_CONFIG
    if not saved.exists():
        return {}
    return dict(json.loads(saved.read_text(encoding="utf-8")).get(section, {}))


def run_context(run_dir: Path) -> int:
    """`data.context` of the run: how many previous sentences its model was trained with."""
    return int(saved_section(run_dir, "data").get("context", 0))


def context_size(run_dir: Path, asked: Optional[int]) -> tuple[int, bool]:
    """(previous sentences to give the model, whether it is a context model)."""
    trained = run_context(run_dir)
    if asked and not trained:
        raise ConfigError(
            f"--context {asked}: {run_dir} was trained without context (data.context: 0); "
            f"train a run with data.context: 1 for context, or leave out --context"
        )
    return (trained if asked is None else asked), bool(trained)


def decode_config(
    run_dir: Path, overrides: list[str], beam_size: Optional[int], checkpoint: Optional[str], quantize: Optional[str] = None
) -> DecodeConfig:
    """The run's own decoding section, then --set overrides, then the flags."""
    base = saved_section(run_dir, "decoding")
    for item in overrides:
        if not item.startswith("decoding."):
            raise ArtifactError(f"--set {item!r}: only decoding.* keys apply when translating a file")
    raw = apply_overrides({"decoding": dict(base)}, overrides)
    cfg = build_section(DecodeConfig, raw["decoding"], "decoding")
    problems = validate(RunConfig(decoding=cfg))
    if problems:
        raise ConfigError("; ".join(problems))
    if beam_size is not None:
        cfg = dataclasses.replace(cfg, beam_size=beam_size)
    if checkpoint is not None:
        cfg = dataclasses.replace(cfg, checkpoint=checkpoint)
    if quantize is not None:
        cfg = dataclasses.replace(cfg, quantize=quantize)  # type: ignore[arg-type]
    return cfg


def load_for_decoding(run_dir: Path, cfg: DecodeConfig, device: str) -> tuple[Any, Any, Any]:
    """The model (quantized if asked) and tokenizers of `decoding.checkpoint`: best or
    last of the run, or a checkpoint folder."""
    folder = run_dir / artifacts.TRAIN_DIR / cfg.checkpoint
    if cfg.checkpoint not in (artifacts.CKPT_BEST, artifacts.CKPT_LAST):
        folder = Path(cfg.checkpoint)
    model, sp_src, sp_tgt, _ = load_checkpoint(folder, device)
    return prepare_for_inference(model, cfg, device), sp_src, sp_tgt


def _without_attention(hyps: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in h.items() if k in ("text", "score", "log_prob")} for h in hyps]


def _alignment(hyps: list[dict[str, Any]]) -> dict[str, Any]:
    """The best hypothesis's pieces and attention; empty for an empty line."""
    if not hyps:
        return {"source_pieces": [], "target_pieces": [], "attention": []}
    return {k: hyps[0][k] for k in ("source_pieces", "target_pieces", "attention")}


def translate_file(
    run_dir: Path, input_path: Optional[str], output_path: Optional[str], beam_size: Optional[int],
    checkpoint: Optional[str], overrides: list[str], n_best: Optional[int] = None, quantize: Optional[str] = None,
    alignments: Optional[str] = None, plot_dir: Optional[str] = None, context: Optional[int] = None,
) -> None:
    check_outputs(input_path, {"-o": output_path, "--alignments": alignments}, {"--plot-attention": plot_dir})
    size, context_model = context_size(run_dir, context)
    cfg = decode_config(run_dir, overrides, beam_size, checkpoint, quantize)
    device = pick_device(cfg.device)
    model, sp_src, sp_tgt = load_for_decoding(run_dir, cfg, device)
    source = iter_lines_strict(Path(input_path)) if input_path else _stdin_lines()
    where = input_path or "<stdin>"
    source = with_context(source, size, CONTEXT_SEP) if context_model else without_context(source)
    want_attention = bool(alignments or plot_dir)
    if plot_dir:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
    bar = tqdm(desc="translate", unit="line", disable=None, dynamic_ncols=True)
    with _sink(output_path) as out, _sink(alignments, optional=True) as align:
        done = 0
        for chunk in _chunks(source, cfg.stream_lines):
            nbest = translate_lines_nbest(
                model, sp_src, sp_tgt, chunk, cfg, device, where, n_best or 1, want_attention, done + 1
            )
            for number, hyps in enumerate(nbest, start=done + 1):
                _write_line(out, number, hyps, n_best)
                if align is not None:
                    align.write(json.dumps({"line": number, **_alignment(hyps)}, ensure_ascii=False) + "\n")
                if plot_dir and hyps:
                    best = hyps[0]
                    plot_attention(Path(plot_dir) / f"line{number}.png", best["source_pieces"], best["target_pieces"],
                                   best["attention"], title=f"line {number}: {best['text'][:80]}")
            done += len(chunk)
            bar.update(len(chunk))
    bar.close()


def check_outputs(input_path: Optional[str], files: dict[str, Optional[str]],
                  folders: dict[str, Optional[str]]) -> None:
    """Refuse, before any work, outputs that cannot be written as asked, or that would
    replace the input (`option -> path`; None: not asked for)."""
    for option, raw in files.items():
        if raw:
            check_output_file(raw, option)
    given = {option: Path(path) for option, path in files.items() if path}
    for option, path in given.items():
        if input_path and path.resolve() == Path(input_path).resolve():
            raise OutputError(f"{option} {path} is the input file, which writing would replace; give another path")
    for option, folder in folders.items():
        if folder:
            check_output_folder(Path(folder), option)
    paths = list(given.values())
    for i, path in enumerate(paths):
        if any(path.resolve() == other.resolve() for other in paths[i + 1:]):
            raise OutputError(f"{path} is given for two outputs; give each its own path")


def _stdin_lines() -> Iterator[str]:
    """Standard input, read and checked exactly like an input file named `<stdin>`."""
    if sys.stdin is None or sys.stdin.closed:
        raise InputDataError("<stdin>: standard input is closed; give the input file with -i FILE")
    return iter_stream_lines(sys.stdin.buffer, "<stdin>")


def _write_line(out: TextIO, number: int, hyps: list[dict[str, Any]], n_best: Optional[int]) -> None:
    if n_best:
        out.write(json.dumps({"line": number, "hypotheses": _without_attention(hyps)}, ensure_ascii=False) + "\n")
    else:
        out.write((hyps[0]["text"] if hyps else "") + "\n")


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@contextmanager
def _sink(path: Optional[str], optional: bool = False) -> Iterator[Any]:
    """A text file written under a temporary name and renamed when complete; stdout when
    no path is given (None when `optional`)."""
    if path is None:
        yield None if optional else sys.stdout
        return
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "w", encoding="utf-8") as handle:
            yield handle
