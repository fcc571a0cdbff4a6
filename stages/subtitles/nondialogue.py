"""Cues that are not speech: credits and sync notes, links and handles, symbol-only cues,
title cards. A model translates them into noise, so `s2s subtitle` passes them through
unchanged (and lists them in its report) unless asked to translate them.

A small set of rules over a cue's text without markup, each returning the reason it
matched; Subtitle Edit's "remove text for hearing impaired" and OpenSubtitles' ad
filters work the same way (patterns over the text), and no maintained library
classifies subtitle cues this way.
"""

from __future__ import annotations

import re
from typing import Optional

_CREDIT_WORD = (r"(sub(title)?s?|subtitled|caption(s|ed|ing)?|(re)?sync(ed|hro(nized)?)?|corrected|corrections|"
                r"ripped|encoded|created|fixed|transcri(bed|pt(ion)?)|translat(ed|ion|ions|or)|timing|timed|"
                r"proofread|edited|downloaded)")
# A qualifier ("English subtitles by"), credit words, up to three of a few filler words
# ("Captioning made possible by"), then "by", "from" or a colon, then the rest: the names.
_CREDIT = re.compile(r"^\W*(?:(?:english|spanish|french|german|italian|portuguese|original|official|additional|"
                     r"sdh|hearing[- ]impaired)\s+)?"
                     rf"(?:{_CREDIT_WORD}(?:\s*(?:and|&|,)\s*)?)+"
                     r"(?:\s+(?:made|possible|brought|to|you|provided|done|the|english|spanish|original|team)){0,3}"
                     r"\s*(?:by\b|from\b|:)\s*:?\s*(?P<names>.*)$", re.IGNORECASE)
_SITE = re.compile(r"\b(opensubtitles|addic7ed|subscene|podnapisi|yify|tvsubtitles|subdivx|yts(\.\w{2,3})?)\b", re.IGNORECASE)
_LINK = re.compile(
    r"(https?://|\bwww\.|\b[\w-]+\.(com|org|net|io|tv|info|co|me)\b(/|\s|$)|(^|\s)@\w{2,}|\b[\w.+-]+@[\w-]+\.\w+)",
    re.IGNORECASE,
)
_EPISODE = re.compile(r"\b(S\d{1,2}\s?E\d{1,3}|season\s+\d+|episode\s+\d+|\d{1,2}x\d{2})\b", re.IGNORECASE)
_DATE = re.compile(
    r"\b(\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}|\d{4}-\d{2}-\d{2}|(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?\s+"
    r"\d{1,2},?\s+\d{4})\b",
    re.IGNORECASE,
)


# Words a credit's names are not ("Timed by me"); a title card's lower-case words are
# only these ("Aired on 12/08/2017", "Season 2 of the show"), so "Episode 5 was great"
# and "We will meet on March 12, 2017" are said, not shown.
_SPOKEN = frozenset("i you he she we they it me him her us them my your our their hand".split())
_TITLE_WORDS = frozenset("of the and on in at de del la el aired part vs x".split())
_JOINERS = ("&", "and", "of", "the", "-", "y", "de", "team", "group", "crew")


def _names(rest: str, text: str) -> bool:
    """Whether the text after "Subtitles by" is names or a handle, as credits give
    them ("explosiveskull", "Jane Doe", "n17t01 & Firefly"), not the rest of a
    sentence ("by whom?", "by the teacher.", ": none so far"). A credit ends without
    a full stop, unless its names hold a handle's digits or signs."""
    words = [w.rstrip(".,;:!?") for w in rest.split()]
    words = [w for w in words if w]
    if not words or len(words) > 6 or text.rstrip().endswith(("?", "!")):
        return False
    if text.rstrip().endswith(".") and not re.search(r"[\d_@]", rest):
        return False
    if len(words) == 1:
        return words[0].lower() not in _SPOKEN
    named = [w for w in words if w[0].isupper() or w[0].isdigit() or w[0] == "@" or re.search(r"[\d_.@]", w)]
    return len(named) * 2 > len([w for w in words if w.lower() not in _JOINERS])


def _shown(text: str) -> bool:
    """A title card's words: capitals, numbers and a few small words, no contraction."""
    words = re.findall(r"[^\W\d_][\w']*", text)
    return all("'" not in w and (w[0].isupper() or w.lower() in _TITLE_WORDS) for w in words)


def non_dialogue_reason(text: str) -> Optional[str]:
    """Why a cue's text (markup removed) is not speech to translate: "credit", "link",
    "symbols" or "title card"; None for speech. An empty text is not judged here."""
    words = text.split()
    if not words:
        return None
    if not any(ch.isalnum() for ch in text):
        return "symbols"  # music notes, asterisks, dashes
    credit = _CREDIT.search(text)
    if _SITE.search(text) or (credit and len(words) <= 12 and _names(credit.group("names"), text)):
        return "credit"  # "Synced and corrected by ..."
    if _LINK.search(text) and (re.search(r"https?://|\bwww\.", text, re.IGNORECASE) or (
            len(words) <= 4 and not text.rstrip().endswith((".", "!", "?")) and "'" not in text)):
        return "link"  # a web address, or a short cue of a handle or a domain: not "Go to Google.com and search."
    if (len(words) <= 10 and not text.rstrip().endswith((".", "!", "?")) and (_EPISODE.search(text) or _DATE.search(text))
            and _shown(text)):
        return "title card"  # "THE SHOW S02E05", "Aired 12/08/2017": a date in a sentence is speech
    return None
