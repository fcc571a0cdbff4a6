"""Subtitle files in and out: SRT, WebVTT and ASS/SSA, with everything but the text kept.

A `SubtitleDocument` holds the cues (number, start/end in milliseconds, text lines with
their markup) plus whatever is needed to write the file back with only the cue texts
changed. ASS/SSA go through `pysubs2`, which keeps script info and styles. SRT and VTT are
read block by block here, because a parse into pysubs2's model renumbers cues and drops
cue identifiers, cue settings, VTT headers, NOTE/STYLE/REGION blocks and `<font>` tags;
their timing lines and non-cue blocks are written back byte for byte. Writing another
format (`--to`): into ASS/SSA through pysubs2, from the cues read here; between SRT and
VTT here (pysubs2's writer drops bold); from ASS/SSA into SRT or VTT through pysubs2.
"""

from __future__ import annotations

import codecs
import html
import logging
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

import pysubs2

from stages.errors import InputDataError

log = logging.getLogger(__name__)

Format = Literal["srt", "vtt", "ass", "ssa"]
FORMATS: tuple[Format, ...] = ("srt", "vtt", "ass", "ssa")

_SRT_TIME = r"(\d{1,3}):(\d{1,2}):(\d{1,2})[,.](\d{1,3})"
_SRT_TIMING = re.compile(rf"^\s*{_SRT_TIME}\s*-->\s*{_SRT_TIME}(\s.*)?$")
_VTT_TIME = r"(?:(\d{1,3}):)?(\d{2}):(\d{2})\.(\d{3})"
_VTT_TIMING = re.compile(rf"^\s*{_VTT_TIME}\s+-->\s+{_VTT_TIME}(\s.*)?$")
_TIMING = {"srt": _SRT_TIMING, "vtt": _VTT_TIMING}  # a cue's timing line, per block format
# Two times with something other than " --> " between them (or none): a mistyped timing line.
_TWO_TIMES = re.compile(r"^\s*\d{1,3}[:;.]\d{1,2}([:;.]\d{1,2})?[,.;:]\d{1,3}[^\d]{0,8}"
                        r"\d{1,3}[:;.]\d{1,2}([:;.]\d{1,2})?[,.;:]\d{1,3}(\s.*)?$")
_ASS_TIME = re.compile(r"^\s*(\d{1,2}):(\d{1,2}):(\d{1,2})[.,](\d{1,3})\s*$")  # as pysubs2 reads it
_ASS_FIELDS = {"ass": "Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text",
               "ssa": "Marked, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text"}  # without a Format line


@dataclass
class Cue:
    """One timed piece of text. `lines` keep their inline markup; `line` is where it starts."""

    number: int  # 1-based position among the file's cues
    start: int  # milliseconds
    end: int
    lines: list[str]
    line: int  # line of the file where the cue's block begins
    translatable: bool = True  # False for ASS drawings


@dataclass
class SubtitleDocument:
    path: str
    format: Format
    encoding: str
    cues: list[Cue]
    newline: str = "\n"
    trailing: int = 1  # line ends after the last text line (kept on writing)
    blocks: list[list[str]] = field(default_factory=list)  # SRT/VTT: every block's raw lines
    cue_blocks: list[tuple[int, int]] = field(default_factory=list)  # (block index, first text line)
    ass: Optional[pysubs2.SSAFile] = None
    ass_events: list[int] = field(default_factory=list)  # event index per cue


def _a(kind: str) -> str:
    """`an SRT`, `a VTT`, `an ASS`: the article as the letters are spoken."""
    return f"{'an' if kind[0] in 'asf' else 'a'} {kind.upper()}"


def detect_format(path: Path, forced: Optional[str], option: str = "--format", verb: str = "reads") -> Format:
    """The format `forced` by `option`, else the one path's extension names."""
    name = (forced or path.suffix.lstrip(".")).lower()
    if name not in FORMATS:
        how = f"{option} {forced}" if forced else f"the extension {path.suffix!r}"
        raise InputDataError(
            f"{path}: {how} is not a subtitle format s2s {verb}; use one of {', '.join(FORMATS)} "
            f"(name the format with {option} when the extension does not say it)"
        )
    return name  # type: ignore[return-value]


