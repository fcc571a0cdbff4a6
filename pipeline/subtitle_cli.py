"""`s2s subtitle --run RUN in.srt -o out.srt` and `s2s score hyp.srt ref.srt`."""

from __future__ import annotations

import glob
import logging
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from tqdm import tqdm

from pipeline.files_cli import check_outputs, load_translator
from stages.decode.config import ScoreConfig
from stages.decode.scoring import score_lines
from stages.errors import InputDataError, OutputError, S2SError
from stages.files import (
    atomic_path,
    check_output_file,
    check_output_folder,
    write_error,
    write_json_atomic,
)
from stages.subtitles.formats import (
    FORMATS,
    SubtitleDocument,
    detect_format,
    load_subtitles,
    render,
)
from stages.subtitles.text import strip_markup

log = logging.getLogger(__name__)


def subtitle_file(
    run_dir: Path | list[Path], input_path: str, output_path: str, *, fmt: Optional[str], to: Optional[str],
    encoding: Optional[str], report_path: Optional[str], context: Optional[int], overrides: list[str],
    beam_size: Optional[int], checkpoint: Optional[str], quantize: Optional[str], **limits: Any,
) -> dict[str, Any]:
    """Translate one subtitle file; write it (and its report) only once all of it is done."""
    report_path = report_path or f"{output_path}.report.json"
    check_outputs(input_path, {"-o": output_path, "--report": report_path}, {})
    doc = load_subtitles(Path(input_path), fmt, encoding)  # a bad file fails before the model loads
    named = Path(output_path).suffix.lower().lstrip(".")
    if to and named in FORMATS and named != to:
        raise OutputError(f"-o {output_path} names {_a_format(named)} file, but --to {to} writes {_a_format(to)} one; "
                          f"give -o the .{to} extension or leave out --to")
    fmt_out = (detect_format(Path(output_path), to, option="--to", verb="writes")
               if (to or Path(output_path).suffix) else doc.format)
    if fmt_out != doc.format:
        render(doc, [cue.lines for cue in doc.cues], fmt_out)  # a conversion that would move a cue: refused now
    translator = load_translator(run_dir, overrides, context, beam_size=beam_size, checkpoint=checkpoint,
                                 quantize=quantize)
    result, report = translator.translate_subtitles(doc, to=fmt_out, **limits)
    with atomic_path(Path(output_path)) as tmp:
        tmp.write_bytes(result.data)
    report["output"] = output_path
    write_json_atomic(Path(report_path), report)
    return report


# The counts of a file's report, summed over the files in a folder's summary.
COUNTS = ("cues_in", "cues_out", "translated", "passed_through", "non_dialogue", "cross_cue_sentences",
          "lines_over_limit", "cues_over_max_lines", "cues_over_cps", "empty_translations", "overlapping_cues",
          "inner_tags_dropped", "fitted", "shortened", "no_fit")


def is_folder_job(inputs: Sequence[str], output: str) -> bool:
    """Several inputs, a folder or a glob, or an output that is a folder or has no
    extension: translate into the output folder."""
    single = len(inputs) == 1 and not Path(inputs[0]).is_dir() and not _has_glob(inputs[0])
    return not (single and Path(output).suffix != "" and not Path(output).is_dir())


def _glob_base(pattern: str) -> Path:
    """The folder a glob searches from: its leading parts without a wildcard."""
    parts = Path(pattern).parts
    fixed = [part for part in parts[: next(i for i, part in enumerate(parts) if any(c in part for c in "*?["))]]
    return Path(*fixed) if fixed else Path(".")


def _has_glob(text: str) -> bool:
    return any(ch in text for ch in "*?[") and not Path(text).exists()


def expand_inputs(inputs: Sequence[str], outdir: Optional[Path] = None) -> tuple[list[tuple[Path, Path]], list[Path]]:
    """(input file, its path under the output folder) for every file the inputs name:
    files as they are named, a folder's subtitle files (recursively, keeping their
    sub-folders), a glob's matches; and the files a folder or glob found that it leaves
    out: those inside `outdir` (unless it was named as an input) and earlier
    translations (`_is_output`). InputDataError for an input that names nothing."""
    found: list[tuple[Path, Path]] = []
    left_out: list[Path] = []
    inside = outdir.resolve() if outdir is not None else None

    def keep(files: list[Path], raw: str) -> list[Path]:
        out = [p for p in files if not _is_output(p)
               and (inside is None or inside == Path(raw).resolve() or inside not in p.resolve().parents)]
        left_out.extend(p for p in files if p not in out and (inside is None or inside not in p.resolve().parents))
        return out

    for raw in inputs:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and is_subtitle_path(str(p)))
            if not files:
                raise InputDataError(f"{raw}: a folder without .srt, .vtt, .ass or .ssa files")
            found += [(p, p.relative_to(path)) for p in keep(files, raw)]
        elif _has_glob(raw):
            matches = sorted(Path(p) for p in glob.glob(raw, recursive=True)
                             if Path(p).is_file() and is_subtitle_path(p))
            if not matches:
                raise InputDataError(f"{raw}: no .srt, .vtt, .ass or .ssa file matches this pattern")
            base = _glob_base(raw)  # "season/**/*.srt": sub-folders below season/ are kept, as for a folder
            found += [(p, p.relative_to(base)) for p in keep(matches, raw)]
        elif path.is_file():
            found.append((path, Path(path.name)))
        else:
            raise InputDataError(f"{raw}: file not found")
    seen: dict[Path, Path] = {}
    for source, relative in found:
        if relative in seen and seen[relative].resolve() != source.resolve():
            raise InputDataError(f"{source} and {seen[relative]} would both be written as {relative}; "
                                 f"translate them in two commands or into two folders")
        seen[relative] = source
    return list({src.resolve(): (src, rel) for src, rel in found}.values()), left_out


