"""Translate a subtitle document cue by cue, keeping its timing, and report on the result.

Cues whose text runs on (no sentence end, the next cue close in time) are translated as
one sentence and the translation is cut back across them in proportion to the source.
With a context model (trained with `data.context: N`), each sentence goes to the model
behind the previous N sentences of the file and the separator token, as in training.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from stages.checks import at_least_one, in_range, not_negative
from stages.corpus.vocab import has_words, join_context, user_text
from stages.subtitles.formats import (
    Cue,
    Format,
    SubtitleDocument,
    overlapping_cues,
    placement,
)
from stages.subtitles.nondialogue import non_dialogue_reason
from stages.subtitles.text import (
    CueText,
    Segment,
    ends_sentence,
    parse_cue,
    reading_speed,
    split_by_share,
    strip_markup,
    wrap_line,
)

Translator = Callable[[list[str]], list[str]]
NBest = Callable[[list[str], int], list[list[tuple[str, float]]]]  # inputs, n -> (text, score) lists
Shorten = Callable[[list[str], list[int]], list[str]]  # inputs, character limits -> translations within them
SHORTEN_ROUNDS = (1.0, 0.9, 0.8, 0.7, 0.6, 0.5)  # limits tried, as shares of min(box, best's length)


@dataclass(frozen=True, kw_only=True)
class SubtitleConfig:
    max_chars: int = 42  # characters per line
    max_lines: int = 2  # lines per cue
    max_cps: float = 17.0  # reading speed limit, characters per second
    max_gap_ms: int = 1500  # cues further apart never share a sentence
    max_group: int = 4  # at most this many cues per sentence
    context: int = 0  # previous sentences fed to a context model (0: none)
    separator: str = ""  # the token between context and sentence; empty: not a context model
    bilingual: bool = False  # keep the source lines under the translation
    translate_non_dialogue: bool = False  # translate credits, links, symbol-only cues and title cards too
    fit_nbest: int = 5  # fit-to-cue: hypotheses per unit to choose from (1: the best only)
    fit_margin: float = 1.0  # ... at most this far below the best's score
    fit_shorten: bool = True  # when no hypothesis fits: search again for a shorter translation that does

    def problems(self) -> list[str]:
        return (at_least_one("subtitles", self, ("max_lines", "max_group", "fit_nbest"))
                + not_negative("subtitles", self, ("max_gap_ms", "context", "fit_margin"))
                + in_range("subtitles", self, "max_chars", 10, True, float("inf"), False, "42")
                + in_range("subtitles", self, "max_cps", 0.0, False, float("inf"), False, "17"))


@dataclass
class Unit:
    """One model input: a segment of one cue, or the joined segments of several cues."""

    members: list[tuple[int, int]]  # (cue index, segment index)
    text: str


@dataclass
class Report:
    cues_in: int = 0
    cues_out: int = 0
    translated: int = 0
    passed_through: list[int] = field(default_factory=list)
    cross_cue_sentences: int = 0
    lines_over_limit: list[int] = field(default_factory=list)
    cues_over_max_lines: list[int] = field(default_factory=list)
    cues_over_cps: list[int] = field(default_factory=list)
    empty_translations: list[int] = field(default_factory=list)
    overlapping_cues: list[int] = field(default_factory=list)
    inner_tags_dropped: int = 0
    non_dialogue: list[dict[str, Any]] = field(default_factory=list)  # {cue, reason, text}, passed through
    fitted: list[int] = field(default_factory=list)  # cues that took a hypothesis other than the best, to fit
    shortened: list[int] = field(default_factory=list)  # cues that took a length-limited search's translation, to fit
    no_fit: list[int] = field(default_factory=list)  # cues whose text still breaks the box (lines or characters)

    def as_dict(self, doc: SubtitleDocument, cfg: SubtitleConfig, fmt_out: Format) -> dict[str, Any]:
        counts = {k: len(v) if isinstance(v, list) else v for k, v in vars(self).items()}
        return {
            "input": doc.path, "format_in": doc.format, "format_out": fmt_out, "encoding": doc.encoding,
            "limits": {"max_chars": cfg.max_chars, "max_lines": cfg.max_lines, "max_cps": cfg.max_cps},
            "context": cfg.context, "counts": counts,
            "cues": {k: v for k, v in vars(self).items() if isinstance(v, list)},
        }


def group_units(cues: list[CueText], doc: SubtitleDocument, cfg: SubtitleConfig) -> list[Unit]:
    """Every segment becomes a unit; a run of joinable cues without a sentence end between
    them becomes one unit."""
    units: list[Unit] = []
    i = 0
    while i < len(cues):
        if not doc.cues[i].translatable:
            i += 1
            continue
        if not _joins(cues[i]):
            units += [Unit([(i, s)], seg.text) for s, seg in enumerate(cues[i].segments)]
            i += 1
            continue
        run = [i]
        while (
            len(run) < cfg.max_group
            and run[-1] + 1 < len(cues)
            and not ends_sentence(cues[run[-1]].segments[0].text)
            and _continues(cues, doc, run[-1] + 1, cfg.max_gap_ms)
        ):
            run.append(run[-1] + 1)
        units.append(Unit([(c, 0) for c in run], " ".join(cues[c].segments[0].text for c in run)))
        i = run[-1] + 1
    return units


def _joins(cue: CueText) -> bool:
    """A cue of plain speech with words in it may share a sentence with its neighbours
    (a cue of "..." or "♪", copied as it is, may not)."""
    return cue.joinable and has_words(cue.segments[0].text)


def _continues(cues: list[CueText], doc: SubtitleDocument, nxt: int, max_gap_ms: int) -> bool:
    """Cue `nxt` can carry on the sentence of the cue before it: it follows within
    `max_gap_ms`, the cue before does not break off (`--` or a dash, then a capital:
    "And God said--" / "Get out!"; a dash before a small letter runs on: "one another—"
    / "unlike Cain"), and both are placed
    and marked up alike (a sign at the top, another style or actor, italics for a voice
    off screen are another speaker; a cue placed by its own tag, `{\\an8}`, is a sign and
    joins no other)."""
    gap = doc.cues[nxt].start - doc.cues[nxt - 1].end
    return (
        doc.cues[nxt].translatable and _joins(cues[nxt]) and not cues[nxt].segments[0].before
        and 0 <= gap <= max_gap_ms
        and not (_BREAKS_OFF.search(cues[nxt - 1].segments[0].text) and not cues[nxt].segments[0].text[:1].islower())
        and (cues[nxt - 1].prefix, cues[nxt - 1].suffix) == (cues[nxt].prefix, cues[nxt].suffix)
        and not _PLACED.search(cues[nxt].prefix)
        and placement(doc, nxt - 1) == placement(doc, nxt)
    )


# A cue placed by its own tag ({\an8}, {\pos(x,y)}): a sign, a caption of its own.
_PLACED = re.compile(r"\\(an\d|pos\(|move\()")
# A line cut off by the next speaker or a change of thought: "And God said--", "I—".
_BREAKS_OFF = re.compile(r"(--|[\u2013\u2014])[\"'\u201d\u2019]*\s*$")


def model_inputs(units: list[Unit], cues: list[CueText], cfg: SubtitleConfig) -> list[str]:
    """Each unit's text, behind the previous `cfg.context` spoken units when the model
    was trained with context (sound cues, lyrics and units without a letter are not
    context)."""
    if not cfg.separator:
        return [user_text(u.text) for u in units]
    inputs: list[str] = []
    history: list[str] = []
    for unit in units:
        cue, seg = unit.members[0]
        previous = history[-cfg.context :] if cfg.context else []
        inputs.append(join_context(previous, unit.text, cfg.separator))
        if cues[cue].segments[seg].kind in ("speech", "dialogue") and has_words(unit.text):
            history.append(unit.text)
    return inputs


def translate_document(
    doc: SubtitleDocument, translate: Translator, cfg: SubtitleConfig, fmt_out: Optional[Format] = None,
    nbest: Optional[NBest] = None, shorten: Optional[Shorten] = None,
) -> tuple[list[list[str]], dict[str, Any]]:
    """New text lines for every cue, and the compliance report.

    With `nbest` (model inputs and n -> per input its (text, score) hypotheses, best
    first) and `cfg.fit_nbest` above 1, each unit takes the best-scoring hypothesis
    within `cfg.fit_margin` of the best whose text fits its cues' box: at most max_lines
    lines of max_chars, and where possible at most max_cps. With `shorten` (model inputs
    and a limit in characters for each -> translations within them) and
    `cfg.fit_shorten`, a unit that still breaks its box, where its source cues do not,
    is searched again under shrinking character limits until it fits (the report's
    `shortened`). Cues whose text still breaks the box are listed in `no_fit`."""
    report = Report(cues_in=len(doc.cues), overlapping_cues=overlapping_cues(doc))
    cues = [parse_cue(c.lines, doc.format) if c.translatable and not _non_dialogue(c, doc, cfg, report) else CueText([])
            for c in doc.cues]
    units = group_units(cues, doc, cfg)
    fitting = nbest is not None and cfg.fit_nbest > 1 and bool(units)
    candidates = nbest(model_inputs(units, cues, cfg), cfg.fit_nbest) if fitting and nbest else []
    if fitting:
        outputs = [c[0][0] if c else "" for c in candidates]
    else:
        outputs = translate(model_inputs(units, cues, cfg)) if units else []
    pieces: dict[tuple[int, int], str] = {}
    retry: list[Unit] = []
    for unit, out in zip(units, outputs):
        parts = split_by_share(out, [len(cues[c].segments[s].text) for c, s in unit.members])
        if parts is None and len(unit.members) > 1:
            # Fewer words than cues: translate those cues one by one rather than leave one empty.
            retry += [Unit([m], cues[m[0]].segments[m[1]].text) for m in unit.members]
            continue
        report.cross_cue_sentences += len(unit.members) > 1
        for member, part in zip(unit.members, parts or [out]):
            pieces[member] = part
    if retry:
        for unit, out in zip(retry, translate(model_inputs(retry, cues, cfg))):
            pieces[unit.members[0]] = out
    retried = {m for unit in retry for m in unit.members}
    for unit, hyps in zip(units, candidates):
        if unit.members[0] not in retried:
            _fit(unit, hyps, cues, pieces, doc, cfg, report)
    final = [u for u in units if u.members[0] not in retried] + retry
    if shorten is not None and cfg.fit_shorten:
        _shorten(final, shorten, cues, pieces, doc, cfg, report)
    report.no_fit = [doc.cues[c].number for c in sorted({c for u in final for c, _ in u.members})
                     if not _fits(doc.cues[c], _text_lines(c, cues[c], pieces, doc, cfg), cfg, False)]
    report.shortened = [n for n in report.shortened if n not in set(report.no_fit)]  # those that now fit
    texts = [_assemble(i, cue, cues[i], pieces, doc, cfg, report) for i, cue in enumerate(doc.cues)]
    # ASS drawings have no place in SRT or VTT: a conversion leaves them out (formats.render).
    report.cues_out = sum(c.translatable or (fmt_out or doc.format) in ("ass", "ssa") for c in doc.cues)
    return texts, report.as_dict(doc, cfg, fmt_out or doc.format)


def _non_dialogue(cue: Cue, doc: SubtitleDocument, cfg: SubtitleConfig, report: Report) -> bool:
    """Whether to pass the cue through as not speech (noted in the report)."""
    if cfg.translate_non_dialogue:
        return False
    text = " ".join(line for line in strip_markup(cue.lines, doc.format) if line)
    reason = non_dialogue_reason(text)
    if reason:
        report.non_dialogue.append({"cue": cue.number, "reason": reason, "text": text})
    return reason is not None


def _fit(unit: Unit, hyps: list[tuple[str, float]], cues: list[CueText], pieces: dict[tuple[int, int], str],
         doc: SubtitleDocument, cfg: SubtitleConfig, report: Report) -> None:
    """Give the unit the best hypothesis within the margin that fits its cues' box."""
    touched = sorted({c for c, _ in unit.members})

    def fits(strict: bool) -> bool:
        return all(_fits(doc.cues[c], _text_lines(c, cues[c], pieces, doc, cfg), cfg, strict) for c in touched)

    if not hyps or fits(True):
        return
    best = {m: pieces.get(m, "") for m in unit.members}
    shares = [len(cues[c].segments[s].text) for c, s in unit.members]
    choice = None
    for strict in (True, False):  # the reading speed too if any hypothesis allows it, else lines and length
        for k, (text, score) in enumerate(hyps):
            if score < hyps[0][1] - cfg.fit_margin:
                break
            parts = split_by_share(text, shares) if len(unit.members) > 1 else [text]
            if parts is None:
                continue
            pieces.update(zip(unit.members, parts))
            if fits(strict):
                choice = k
                break
        if choice is not None:
            break
    if choice is None:
        pieces.update(best)
    elif choice > 0:
        report.fitted += [doc.cues[c].number for c in touched]