def decode_subtitle_bytes(data: bytes, path: Path, forced: Optional[str] = None) -> tuple[str, str]:
    """Text and the encoding used: a BOM first, then UTF-16 without BOM, strict UTF-8,
    then the legacy single-byte cp1252 and Latin-1 (which decode any byte)."""
    if forced:
        try:
            "".encode(forced)
        except LookupError as exc:
            raise InputDataError(f"--encoding {forced}: unknown encoding; use e.g. utf-8, cp1252, latin-1") from exc
        why = f"cannot be decoded as {forced}; leave out --encoding to detect it, or name the file's real encoding"
        if codecs.lookup(forced).name == "utf-8" and data.startswith(codecs.BOM_UTF8):
            return _decode(data[3:], "utf-8", path, why), "utf-8-sig"  # its BOM is no text (and is kept)
        return _decode(data, forced, path, why), forced
    if data.startswith(b"\xef\xbb\xbf"):
        return _decode(data[3:], "utf-8", path, _LOOKS_LIKE.format("UTF-8 with BOM")), "utf-8-sig"
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _decode(data, "utf-16", path, _LOOKS_LIKE.format("UTF-16")), "utf-16"
    if len(data) >= 4 and data.count(b"\x00") > len(data) // 4:
        enc = "utf-16-le" if data[1] == 0 else "utf-16-be"
        return _decode(data, enc, path, _LOOKS_LIKE.format(enc.upper())), enc
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        return data.decode("latin-1"), "latin-1"


_LOOKS_LIKE = "the file looks like {} but does not decode as it; re-save it as UTF-8 or name its encoding with --encoding"


def _decode(data: bytes, encoding: str, path: Path, why: str) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputDataError(f"{path}:{line}: byte {data[exc.start]:#04x}: {why}") from exc


def load_subtitles(path: Path, fmt: Optional[str] = None, encoding: Optional[str] = None) -> SubtitleDocument:
    """The subtitle file at `path` (format from `fmt` or the extension; encoding from
    `encoding` or detected); InputDataError naming the file and line when it is not one."""
    if not path.is_file():
        raise InputDataError(f"{path}: file not found")
    return parse_subtitles(path.read_bytes(), path, fmt, encoding)


def parse_subtitles(data: bytes, path: Path, fmt: Optional[str] = None, encoding: Optional[str] = None) -> SubtitleDocument:
    """A subtitle file's bytes (an upload, say) as a document; `path` names it in messages
    and, without `fmt`, gives the format by its extension."""
    kind = detect_format(path, fmt)
    text, used = decode_subtitle_bytes(data, path, encoding)
    if "\x00" in text:
        raise InputDataError(f"{path}: contains NUL characters, so it is not {_a(kind)} text file")
    newline = "\r\n" if "\r\n" in text else ("\r" if "\r" in text else "\n")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    trailing = len(text) - len(text.rstrip("\n"))
    try:
        doc = _parse_ass(text, path, kind) if kind in ("ass", "ssa") else _parse_blocks(text, path, kind)
        if kind in ("srt", "vtt"):
            _check_every_timing_is_a_cue(doc, text, path)
    except InputDataError as exc:
        if encoding:  # a wrong encoding turns every line into noise the parser stumbles on
            raise InputDataError(f"{exc} (read as --encoding {encoding}: if that is not the file's encoding, "
                                 f"leave --encoding out to detect it)") from exc
        raise
    doc.encoding, doc.newline, doc.trailing = used, newline, trailing
    _warn_oddities(doc)
    return doc


def _check_every_timing_is_a_cue(doc: SubtitleDocument, text: str, path: Path) -> None:
    """No cue lost: every timing line of the file starts a cue."""
    pattern = _TIMING[doc.format]
    timings = [n for n, line in enumerate(text.split("\n"), start=1) if pattern.match(line)]
    if len(timings) != len(doc.cues):
        starts = {c.line for c in doc.cues}
        stray = next((n for n in timings if n not in starts and n - 1 not in starts), timings[-1])
        raise InputDataError(f"{path}:{stray}: a timing line that starts no cue ({len(timings)} timing lines, "
                             f"{len(doc.cues)} cues); put a blank line before it")


def _split_run_on_cues(blocks: list[tuple[int, list[str]]], kind: Format, path: Path) -> list[tuple[int, list[str]]]:
    """Cues written without the blank line between them, split where the next cue's
    timing line (and its number, when the line before it is one) begins, as players do."""
    pattern = _TIMING[kind]
    out: list[tuple[int, list[str]]] = []
    for start, lines in blocks:
        first = next((i for i, line in enumerate(lines[:2]) if pattern.match(line)), None)
        cut = 0
        for i in range(len(lines)):
            if first is None or i <= first or not pattern.match(lines[i]):
                continue
            begin = i - 1 if i - 1 > cut and lines[i - 1].strip().isdigit() else i
            log.warning("%s:%d: a cue starts without a blank line before it; read as a new cue", path,
                        start + begin)
            out.append((start + cut, lines[cut:begin]))
            cut = begin
        out.append((start + cut, lines[cut:]))
    return out


