"""`s2s translate --run RUN`: translate any text file (or stdin) with a trained run."""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, TextIO

from tqdm import tqdm

from pipeline.api import Hypothesis, Translator
from stages.errors import ConfigError, InputDataError, OutputError
from stages.files import (
    atomic_path,
    check_output_file,
    check_output_folder,
    iter_lines_strict,
    iter_stream_lines,
    line_end_of,
)
from stages.plots.attention import plot_attention


def load_translator(runs: Any, overrides: list[str], context: Optional[int], **decoding: Any) -> Translator:
    """`Translator.load` for the commands: an error about the context asked for names
    the `--context` option rather than the API's `context=` argument."""
    try:
        return Translator.load(runs, overrides=overrides, context=context, **decoding)
    except ConfigError as err:
        api_name = f"context={context}:"
        if str(err).startswith(api_name):
            raise ConfigError(f"--context {context}:{str(err)[len(api_name):]}") from None
        raise


def translate_file(
    run_dirs: list[Path], input_path: Optional[str], output_path: Optional[str], beam_size: Optional[int],
    checkpoint: Optional[str], overrides: list[str], n_best: Optional[int] = None, quantize: Optional[str] = None,
    alignments: Optional[str] = None, plot_dir: Optional[str] = None, context: Optional[int] = None,
) -> None:
    input_path = None if input_path == "-" else input_path  # `-`: standard input and output, as is usual
    output_path = None if output_path == "-" else output_path
    check_outputs(input_path, {"-o": output_path, "--alignments": alignments}, {"--plot-attention": plot_dir})
    translator = load_translator(run_dirs, overrides, context, beam_size=beam_size, checkpoint=checkpoint,
                                 quantize=quantize)
    source = iter_lines_strict(Path(input_path)) if input_path else _stdin_lines()
    want_attention = bool(alignments or plot_dir)
    if plot_dir:
        Path(plot_dir).mkdir(parents=True, exist_ok=True)
    bar = tqdm(desc="translate", unit="line", disable=None, dynamic_ncols=True)
    newline = _line_end(Path(input_path)) if input_path else "\n"
    with _sink(output_path, newline=newline) as out, _sink(alignments, optional=True) as align:
        lines = translator.translate_stream(source, n_best=n_best or 1, alignments=want_attention,
                                            where=input_path or "<stdin>")
        for number, hyps in enumerate(lines, start=1):
            _write_line(out, number, hyps, n_best)
            if align is not None:
                align.write(json.dumps({"line": number, **_alignment(hyps)}, ensure_ascii=False) + "\n")
            if plot_dir and hyps and hyps[0].attention:  # a line copied through has no attention to draw
                best = hyps[0]
                plot_attention(Path(plot_dir) / f"line{number}.png", best.source_pieces or [],
                               best.target_pieces or [], best.attention or [], title=f"line {number}: {best.text[:80]}")
            bar.update(1)
    bar.close()


def _alignment(hyps: list[Hypothesis]) -> dict[str, Any]:
    """The best hypothesis's pieces and attention; empty for an empty line."""
    if not hyps:
        return {"source_pieces": [], "target_pieces": [], "attention": []}
    best = hyps[0]
    return {"source_pieces": best.source_pieces, "target_pieces": best.target_pieces, "attention": best.attention}


def check_outputs(input_path: Optional[str], files: dict[str, Optional[str]],
                  folders: dict[str, Optional[str]]) -> None:
    """Refuse, before any work, outputs that cannot be written as asked, or that would
    replace the input (`option -> path`; None: not asked for)."""
    for option, raw in files.items():
        if raw == "-":  # only -o (translate) means standard output: there it is None by now
            raise OutputError(f"{option} -: standard output is not available for {option}; give a file name")
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


def _write_line(out: TextIO, number: int, hyps: list[Hypothesis], n_best: Optional[int]) -> None:
    if n_best:
        scored = [{"text": h.text, "score": h.score, "log_prob": h.log_prob} for h in hyps]
        out.write(json.dumps({"line": number, "hypotheses": scored}, ensure_ascii=False) + "\n")
    else:
        out.write((hyps[0].text if hyps else "") + "\n")


def _line_end(path: Path) -> str:
    """The input file's line end (`line_end_of` its first MiB), which the translation
    is written with; "\n" for a stream or a gzip file."""
    if not path.is_file() or path.suffix == ".gz":
        return "\n"
    with open(path, "rb") as handle:
        return line_end_of(handle.read(1 << 20))


@contextmanager
def _sink(path: Optional[str], optional: bool = False, newline: str = "\n") -> Iterator[Any]:
    """A text file written under a temporary name and renamed when complete, its lines
    ending in `newline`; stdout when no path is given (None when `optional`)."""
    if path is None:  # a failed write to stdout is reported where every command's is (cli._Commands)
        yield None if optional else sys.stdout
        return
    with atomic_path(Path(path)) as tmp:
        with open(tmp, "w", encoding="utf-8", newline=newline) as handle:
            yield handle