def subtitle_files(
    run_dir: Path | list[Path], inputs: list[str], outdir: str, *, summary_path: Optional[str], echo: Callable[[str], None],
    fmt: Optional[str], to: Optional[str], encoding: Optional[str], context: Optional[int], overrides: list[str],
    beam_size: Optional[int], checkpoint: Optional[str], quantize: Optional[str], **limits: Any,
) -> dict[str, Any]:
    """Translate many subtitle files with one model load into `outdir` (same names, or
    the `to` extension), each with its report beside it; a file that fails is reported
    and skipped. Writes and returns the summary."""
    folder = Path(outdir)
    jobs, earlier = expand_inputs(inputs, folder)
    if earlier:  # a translation s2s wrote earlier (its report beside it), found in a folder or by a pattern
        echo(f"left out {len(earlier)} earlier translation{'s' if len(earlier) != 1 else ''} (a .report.json "
             f"beside {'each' if len(earlier) != 1 else 'it'}: {earlier[0]}{', ...' if len(earlier) > 1 else ''}); "
             f"name a file to translate it again")
    if not jobs:
        raise InputDataError(f"{', '.join(inputs)}: no subtitle files outside the output folder {outdir}"
                             f"{' that are not earlier translations' if earlier else ''}")
    inputs_need = f"{len(jobs)} input{'s' if len(jobs) != 1 else ''} {'need' if len(jobs) != 1 else 'needs'}"
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"-o {outdir}: a file, but {inputs_need} an output folder; give a folder")
    if not folder.exists() and is_subtitle_path(str(folder)):
        raise OutputError(f"-o {outdir}: named like a subtitle file, but {inputs_need} an output folder; give a "
                          f"folder name (a pattern such as *.srt left unquoted names every match as an input)")
    check_output_folder(folder, "-o")
    if summary_path:
        check_output_file(summary_path, "--report")
    sources = {src.resolve(): src for src, _ in jobs}
    targets = [(src, folder / (rel.with_suffix(f".{to}") if to else rel)) for src, rel in jobs]
    seen: dict[Path, Path] = {}
    for src, dst in targets:
        if dst in seen:
            raise InputDataError(f"{src} and {seen[dst]} would both be written as {dst}; translate them in two "
                                 f"commands or into two folders")
        seen[dst] = src
        if dst.resolve() in sources:
            raise OutputError(f"-o {outdir}: writing {dst} would replace the input {sources[dst.resolve()]}; "
                              f"give another output folder")
    summary_file = Path(summary_path) if summary_path else folder / "summary.json"
    taken = {p.resolve() for _, dst in targets for p in (dst, Path(f"{dst}.report.json"))} | set(sources)
    if summary_file.resolve() in taken:
        raise OutputError(f"--report {summary_file}: that is an input, an output or a file's report; give the "
                          f"summary another name (default: {folder / 'summary.json'})")
    translator = load_translator(run_dir, overrides, context, beam_size=beam_size, checkpoint=checkpoint,
                                 quantize=quantize)  # a bad option stops before -o is made
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(folder, exc) from exc
    docs: dict[Path, Any] = {}
    failed: list[dict[str, str]] = []
    for src, _ in targets:
        try:
            docs[src] = load_subtitles(src, fmt, encoding)
        except S2SError as exc:
            failed.append({"input": str(src), "error": str(exc)})
            echo(f"skipped {src}: {exc}")
    written = []
    bar = tqdm(total=sum(len(d.cues) for d in docs.values()), desc="subtitle", unit="cue", disable=None,
               dynamic_ncols=True)
    try:
        for src, dst in targets:
            if src not in docs:
                continue
            try:
                result, report = translator.translate_subtitles(docs[src], to=to, **limits)
                try:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                except OSError as exc:
                    raise write_error(dst, exc) from exc
                with atomic_path(dst) as tmp:
                    tmp.write_bytes(result.data)
                report["output"] = str(dst)
                write_json_atomic(Path(f"{dst}.report.json"), report)
                written.append(report)
                echo(describe(report))
            except S2SError as exc:
                failed.append({"input": str(src), "error": str(exc)})
                echo(f"skipped {src}: {exc}")
            bar.update(len(docs[src].cues))
    except KeyboardInterrupt:  # what is written is complete: say what, then stop
        bar.close()
        _write_summary(summary_file, targets, written, failed, interrupted=True)
        echo(f"interrupted: {len(written)} of {len(targets)} files written to {outdir}, each complete "
             f"(summary: {summary_file})")
        raise
    bar.close()
    summary = _write_summary(summary_file, targets, written, failed, interrupted=False)
    totals = summary["counts"]
    lim = written[0]["limits"] if written else {"max_lines": "?", "max_chars": "?"}
    echo(f"{len(written)} of {len(targets)} files written to {outdir} (summary: {summary_file}); cues "
         f"{totals['cues_out']}, translated {totals['translated']}, over {lim['max_lines']} lines "
         f"{totals['cues_over_max_lines']}, a line over {lim['max_chars']} chars {totals['lines_over_limit']}")
    return summary