def _split_blocks(text: str) -> list[tuple[int, list[str]]]:
    """Blocks separated by blank lines, each with the file line it starts on."""
    blocks: list[tuple[int, list[str]]] = []
    current: list[str] = []
    start = 1
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            if not current:
                start = number
            current.append(line)
        elif current:
            blocks.append((start, current))
            current = []
    if current:
        blocks.append((start, current))
    return blocks


def _parse_blocks(text: str, path: Path, kind: Format) -> SubtitleDocument:
    doc = SubtitleDocument(str(path), kind, "", [])
    raw_blocks = _split_run_on_cues(_split_blocks(text), kind, path)
    if kind == "vtt" and (not raw_blocks or not re.match(r"^WEBVTT(\s|$)", raw_blocks[0][1][0])):
        first = raw_blocks[0][1][0] if raw_blocks else "(empty file)"
        raise InputDataError(f"{path}:1: a WebVTT file starts with 'WEBVTT', found {first[:60]!r}")
    for index, (start, lines) in enumerate(raw_blocks):
        doc.blocks.append(lines)
        if kind == "vtt" and (index == 0 or re.match(r"^(NOTE|STYLE|REGION)(\s|$)", lines[0])):
            continue
        timing_at = next((i for i, line in enumerate(lines[:2]) if "-->" in line), None)
        if timing_at is None:
            _not_a_cue(path, kind, start, lines, len(doc.cues))
            continue
        times = _parse_timing(lines[timing_at], kind, path, start + timing_at)
        if kind == "srt" and timing_at == 1 and not lines[0].strip().isdigit():
            log.warning("%s:%d: cue id %r is not a number; kept as it is", path, start, lines[0])
        for offset, text in enumerate(lines[timing_at + 1 :], start=timing_at + 1):
            if "-->" in text or _TWO_TIMES.match(text):  # no cue text holds one; a timing line that does not parse
                raise InputDataError(f"{path}:{start + offset}: {text[:60]!r} looks like a timing line but is not "
                                     f"one, so it would be read as text of the cue above; write it as "
                                     f"'{'HH:MM:SS,mmm' if kind == 'srt' else 'HH:MM:SS.mmm'} --> ...' after a "
                                     f"blank line")
        cue = Cue(len(doc.cues) + 1, *times, lines=lines[timing_at + 1 :], line=start)
        doc.cues.append(cue)
        doc.cue_blocks.append((index, timing_at + 1))
    if not doc.cues:
        raise InputDataError(f"{path}: no cues found, so it is not {_a(kind)} file (or it is empty)")
    return doc


def _not_a_cue(path: Path, kind: Format, start: int, lines: list[str], cues_so_far: int) -> None:
    for offset, line in enumerate(lines[:2]):
        if _TWO_TIMES.match(line):  # two times, but no -->
            raise InputDataError(f"{path}:{start + offset}: timing line {line[:60]!r} has no ' --> ' between its "
                                 f"two times; write it as 'START --> END'")
    if cues_so_far == 0 and kind == "srt":
        raise InputDataError(
            f"{path}:{start}: expected an SRT cue (a number, then 'HH:MM:SS,mmm --> HH:MM:SS,mmm'), "
            f"found {lines[0][:60]!r}; this does not look like an SRT file"
        )
    raise InputDataError(
        f"{path}:{start}: block after cue {cues_so_far} has no timing line "
        f"('{'HH:MM:SS,mmm' if kind == 'srt' else 'HH:MM:SS.mmm'} --> ...'), found {lines[0][:60]!r}; "
        f"fix the timing line or remove the blank line inside the cue before it"
    )


def _parse_timing(line: str, kind: Format, path: Path, number: int) -> tuple[int, int]:
    match = _TIMING[kind].match(line)
    if not match:
        example = "00:01:02,500 --> 00:01:04,000" if kind == "srt" else "00:01:02.500 --> 00:01:04.000"
        raise InputDataError(f"{path}:{number}: broken timestamp {line.strip()!r}; expected e.g. {example!r}")
    g = match.groups()
    for time in (g[0:4], g[4:8]):
        _check_clock(time, line, path, number)
    start, end = _to_ms(g[0:4]), _to_ms(g[4:8])
    if end < start:
        raise InputDataError(
            f"{path}:{number}: the cue ends ({line.split('-->')[1].split()[0]}) before it starts "
            f"({line.split('-->')[0].strip()}); swap or fix the times"
        )
    return start, end