def _shorten(units: list[Unit], shorten: Shorten, cues: list[CueText], pieces: dict[tuple[int, int], str],
             doc: SubtitleDocument, cfg: SubtitleConfig, report: Report) -> None:
    """Search the units that break their box again, each under a limit in characters
    that shrinks round by round (`SHORTEN_ROUNDS`) until its text fits. Only the cues
    whose source keeps to the box are held to it; a dialogue cue's speakers are units of
    their own, each held to its own line. A sentence over several cues whose shorter
    translation has fewer words than cues is searched again cue by cue, from the first
    round, as the first pass does."""
    def unit_ok(unit: Unit) -> bool:
        return all(_member_fits(c, s, cues, pieces, doc, cfg) for c, s in unit.members if _source_fits(doc.cues[c], doc, cfg))

    inputs: dict[int, str] = {}
    start: dict[int, int] = {}

    def begin(new: list[Unit]) -> list[Unit]:
        """The units of `new` to shorten, with their inputs and their first limits."""
        new = [u for u in new if not unit_ok(u)]
        inputs.update(zip(map(id, new), model_inputs(new, cues, cfg)))
        start.update({id(u): min(sum(_capacity(cues[c], s, cfg) for c, s in u.members),
                                 len(" ".join(pieces.get(m, "") for m in u.members))) for u in new})
        return new

    todo = begin(units)
    rounds = {id(u): 0 for u in todo}  # the rounds each unit has had
    done: set[int] = set()
    while todo:
        limits = [max(1, int(start[id(u)] * SHORTEN_ROUNDS[rounds[id(u)]])) for u in todo]
        split: list[Unit] = []
        for unit, text in zip(todo, shorten([inputs[id(u)] for u in todo], limits)):
            rounds[id(unit)] += 1
            shares = [len(cues[c].segments[s].text) for c, s in unit.members]
            parts = split_by_share(text, shares) if len(unit.members) > 1 else [text]
            if parts is None and len(unit.members) > 1:
                split.append(unit)
                continue
            if parts is None or not text.strip():
                continue
            before = {m: pieces.get(m, "") for m in unit.members}
            pieces.update(zip(unit.members, parts))
            if unit_ok(unit):
                done |= {doc.cues[c].number for c, _ in unit.members}
            else:
                pieces.update(before)
        singles = begin([Unit([m], cues[m[0]].segments[m[1]].text) for u in split for m in u.members])
        rounds.update({id(u): 0 for u in singles})
        gone = {id(u) for u in split}
        todo = [u for u in todo if id(u) not in gone and not unit_ok(u) and rounds[id(u)] < len(SHORTEN_ROUNDS)] + singles
    report.shortened = sorted(done)


