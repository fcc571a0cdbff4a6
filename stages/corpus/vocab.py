"""The vocabulary's fixed points, shared by every stage: the special token ids, the
context separator, and the one rule that puts previous lines in front of a source line.

A leaf: it imports nothing heavy, so search and the model can use the ids without
pulling in SentencePiece or `datasets`.
"""

from __future__ import annotations

from collections import deque
from typing import Iterable, Iterator, Sequence

# Fixed for every SentencePiece model s2s trains (stages/corpus/tokenization.py).
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIAL_IDS = (PAD_ID, UNK_ID, BOS_ID, EOS_ID)  # ids 0 .. 3, in that order

# Between the previous lines and the line to translate, for a context model
# (`data.context: N`); a user-defined SentencePiece symbol, so it is always one piece.
CONTEXT_SEP = "<sep>"
SEP_ID = 4  # its id: SentencePiece numbers user-defined symbols right after the special ids
# What a literal CONTEXT_SEP typed in user text becomes, so that text never produces
# the separator's id (SentencePiece matches user-defined symbols anywhere in its input).
ESCAPED_SEP = "\u2039sep\u203a"  # ‹sep›


def user_text(text: str) -> str:
    """`text` as the model may see it: reserved symbols typed in it made harmless.

    Every line that comes from a user or a corpus goes through this once, before the
    context separator is put between lines (`with_context`, `join_context` do it)."""
    return text.replace(CONTEXT_SEP, ESCAPED_SEP)


def has_words(text: str) -> bool:
    """Whether `text` holds a letter of any script, i.e. something to translate. A line
    without one ("...", "♪", "3:16") is copied by translation and is no context."""
    return any(ch.isalpha() for ch in text)


def join_context(previous: Sequence[str], line: str, separator: str = CONTEXT_SEP) -> str:
    """`"p1 p2 <sep> line"`: the previous lines, the separator, then the line (all of
    them user text, escaped here)."""
    return " ".join([*map(user_text, previous), separator, user_text(line)])


def with_context(
    lines: Iterable[str], size: int, separator: str = CONTEXT_SEP, before: Sequence[str] = ()
) -> Iterator[str]:
    """Each line behind its `size` previous non-blank lines and the separator, as a
    context model is trained (prepare) and used (translate, subtitle).

    Blank lines stay as they are and are not context for the lines after them; nor are
    lines without a letter ("...", "♪", "3:16"), which translation copies. With
    `size` 0 a line gets the separator alone. `before` holds the lines that precede the
    first one (a batch cut out of a longer text), so a batch gets the same context as
    the whole text would.
    """
    history: deque[str] = deque(filter(has_words, before), maxlen=max(size, 1))
    for line in lines:
        if not line.strip():
            yield line
            continue
        yield join_context(list(history) if size else [], line, separator)
        if has_words(line):
            history.append(line)


def after_context(tokens: Sequence[int]) -> int:
    """Where the translation starts in a model's output ids: just past the last context
    separator (a model trained with `data.target_context` first translates the previous
    lines, then writes the separator), 0 where there is none."""
    for at in range(len(tokens) - 1, -1, -1):
        if tokens[at] == SEP_ID:
            return at + 1
    return 0


def without_context(lines: Iterable[str]) -> Iterator[str]:
    """Lines for a model without context: user text, escaped as `with_context` does."""
    return map(user_text, lines)