def _check_clock(parts: tuple[Optional[str], ...], shown: str, path: Path, number: int) -> None:
    """Refuse a time whose minutes or seconds are 60 or more (`00:75:03,000`)."""
    if any(int(p or 0) >= 60 for p in parts[1:3]):
        raise InputDataError(f"{path}:{number}: {shown.strip()!r} has minutes or seconds of 60 or more; "
                             f"fix the time (1 hour 15 minutes is 01:15:00)")


def _to_ms(parts: tuple[Optional[str], ...]) -> int:
    h, m, s, frac = (p or "0" for p in parts)
    return ((int(h) * 60 + int(m)) * 60 + int(s)) * 1000 + int(frac.ljust(3, "0")[:3])


def _parse_ass(text: str, path: Path, kind: Format) -> SubtitleDocument:
    if "[Events]" not in text:
        raise InputDataError(f"{path}: no [Events] section, so it is not {_a(kind)} file")
    _check_ass_events(text, path, kind)
    try:
        subs = pysubs2.SSAFile.from_string(text, format_=kind)
    except (pysubs2.exceptions.Pysubs2Error, ValueError) as exc:
        raise InputDataError(f"{path}: cannot read it as {kind.upper()}: {exc}") from exc
    doc = SubtitleDocument(str(path), kind, "", [], ass=subs)
    event_lines = [n for n, line in enumerate(text.split("\n"), start=1) if re.match(r"^(Dialogue|Comment):", line)]
    for index, event in enumerate(subs.events):
        if event.type != "Dialogue":
            continue
        line = event_lines[index] if index < len(event_lines) else 0
        lines = re.split(r"\\[Nn]", event.text)
        drawing = bool(re.search(r"\{[^}]*\\p[1-9]", event.text))
        doc.cues.append(Cue(len(doc.cues) + 1, event.start, event.end, lines, line, translatable=not drawing))
        doc.ass_events.append(index)
    if not doc.cues:
        raise InputDataError(f"{path}: no Dialogue events in [Events]; nothing to translate")
    return doc


def _check_ass_events(text: str, path: Path, kind: Format) -> None:
    """Refuse, naming the line, an event of the [Events] section that is cut short (fewer
    fields than its Format line names: pysubs2 would make up the missing times) or whose
    Start or End is not a time; pysubs2's own message names neither."""
    fields = [f.strip() for f in _ASS_FIELDS[kind].split(",")]
    in_events = False
    for number, line in enumerate(text.split("\n"), start=1):
        if line.startswith("["):
            in_events = line.strip().lower() == "[events]"
            continue
        if not in_events:
            continue
        head, _, rest = line.partition(":")
        if head == "Format":
            fields = [f.strip() for f in rest.split(",")]
        elif head in ("Dialogue", "Comment"):
            values = rest.split(",", len(fields) - 1)
            if len(values) < len(fields):
                raise InputDataError(
                    f"{path}:{number}: {head} line with {len(values)} of the {len(fields)} fields "
                    f"({', '.join(fields)}); the line is cut short: complete it or remove it")
            times = {name: values[fields.index(name)] for name in ("Start", "End") if name in fields}
            ms = {}
            for name, value in times.items():
                match = _ASS_TIME.match(value)
                if not match:
                    raise InputDataError(f"{path}:{number}: broken {name} time {value.strip()!r}; expected e.g. "
                                         f"'0:01:02.50' (hours:minutes:seconds.hundredths)")
                _check_clock(match.groups(), value, path, number)
                ms[name] = _to_ms(match.groups())
            if len(ms) == 2 and ms["End"] < ms["Start"]:
                raise InputDataError(f"{path}:{number}: the event ends ({times['End'].strip()}) before it starts "
                                     f"({times['Start'].strip()}); swap or fix the times")


def _warn_oddities(doc: SubtitleDocument) -> None:
    if doc.format == "srt":
        for cue, other in _overlaps(doc):
            log.warning("%s:%d: cue %d starts before cue %d ends (overlap kept as it is)", doc.path, cue.line,
                        cue.number, other.number)
    for cue in doc.cues:
        if not any(line.strip() for line in cue.lines):
            log.warning("%s:%d: cue %d is empty; passed through unchanged", doc.path, cue.line, cue.number)


