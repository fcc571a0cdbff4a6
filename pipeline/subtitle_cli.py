"""`s2s subtitle --run RUN in.srt -o out.srt` and `s2s score hyp.srt ref.srt`."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from pipeline.api import Translator
from pipeline.files_cli import check_outputs
from stages.decode.config import ScoreConfig
from stages.decode.scoring import score_lines
from stages.errors import InputDataError
from stages.files import atomic_path, write_json_atomic
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
    run_dir: Path, input_path: str, output_path: str, *, fmt: Optional[str], to: Optional[str],
    encoding: Optional[str], report_path: Optional[str], context: Optional[int], overrides: list[str],
    beam_size: Optional[int], checkpoint: Optional[str], quantize: Optional[str], **limits: Any,
) -> dict[str, Any]:
    """Translate one subtitle file; write it (and its report) only once all of it is done."""
    report_path = report_path or f"{output_path}.report.json"
    check_outputs(input_path, {"-o": output_path, "--report": report_path}, {})
    doc = load_subtitles(Path(input_path), fmt, encoding)  # a bad file fails before the model loads
    fmt_out = (detect_format(Path(output_path), to, option="--to", verb="writes")
               if (to or Path(output_path).suffix) else doc.format)
    if fmt_out != doc.format:
        render(doc, [cue.lines for cue in doc.cues], fmt_out)  # a conversion that would move a cue: refused now
    translator = Translator.load(run_dir, overrides=overrides, context=context, beam_size=beam_size,
                                 checkpoint=checkpoint, quantize=quantize)
    result, report = translator.translate_subtitles(Path(input_path), format=fmt, to=fmt_out, encoding=encoding,
                                                    **limits)
    with atomic_path(Path(output_path)) as tmp:
        tmp.write_bytes(result.data)
    report["output"] = output_path
    write_json_atomic(Path(report_path), report)
    return report


def is_subtitle_path(path: str) -> bool:
    return Path(path).suffix.lower().lstrip(".") in FORMATS


def _cue_texts(doc: SubtitleDocument) -> list[str]:
    return [" ".join(line for line in strip_markup(cue.lines, doc.format) if line) for cue in doc.cues]


def score_subtitles(hyp_path: str, ref_path: str, tolerance_ms: int = 10) -> dict[str, Any]:
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
    result = score_lines(_cue_texts(hyp), _cue_texts(ref), ScoreConfig())
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
        f"empty translations: {c['empty_translations']}; overlapping cues: {c['overlapping_cues']}"
    )

