"""What is inside a cue: markup kept out of the model, the pieces worth translating, and
subtitle line norms (wrapping, reading speed).

A cue's text is split into `Segment`s: plain speech, one speaker's line of a dialogue
cue (`- Who?`), a song lyric between music notes, a bracketed sound cue (`[door
slams]`). Only a segment's `text` goes to the model; the decoration around it and the
cue's inline tags (`<i>`, `<font ...>`, `{\\an8}`) are put back around the translation.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

_HTML_TAG = re.compile(r"</?[A-Za-z][^<>]*>|<\d{1,2}:\d{2}[^<>]*>")
_ASS_TAG = re.compile(r"\{[^{}]*\}")
_SRT_TAG = re.compile(rf"{_HTML_TAG.pattern}|\{{\\[^{{}}]*\}}")  # players honour {\an8} in SRT too
_DASH = re.compile(r"^([-\u2013\u2014])\s*")
_NOTES = "\u266a\u266b#"
_MUSIC = re.compile(rf"^([{_NOTES}]+)\s*(.*?)\s*([{_NOTES}]*)$")
_SOUND_LEAD = re.compile(r"^(\[[^\]]+\]|\([^)]+\))\s*")
_SOUND_TAIL = re.compile(r"\s*(\[[^\]]+\]|\([^)]+\))$")
_LABEL = re.compile(r"^([A-Z][A-Z0-9 .'\-]{1,24}:)\s+")
_SENTENCE_END = re.compile(r"[.!?\u2026:;\u266a\u266b][\"'\u00bb\u201d\u2019)\]]*$")

# Words a line should not end on, because they belong with the next word (articles,
# and contractions of article + preposition), in the languages the Latin-script
# guidelines cover. Prepositions and conjunctions get a smaller penalty.
ARTICLES = frozenset(
    "el la los las lo un una unos unas al del the a an le les l' des du der die das den dem des ein eine "
    "einen einem einer il gli uno o os as um uma".split()
)
LINKERS = frozenset("de en con por para y e que of to in and with on at for from".split())


@dataclass
class Segment:
    """One piece of a cue to translate on its own. `before`/`after` frame the translation."""

    text: str
    before: str = ""
    after: str = ""
    kind: str = "speech"  # speech, dialogue, music, sound
    shout: bool = False  # all capitals in the source (SDH sound cues): put back in capitals


@dataclass
class CueText:
    """A cue's text without markup, split into segments, plus the markup to put back."""

    segments: list[Segment]
    prefix: str = ""  # tags before the text (whole cue, or every line when per_line)
    suffix: str = ""
    per_line: bool = False
    own_lines: bool = False  # one output line per segment (dialogue cues)
    inner_tags_dropped: int = 0
    line_marks: list[tuple[str, str]] = field(default_factory=list)  # a dialogue line's own tags, per speaker

    @property
    def joinable(self) -> bool:
        """A single plain-speech segment: may continue a sentence from or into a neighbour."""
        return len(self.segments) == 1 and self.segments[0].kind == "speech" and not self.segments[0].after


def tag_pattern(fmt: str) -> re.Pattern[str]:
    return {"ass": _ASS_TAG, "ssa": _ASS_TAG, "srt": _SRT_TAG}.get(fmt, _HTML_TAG)


def strip_markup(lines: list[str], fmt: str) -> list[str]:
    """Text lines with every tag removed (and VTT entities decoded)."""
    pattern = tag_pattern(fmt)
    out = [pattern.sub("", line) for line in lines]
    if fmt == "vtt":
        out = [html.unescape(line) for line in out]
    if fmt in ("ass", "ssa"):
        out = [line.replace("\\h", " ") for line in out]
    return [" ".join(line.split()) for line in out]


def _edge_tags(text: str, pattern: re.Pattern[str]) -> tuple[str, str, str]:
    """(leading tags, text between, trailing tags) of one string."""
    lead = re.match(rf"^(?:\s*(?:{pattern.pattern}))*\s*", text)
    head = lead.group(0) if lead else ""
    rest = text[len(head) :]
    tail = re.search(rf"(?:\s*(?:{pattern.pattern}))*\s*$", rest)
    tail_text = tail.group(0) if tail else ""
    return head.strip(), rest[: len(rest) - len(tail_text)], tail_text.strip()


def _balanced(prefix: str, suffix: str, inner: str, pattern: re.Pattern[str]) -> tuple[str, str]:
    """Keep an opening tag only if its closing tag is not lost inside the text, and a
    closing tag only if its opening tag is kept (HTML-style tags; ASS tags are state)."""
    if pattern is _ASS_TAG:
        return prefix, suffix
    inner_closed = set(re.findall(r"</([A-Za-z]+)", inner))
    opens = [t for t in pattern.findall(prefix) if not t.startswith("</")]
    kept_open = [t for t in opens if _name(t) not in inner_closed]
    closes = [t for t in pattern.findall(suffix) if t.startswith("</")]
    kept_names = {_name(t) for t in kept_open}
    kept_close = [t for t in closes if _name(t) in kept_names]
    return "".join(kept_open), "".join(kept_close)