def _overlaps(doc: SubtitleDocument) -> list[tuple[Cue, Cue]]:
    """(cue, an earlier-starting cue still on screen when it starts) for each cue that
    starts while another is shown, taking the cues in order of their start (a file's
    cues need not be in time order)."""
    out: list[tuple[Cue, Cue]] = []
    showing: Optional[Cue] = None  # of the cues started so far, the one that ends last
    for cue in sorted(doc.cues, key=lambda c: (c.start, c.number)):
        if showing is not None and cue.start < showing.end:
            out.append((cue, showing))
        if showing is None or cue.end > showing.end:
            showing = cue
    return sorted(out, key=lambda pair: pair[0].number)


def overlapping_cues(doc: SubtitleDocument) -> list[int]:
    """Numbers of the cues that start while another cue is still shown."""
    return [cue.number for cue, _ in _overlaps(doc)]


def placement(doc: SubtitleDocument, index: int) -> tuple[str, ...]:
    """What places cue `index` (0-based) on screen besides its text: an ASS event's
    style and actor, an SRT or VTT timing line's settings (`line:10%`, coordinates).
    Two cues placed differently are two voices or a sign and a line, not one sentence."""
    if doc.ass is not None:
        event = doc.ass.events[doc.ass_events[index]]
        return (event.style, event.name)
    block, first = doc.cue_blocks[index]
    match = _TIMING[doc.format].match(doc.blocks[block][first - 1])
    return (" ".join((match.groups()[-1] or "").split()) if match else "",)


def output_encoding(doc: SubtitleDocument) -> str:
    """UTF-8, with a BOM where the input had one: a translation may hold characters the
    input's legacy encoding (cp1252, Latin-1, UTF-16) cannot."""
    return "utf-8-sig" if doc.encoding == "utf-8-sig" else "utf-8"


def render(doc: SubtitleDocument, texts: list[list[str]], to: Optional[Format] = None) -> str:
    """The document with each cue's text lines replaced by `texts[i]`, in `to` or its own
    format, with the input's line ends and trailing blank lines; a conversion that would
    move a cue's time is refused (InputDataError)."""
    if len(texts) != len(doc.cues):
        raise ValueError(f"{len(texts)} texts for {len(doc.cues)} cues")
    if doc.ass is not None:
        for cue, lines, event_index in zip(doc.cues, texts, doc.ass_events):
            text = r"\N".join(lines)
            doc.ass.events[event_index].text = _vtt_escape(text) if to == "vtt" else text
        out = doc.ass.to_string(to or doc.format)
    else:
        if to and to != doc.format:
            with warnings.catch_warnings():  # pysubs2 clamps times ASS cannot hold; _check_times_kept refuses them
                warnings.simplefilter("ignore", RuntimeWarning)
                events = _as_events(doc, texts, to)
                out = _srt_or_vtt(events, to) if to in ("srt", "vtt") else events.to_string(to)
        else:
            blocks = [list(lines) for lines in doc.blocks]
            for (block, first), lines in zip(doc.cue_blocks, texts):
                blocks[block] = blocks[block][:first] + lines
            out = "\n\n".join("\n".join(lines) for lines in blocks) + "\n" * doc.trailing
    if to and to != doc.format:
        _check_times_kept(doc, out, to)
    return out.replace("\n", doc.newline) if doc.newline != "\n" else out


# WebVTT markup with no counterpart elsewhere: karaoke timestamps, class spans, voices,
# ruby and language spans (their text stays).
_VTT_ONLY_TAG = re.compile(r"<\d{1,2}:\d{2}[^<>]*>|</?(c|v|ruby|rt|lang)([.\s][^<>]*)?>", re.IGNORECASE)
_STYLE_TAG = re.compile(r"<\s*(/?)\s*([ibus])\s*>", re.IGNORECASE)
_OTHER_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>")