def _member_fits(c: int, s: int, cues: list[CueText], pieces: dict[tuple[int, int], str], doc: SubtitleDocument,
                 cfg: SubtitleConfig) -> bool:
    """Segment s of cue c keeps to the box: a dialogue cue's speaker to one line of
    max_chars, any other segment with its whole cue."""
    if cues[c].own_lines:
        seg = cues[c].segments[s]
        return len(_frame(seg, " ".join(pieces.get((c, s), "").split()) or seg.text, doc.format)) <= cfg.max_chars
    return _fits(doc.cues[c], _text_lines(c, cues[c], pieces, doc, cfg), cfg, False)


def _capacity(parsed: CueText, s: int, cfg: SubtitleConfig) -> int:
    """The characters segment s of a cue may hold: a dialogue speaker's line less its
    frame ("- "), else its share of the cue's box."""
    if parsed.own_lines:
        seg = parsed.segments[s]
        return max(1, cfg.max_chars - len(seg.before) - len(seg.after))
    return cfg.max_lines * cfg.max_chars // max(1, len(parsed.segments))


def _source_fits(cue: Cue, doc: SubtitleDocument, cfg: SubtitleConfig) -> bool:
    """The source cue keeps to the box itself (at most max_lines lines of max_chars)."""
    return _fits(cue, [line for line in strip_markup(cue.lines, doc.format) if line], cfg, False)