def _name(tag: str) -> str:
    match = re.match(r"</?([A-Za-z]+)", tag)
    return match.group(1).lower() if match else ""


def parse_cue(lines: list[str], fmt: str) -> CueText:
    """Split one cue's lines into segments and the markup around them."""
    pattern = tag_pattern(fmt)
    edges = [_edge_tags(line, pattern) for line in lines if line.strip()]
    per_line = len(edges) > 1 and all(e[0] == edges[0][0] and e[2] == edges[0][2] for e in edges) and bool(
        edges[0][0] or edges[0][2]
    )
    if per_line:
        prefix, suffix = edges[0][0], edges[0][2]
        inner = " ".join(e[1] for e in edges)
    else:
        prefix, inner, suffix = _edge_tags("\n".join(lines), pattern)
    edge_tags = len(pattern.findall(prefix + suffix))
    prefix, suffix = _balanced(prefix, suffix, inner, pattern)
    dropped = len(pattern.findall(inner)) + edge_tags - len(pattern.findall(prefix + suffix))
    clean = [line for line in strip_markup([e[1] for e in edges] if per_line else lines, fmt) if line]
    cue = CueText(_segments(clean), prefix, suffix, per_line, inner_tags_dropped=dropped)
    cue.own_lines = len(cue.segments) > 1 and all(s.kind == "dialogue" for s in cue.segments)
    if not per_line and len(edges) > 1 and any(e[0] or e[2] for e in edges):
        speakers = _speaker_marks(edges, fmt, pattern)
        if speakers is not None:
            return speakers
    return cue


def _speaker_marks(edges: list[tuple[str, str, str]], fmt: str, pattern: re.Pattern[str]) -> CueText | None:
    """A dialogue cue whose lines carry tags of their own (`<v Moses>- Who?</v>` /
    `<v Aaron>- I.</v>`): one speaker per line, each keeping its line's tags; None for
    any other cue."""
    marks = [_balanced(e[0], e[2], e[1], pattern) for e in edges]
    clean = [" ".join(strip_markup([e[1]], fmt)) for e in edges]
    segments = _segments(clean)
    if len(segments) != len(edges) or not all(s.kind == "dialogue" for s in segments):
        return None
    dropped = sum(len(pattern.findall(e[0] + e[1] + e[2])) for e in edges) - sum(
        len(pattern.findall(a + b)) for a, b in marks)
    return CueText(segments, inner_tags_dropped=dropped, own_lines=True, line_marks=marks)


def _segments(lines: list[str]) -> list[Segment]:
    if not lines:
        return []
    if _DASH.match(lines[0]) and len(lines) == 1:
        return _dialogue(lines)  # "- Who is there?": a new speaker, its dash kept
    if len(lines) > 1 and any(_DASH.match(line) for line in lines[1:]) and (
            _DASH.match(lines[0]) or ends_sentence(lines[0])):
        return _dialogue(lines)  # "- Who?" / "- I." or, in many European styles, "Who?" / "- I."
    lyric = _lyric(lines)
    if lyric is not None:
        return lyric
    return _speech_with_sounds(" ".join(lines))


def _lyric(lines: list[str]) -> list[Segment] | None:
    """A song's lines as one lyric segment, its notes kept out of the model: a note (or
    two `#`, the note of subtitles written in ASCII) at the start or end of its lines,
    on every line ("♪ In the beginning ♪" / "♪ God created ♪") or around them all; the
    first line's opening notes and the last line's closing notes frame the translation.
    None for a cue that is not one."""
    parts = [_MUSIC.match(line) for line in lines]
    notes = [(m.group(1), m.group(3)) if m else ("", "") for m in parts]
    for i, line in enumerate(lines):
        last_note = re.search(rf"\s*([{_NOTES[:2]}]+)$", line)
        if not parts[i] and last_note:  # "God created the earth ♪": the song's last line
            notes[i] = ("", last_note.group(1))
    ascii_pairs = all(line.startswith("#") and line.endswith("#") and len(line) > 2 for line in lines)
    sung = any(note in _NOTES[:2] for o, c in notes for note in (o[:1], c[-1:]) if note)
    if not (sung or ascii_pairs):
        return None
    words = []
    for line, (opening, closing) in zip(lines, notes):
        words.append(line[len(opening) : len(line) - len(closing)].strip())
    text = " ".join(w for w in words if w)
    if not text:
        return []
    return [Segment(text, notes[0][0] + " " if notes[0][0] else "", " " + notes[-1][1] if notes[-1][1] else "",
                    "music")]