def _as_events(doc: SubtitleDocument, texts: list[list[str]], to: Format) -> pysubs2.SSAFile:
    """An SRT or VTT document's cues, with `texts`, as pysubs2 events to write in `to`.
    Built from the cues this module read, not by pysubs2 reading the file again: its
    reader takes a VTT cue identifier for the previous cue's last text line. The markup
    becomes ASS's: italic, bold, underline and strike-out tags their override tags, VTT's
    own tags (karaoke timestamps, classes, voices) dropped (a voice's name goes to the
    event's Name), its character references
    (`&amp;`) decoded, and, into VTT, `&`, `<` and `>` of the text escaped again."""
    subs = pysubs2.SSAFile()
    for cue, lines in zip(doc.cues, texts):
        text = "\n".join(lines)
        voice = re.search(r"<v(?:\.[^\s>]*)?\s+([^>]+)>", text) if doc.format == "vtt" else None
        text = _VTT_ONLY_TAG.sub("", text) if doc.format == "vtt" else text
        text = _STYLE_TAG.sub(lambda m: "{\\" + m.group(2).lower() + ("0" if m.group(1) else "1") + "}", text)
        text = html.unescape(text) if doc.format == "vtt" else _OTHER_HTML_TAG.sub("", text)
        if to == "vtt":
            text = _vtt_escape(text)
        subs.append(pysubs2.SSAEvent(start=cue.start, end=cue.end, text=text.replace("\n", "\\N"),
                                     name=voice.group(1).strip() if voice else ""))
    return subs


_ASS_STYLE = re.compile(r"\{\\([ibus])([01])\}")


def _srt_or_vtt(events: pysubs2.SSAFile, to: Format) -> str:
    """SRT/VTT cues (from `_as_events`) written as SRT or VTT: their italic, bold,
    underline and strike-out tags as the same HTML tags (pysubs2's writer drops bold),
    VTT's cues in time order."""
    cues = sorted(events, key=lambda e: e.start) if to == "vtt" else list(events)
    blocks = ["WEBVTT"] if to == "vtt" else []
    for number, event in enumerate(cues, start=1):
        text = _ASS_STYLE.sub(lambda m: f"<{'/' if m.group(2) == '0' else ''}{m.group(1)}>", event.text)
        text = re.sub(r"\{\\[^{}]*\}", "", text).replace("\\N", "\n").replace("\\h", " ")
        stamps = [_clock(t).replace(".", ",") if to == "srt" else _clock(t) for t in (event.start, event.end)]
        blocks.append(f"{number}\n{stamps[0]} --> {stamps[1]}\n{text}".rstrip("\n"))
    return "\n\n".join(blocks) + "\n"


def _vtt_escape(text: str) -> str:
    """`&`, `<` and `>` of a text (ASS markup, which has none of them) as VTT's character
    references: raw, a VTT reader takes `<3` for a tag."""
    return re.sub(r"[&<>]", lambda m: {"&": "&amp;", "<": "&lt;", ">": "&gt;"}[m.group(0)], text)


def _check_times_kept(doc: SubtitleDocument, out: str, to: Format) -> None:
    """Refuse a conversion that would move a cue: read the output back and compare every
    cue's start and end (ASS/SSA hold centiseconds and hours 0-9). VTT holds its cues in
    order of their start, so the comparison is by start, not by position."""
    written = _parse_ass(out, Path(doc.path), to) if to in ("ass", "ssa") else _parse_blocks(out, Path(doc.path), to)
    kept = sorted((c.start, c.end) for c in written.cues)
    # ASS drawings have no place in SRT or VTT: pysubs2 leaves them out, as subtitle editors do.
    expected = sorted((c for c in doc.cues if c.translatable or to in ("ass", "ssa")), key=lambda c: (c.start, c.end))
    if len(kept) > len(expected):  # a text line that reads as a timing line in the target format
        extra = next(((s, e) for s, e in kept if (s, e) not in {(c.start, c.end) for c in expected}), kept[-1])
        raise InputDataError(f"{doc.path}: written as {to.upper()}, a cue's text would read as a cue of its own "
                             f"({_clock(extra[0])} --> {_clock(extra[1])}); remove the timing line from that text")
    for cue, (start, end) in zip(expected, kept + [(-1, -1)] * (len(expected) - len(kept))):
        if (cue.start, cue.end) != (start, end):
            where = f"{_clock(cue.start)} --> {_clock(cue.end)}"
            became = "would be lost" if start < 0 else f"would become {_clock(start)} --> {_clock(end)}"
            raise InputDataError(
                f"{doc.path}:{cue.line}: cue {cue.number} runs {where}, which {to.upper()} cannot hold exactly "
                f"(it {became}); write {doc.format.upper()} (leave out --to, or keep the extension), or round "
                f"the times in the source first"
            )


def _clock(ms: int) -> str:
    return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"