def _fits(cue: Cue, lines: list[str], cfg: SubtitleConfig, reading_speed_too: bool) -> bool:
    box = len(lines) <= cfg.max_lines and all(len(line) <= cfg.max_chars for line in lines)
    return box and (not reading_speed_too or reading_speed(lines, cue.start, cue.end) <= cfg.max_cps)


def _text_lines(i: int, parsed: CueText, pieces: dict[tuple[int, int], str], doc: SubtitleDocument,
                cfg: SubtitleConfig) -> list[str]:
    """The cue's translated text lines, wrapped, before markup (an empty translation
    keeps the source)."""
    texts = []
    for s, seg in enumerate(parsed.segments):
        text = " ".join(pieces.get((i, s), "").split()) or seg.text
        texts.append(_frame(seg, text, doc.format))
    if parsed.own_lines:
        return [line for t in texts for line in wrap_line(t, cfg.max_chars, 1)]
    return wrap_line(" ".join(texts), cfg.max_chars, cfg.max_lines)


def _assemble(
    i: int, cue: Cue, parsed: CueText, pieces: dict[tuple[int, int], str], doc: SubtitleDocument,
    cfg: SubtitleConfig, report: Report,
) -> list[str]:
    if not parsed.segments:
        report.passed_through.append(cue.number)
        return list(cue.lines)
    report.translated += 1
    report.inner_tags_dropped += parsed.inner_tags_dropped
    if any(not " ".join(pieces.get((i, s), "").split()) for s in range(len(parsed.segments))):
        report.empty_translations.append(cue.number)  # those segments keep the source rather than go empty
    lines = _text_lines(i, parsed, pieces, doc, cfg)
    _check_norms(cue, lines, cfg, report)
    if doc.format == "vtt":
        lines = [html.escape(line, quote=False) for line in lines]
    lines = _markup(lines, parsed)
    return lines + list(cue.lines) if cfg.bilingual else lines