def _dialogue(lines: list[str]) -> list[Segment]:
    """Lines starting with a dash open a new speaker; other lines continue the last one."""
    speakers: list[Segment] = []
    for line in lines:
        dash = _DASH.match(line)
        if dash or not speakers:
            body = line[dash.end() :] if dash else line
            label = _LABEL.match(body)  # "- MOSES: Who?": the label is not translated
            before = (f"{dash.group(1)} " if dash else "") + (label.group(1) + " " if label else "")
            speakers.append(Segment(body[label.end():] if label else body, before, "", "dialogue"))
        else:
            speakers[-1].text += " " + line
    return speakers


def _speech_with_sounds(text: str) -> list[Segment]:
    lead: list[Segment] = []
    while match := _SOUND_LEAD.match(text):
        lead.append(_sound(match.group(1)))
        text = text[match.end() :]
    tail: list[Segment] = []
    while text and (match := _SOUND_TAIL.search(text)):
        tail.insert(0, _sound(match.group(1)))
        text = text[: match.start()]
    middle: list[Segment] = []
    if text:
        label = _LABEL.match(text)
        before = label.group(1) + " " if label else ""
        body = text[label.end() :] if label else text
        middle = [Segment(body, before, "", "speech")] if body else []
    return lead + middle + tail


def _sound(bracketed: str) -> Segment:
    inner = bracketed[1:-1].strip()
    shout = inner.isupper()
    return Segment(inner.lower() if shout else inner, bracketed[0], bracketed[-1], "sound", shout)


def ends_sentence(text: str) -> bool:
    return bool(_SENTENCE_END.search(text.strip()))


def split_by_share(translation: str, shares: list[int]) -> list[str] | None:
    """Cut a translation at word boundaries into len(shares) non-empty parts whose lengths
    follow the source's shares; None when it has fewer words than parts."""
    words = translation.split()
    parts = len(shares)
    if len(words) < parts:
        return None
    if parts == 1:
        return [" ".join(words)]
    ends, offset = [], 0
    for word in words:
        offset += len(word) + (1 if offset else 0)
        ends.append(offset)
    total, cut, out, start = sum(shares), 0, [], 0
    for k in range(parts - 1):
        cut += shares[k]
        goal = offset * cut / max(total, 1)
        lo, hi = start + 1, len(words) - (parts - 1 - k)  # at least one word on each side
        best = min(range(lo, hi + 1), key=lambda b: abs(ends[b - 1] - goal) - (2 if words[b - 1][-1] in ",.;:!?" else 0))
        out.append(" ".join(words[start:best]))
        start = best
    out.append(" ".join(words[start:]))
    return out


def wrap_line(text: str, max_chars: int, max_lines: int) -> list[str]:
    """Break `text` into lines of at most `max_chars`: one line if it fits, else the best
    two-line break (after punctuation, never after an article, balanced), else as many
    lines as it takes."""
    text = " ".join(text.split())
    if len(text) <= max_chars or " " not in text:
        return [text]
    words = text.split(" ")
    if max_lines >= 2:
        best = _best_break(words, max_chars)
        if best is not None:
            return [" ".join(words[:best]), " ".join(words[best:])]
    return _greedy(words, max_chars)


def _break_cost(words: list[str], at: int) -> float:
    first, second = " ".join(words[:at]), " ".join(words[at:])
    last = words[at - 1].lower().strip("\"'\u00bf\u00a1")
    cost = abs(len(first) - len(second)) + (2 if len(first) > len(second) else 0)
    if last in ARTICLES:
        cost += 1000
    elif last in LINKERS:
        cost += 12
    if words[at - 1][-1] in ",.;:!?\u2026":
        cost -= 15
    return cost


def _best_break(words: list[str], max_chars: int) -> int | None:
    fits = [
        at for at in range(1, len(words))
        if len(" ".join(words[:at])) <= max_chars and len(" ".join(words[at:])) <= max_chars
    ]
    if not fits:
        return None
    return min(fits, key=lambda at: _break_cost(words, at))


def _greedy(words: list[str], max_chars: int) -> list[str]:
    lines: list[list[str]] = [[]]
    for word in words:
        if lines[-1] and len(" ".join([*lines[-1], word])) > max_chars:
            # Carry a trailing article over to the line it belongs to.
            carry = [lines[-1].pop()] if len(lines[-1]) > 1 and lines[-1][-1].lower() in ARTICLES else []
            lines.append(carry)
        lines[-1].append(word)
    return [" ".join(line) for line in lines if line]


def reading_speed(lines: list[str], start_ms: int, end_ms: int) -> float:
    """Characters per second: every character of the visible text, line breaks excluded."""
    chars = sum(len(line) for line in lines)
    seconds = (end_ms - start_ms) / 1000
    return chars / seconds if seconds > 0 else float("inf")