def _write_summary(path: Path, targets: list[tuple[Path, Path]], written: list[dict[str, Any]],
                   failed: list[dict[str, str]], interrupted: bool) -> dict[str, Any]:
    """Write and return a folder job's summary: files, those written and failed, the
    counts summed (and `interrupted` after a Ctrl-C)."""
    totals = {key: sum(r["counts"][key] for r in written) for key in COUNTS}
    summary: dict[str, Any] = {"files": len(targets), "written": [r["output"] for r in written], "failed": failed,
                               "counts": totals}
    if interrupted:
        summary["interrupted"] = True
    write_json_atomic(path, summary)
    return summary


def _a_format(fmt: str) -> str:
    return f"{'an' if fmt in ('srt', 'ass', 'ssa') else 'a'} {fmt.upper()}"


def _is_output(path: Path) -> bool:
    """Whether `path` is a translation s2s wrote: its report lies beside it."""
    return Path(f"{path}.report.json").is_file()


def is_subtitle_path(path: str) -> bool:
    return Path(path).suffix.lower().lstrip(".") in FORMATS


def _cue_texts(doc: SubtitleDocument) -> list[str]:
    return [" ".join(line for line in strip_markup(cue.lines, doc.format) if line) for cue in doc.cues]


def score_subtitles(hyp_path: str, ref_path: str, tolerance_ms: int = 10, cfg: ScoreConfig = ScoreConfig()
                    ) -> dict[str, Any]:
    """BLEU and chrF over cues, once both files are shown to have the same cues and timings."""
    hyp, ref = load_subtitles(Path(hyp_path)), load_subtitles(Path(ref_path))
    if len(hyp.cues) != len(ref.cues):
        raise InputDataError(
            f"{hyp_path} has {len(hyp.cues)} cues but {ref_path} has {len(ref.cues)}; "
            f"score a translation against the reference of the same episode"
        )
    for h, r in zip(hyp.cues, ref.cues):
        if abs(h.start - r.start) > tolerance_ms or abs(h.end - r.end) > tolerance_ms:
            raise InputDataError(
                f"{hyp_path}:{h.line}: cue {h.number} runs {_clock(h.start)} --> {_clock(h.end)} but in "
                f"{ref_path}:{r.line} it runs {_clock(r.start)} --> {_clock(r.end)}; the timings must match"
            )
    result = score_lines(_cue_texts(hyp), _cue_texts(ref), cfg)
    result["cues"] = result.pop("sentences")
    return result


def _clock(ms: int) -> str:
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def describe(report: dict[str, Any]) -> str:
    c = report["counts"]
    lim = report["limits"]
    return (
        f"{report['input']} ({report['format_in']}, {report['encoding']}) -> {report['output']} ({report['format_out']})\n"
        f"cues in {c['cues_in']}, out {c['cues_out']}; translated {c['translated']}, passed through "
        f"{c['passed_through']} (not speech: {c['non_dialogue']}); sentences across cues "
        f"{c['cross_cue_sentences']}; context {report['context']}\n"
        f"cues with a line over {lim['max_chars']} chars: {c['lines_over_limit']}; over {lim['max_lines']} lines: "
        f"{c['cues_over_max_lines']}; over {lim['max_cps']:g} chars/s: {c['cues_over_cps']}; "
        f"empty translations: {c['empty_translations']}; overlapping cues: {c['overlapping_cues']}\n"
        f"fit to the cue with another hypothesis: {c['fitted']}; shortened to fit: {c['shortened']}; "
        f"still over the box: {c['no_fit']}"
    )