def _frame(seg: Segment, text: str, fmt: str) -> str:
    if seg.shout:
        text = text.upper()
    if fmt in ("ass", "ssa"):
        text = text.replace("{", "(").replace("}", ")")
    if seg.kind == "sound":
        text = text.strip("[]()")
    return f"{seg.before}{text}{seg.after}"


def _check_norms(cue: Cue, lines: list[str], cfg: SubtitleConfig, report: Report) -> None:
    if any(len(line) > cfg.max_chars for line in lines):
        report.lines_over_limit.append(cue.number)
    if len(lines) > cfg.max_lines:
        report.cues_over_max_lines.append(cue.number)
    if reading_speed(lines, cue.start, cue.end) > cfg.max_cps:
        report.cues_over_cps.append(cue.number)


def _markup(lines: list[str], parsed: CueText) -> list[str]:
    if parsed.line_marks and len(lines) == len(parsed.line_marks):  # each speaker's own tags
        return [f"{before}{line}{after}" for line, (before, after) in zip(lines, parsed.line_marks)]
    if parsed.per_line:
        return [f"{parsed.prefix}{line}{parsed.suffix}" for line in lines]
    lines = list(lines)
    lines[0] = parsed.prefix + lines[0]
    lines[-1] = lines[-1] + parsed.suffix
    return lines
