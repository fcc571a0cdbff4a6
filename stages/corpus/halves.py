"""Context halves: a training pair cut at a clause mark into two pairs, the first half
being the second's context (`data.context_halves`).

A context model learns to use its context only where the context is needed, and in
sentence-aligned text the sentence alone nearly always suffices: models trained on
concatenated previous sentences barely read them. Cutting a pair in two and giving the
second half its first half as context makes context needed for the second half's
pronouns, elided subjects and agreement, as a subtitle's next cue needs the previous one.
This is the "Divide and Rule" training of Lupo, Dinarelli and Besacier (2022),
"Divide and Rule: Effective Pre-Training for Context-Aware Multi-Encoder Translation
Models" (ACL), which splits sentences at aligned points; here, without a word aligner,
a cut is a clause mark (`. ; : ? !` before a space) that both sides have in equal
number, at the same rank, and at about the same relative place.
"""

from __future__ import annotations

import re
from typing import Sequence

CLAUSE_MARK = re.compile(r"[;:.?!](?=\s)")
MAX_PLACE_GAP = 0.15  # the two cuts' places (fraction of the line's characters) may differ by this much
MIDDLE = (0.2, 0.8)  # a cut must leave each half at least a fifth of its line
MIN_WORDS = 2  # words in each half, on each side


def cut_pair(src: str, tgt: str) -> tuple[str, str, str, str] | None:
    """(source first half, source second half, target first half, target second half),
    cut at the clause mark nearest the middle that both sides share (see the module), or
    None when the pair has no such mark. Halves are stripped; the mark stays with the
    first half."""
    src_cuts = [m.end() for m in CLAUSE_MARK.finditer(src)]
    tgt_cuts = [m.end() for m in CLAUSE_MARK.finditer(tgt)]
    if not src_cuts or len(src_cuts) != len(tgt_cuts):
        return None
    best: tuple[float, int] | None = None
    for rank, (s, t) in enumerate(zip(src_cuts, tgt_cuts)):
        s_place, t_place = s / len(src), t / len(tgt)
        if abs(s_place - t_place) > MAX_PLACE_GAP or not MIDDLE[0] <= s_place <= MIDDLE[1]:
            continue
        halves = (src[:s], src[s:], tgt[:t], tgt[t:])
        if any(len(h.split()) < MIN_WORDS for h in halves):
            continue
        if best is None or abs(s_place - 0.5) < best[0]:
            best = (abs(s_place - 0.5), rank)
    if best is None:
        return None
    s, t = src_cuts[best[1]], tgt_cuts[best[1]]
    return src[:s].strip(), src[s:].strip(), tgt[:t].strip(), tgt[t:].strip()


def cut_text(sources: Sequence[str], references: Sequence[str]) -> tuple[list[str], list[str], list[int]]:
    """The pairs of a parallel text that `cut_pair` cuts, each as its two halves in a row:
    (sources, references, the index of each second half), for measuring how a context
    model uses the half before (a subtitle's previous cue)."""
    src: list[str] = []
    tgt: list[str] = []
    seconds: list[int] = []
    for pair in map(cut_pair, sources, references):
        if pair is not None:
            src += pair[:2]
            tgt += pair[2:]
            seconds.append(len(src) - 1)
    return src, tgt, seconds
