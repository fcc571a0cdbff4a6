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

_CREDIT_WORD = (r"(sub(title)?s?|caption(s|ed|ing)?|(re)?sync(ed|hro(nized)?)?|corrected|corrections|ripped|encoded|"
                r"transcri(bed|pt(ion)?)|translat(ed|ion|ions|or)|timing|timed|proofread|edited)")
_CREDIT = re.compile(rf"^\W*({_CREDIT_WORD}(\s*(and|&|,)\s*)?)+(\s+[\w-]+){{0,3}}?\s*(by\b|from\b|:)",
                     re.IGNORECASE)  # "Subtitles by", "Sync & corrections by", "Captioning made possible by"
_SITE = re.compile(r"\b(opensubtitles|addic7ed|subscene|podnapisi|yify|tvsubtitles|subdivx)\b", re.IGNORECASE)
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


def non_dialogue_reason(text: str) -> Optional[str]:
    """Why a cue's text (markup removed) is not speech to translate: "credit", "link",
    "symbols" or "title card"; None for speech. An empty text is not judged here."""
    words = text.split()
    if not words:
        return None
    if not any(ch.isalnum() for ch in text):
        return "symbols"  # music notes, asterisks, dashes
    if _SITE.search(text) or (_CREDIT.search(text) and len(words) <= 12):  # "Synced and corrected by ..."
        return "credit"
    if _LINK.search(text):
        return "link"
    if len(words) <= 10 and not text.rstrip().endswith((".", "!", "?")) and (_EPISODE.search(text) or _DATE.search(text)):
        return "title card"  # "THE SHOW S02E05", "Aired 12/08/2017": a date in a sentence is speech
    return None
