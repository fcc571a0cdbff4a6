"""Text the tokenizer does not know survives translation (`decoding.replace_unk`).

A character never seen when SentencePiece was trained (a digit, `€`, a letter of another
script) becomes the unknown piece, and a model trained without such pieces cannot write
it back: "The price is 5€" would lose its "5€". Here, each unknown source span is put back
into the translation by attention, as OpenNMT-py's `replace_unk` does (Luong et al. 2015,
"Addressing the rare word problem"): an unknown target piece becomes the source word it
attends to most, and a source word with unknown text that no target piece took is
inserted after the target word that attends to it most.
"""

from __future__ import annotations

import unicodedata
from typing import Optional, Sequence

from stages.corpus.vocab import UNK_ID

SPACE = "\u2581"  # SentencePiece's word-boundary mark


def piece_texts(ids: Sequence[int], pieces: Sequence[str], text: str) -> Optional[list[str]]:
    """The text each piece of `ids` covers in `text` (spaces as `SPACE`), the unknown
    pieces' text included; None where the pieces do not spell the text (SentencePiece
    normalised a character), in which case unknown spans cannot be recovered."""
    spelled = SPACE + SPACE.join(text.split())
    out: list[str] = []
    pos = 0
    for k, (token, piece) in enumerate(zip(ids, pieces)):
        if token != UNK_ID:
            if not spelled.startswith(piece, pos):
                return None
            out.append(piece)
            pos += len(piece)
            continue
        following = next((p for t, p in zip(ids[k + 1:], pieces[k + 1:]) if t != UNK_ID), None)
        end = len(spelled) if following is None else spelled.find(following, pos + 1)
        if end < 0:
            return None
        out.append(spelled[pos:end])
        pos = end
    return out if pos == len(spelled) else None


def restore_unknowns(target_pieces: list[str], target_ids: Sequence[int], attention: Sequence[Sequence[float]],
                     source_ids: Sequence[int], source_texts: list[str], first: int = 0) -> str:
    """The translation's text with every source word that holds unknown text put back
    whole (`5€`, `555-1234`, `http://example.org`: the known pieces around an unknown
    character would not be copied by the model either).

    target_pieces/target_ids: the hypothesis (no EOS); attention: one row per target
    piece over the source pieces; source_texts: from `piece_texts`. An unknown target
    piece becomes the source word it attends to most; each unknown source word that no
    target piece took goes after the target word that attends to it most. `first`: where
    the sentence starts in a context model's input (past the previous lines and the
    separator); the words before it belong to other lines and are never copied.
    """
    words = _words(source_texts)  # per source piece: (first, last) piece of its word
    unknown = _unknown_words(words, source_ids, first)
    pieces = list(target_pieces)
    placed: set[tuple[int, int]] = set()
    for t, token in enumerate(target_ids):
        if token == UNK_ID and t < len(attention) and attention[t]:
            row = attention[t][first:] or attention[t]
            word = words[len(attention[t]) - len(row) + _argmax(row)]
            pieces[t] = SPACE + _word_text(source_texts, word)
            placed.add(word)
    after: dict[int, list[str]] = {}
    opening: dict[int, list[str]] = {}  # marks that go in front of a target word
    for word in sorted(unknown - placed):
        t = _best_row(attention, word)
        end = t
        while 0 <= end < len(pieces) - 1 and not pieces[end + 1].startswith(SPACE) and pieces[end + 1][:1].isalnum():
            end += 1  # never inside a target word
        marks = _edge_marks(source_texts, source_ids, word)
        if marks is not None and t >= 0:  # `"Go."`: the model translates Go., the quotes wrap its translation
            start = t
            while start > 0 and not pieces[start].startswith(SPACE):
                start -= 1
            if marks[0]:
                opening.setdefault(start, []).append(marks[0])
            if marks[1]:
                after.setdefault(end, []).append(marks[1])
            continue
        after.setdefault(end, []).append(SPACE + _word_text(source_texts, word))
    spelled = list(after.get(-1, []))  # an empty translation
    for t, piece in enumerate(pieces):
        lead = "".join(opening.get(t, []))
        spelled.append(SPACE + lead + piece[1:] if lead and piece.startswith(SPACE) else lead + piece)
        spelled.extend(after.get(t, []))
    return " ".join("".join(spelled).replace(SPACE, " ").split())


def _edge_marks(texts: list[str], source_ids: Sequence[int], word: tuple[int, int]) -> Optional[tuple[str, str]]:
    """For a word whose unknown text is only punctuation at its edges (`"Go."`, `«king»`,
    `¿Who`), the marks before and after its known middle, which the model translates;
    None for any other word with unknown text (`5€`, `555-1234`), which is put back whole."""
    span = range(word[0], word[1] + 1)
    known = [k for k in span if source_ids[k] != UNK_ID and any(c.isalnum() for c in texts[k])]
    if not known:
        return None
    inner = range(known[0], known[-1] + 1)
    marks = [k for k in span if source_ids[k] == UNK_ID]
    if any(k in inner for k in marks):
        return None
    text = {k: texts[k].replace(SPACE, "") for k in marks}
    if not all(text[k] and all(unicodedata.category(c)[0] in "PS" for c in text[k]) for k in marks):
        return None
    return "".join(text[k] for k in marks if k < known[0]), "".join(text[k] for k in marks if k > known[-1])


def unknown_words(source_ids: Sequence[int], source_texts: list[str], first: int = 0) -> list[str]:
    """The source text (from `first` on) that `restore_unknowns` puts back: each word
    that holds unknown text, whole, once, whether or not a target piece takes it (of a
    word whose unknown text is only punctuation at its edges, those marks)."""
    out = []
    for word in sorted(_unknown_words(_words(source_texts), source_ids, first)):
        marks = _edge_marks(source_texts, source_ids, word)
        out.append(_word_text(source_texts, word) if marks is None else "".join(marks))
    return out


def _unknown_words(words: list[tuple[int, int]], source_ids: Sequence[int], first: int) -> set[tuple[int, int]]:
    return {words[j] for j, token in enumerate(source_ids) if token == UNK_ID and j >= first}


def _words(texts: list[str]) -> list[tuple[int, int]]:
    """For each piece, the (first, last) piece of the word it belongs to."""
    starts = [k for k, text in enumerate(texts) if k == 0 or text.startswith(SPACE)]
    out = []
    for k in range(len(texts)):
        first = max(s for s in starts if s <= k)
        following = [s for s in starts if s > k]
        out.append((first, (following[0] if following else len(texts)) - 1))
    return out


def _word_text(texts: list[str], word: tuple[int, int]) -> str:
    return "".join(texts[word[0] : word[1] + 1]).replace(SPACE, " ").strip()


def _best_row(attention: Sequence[Sequence[float]], word: tuple[int, int]) -> int:
    """The target piece that attends most to the word's pieces (-1: no target pieces)."""
    if not attention:
        return -1
    return max(range(len(attention)), key=lambda t: sum(attention[t][word[0] : word[1] + 1]))


def unknown_characters(texts: Sequence[Optional[list[str]]], source_ids: Sequence[Sequence[int]]) -> list[str]:
    """The distinct characters of all unknown source spans, in order of appearance."""
    seen: dict[str, None] = {}
    for spans, ids in zip(texts, source_ids):
        if spans is None:
            continue
        for token, span in zip(ids, spans):
            if token == UNK_ID:
                seen.update(dict.fromkeys(span.replace(SPACE, "")))
    return list(seen)


def _argmax(row: Sequence[float]) -> int:
    return max(range(len(row)), key=row.__getitem__)


def describe(characters: list[str]) -> str:
    """`3 characters (5€½)`, at most 20 of them shown."""
    shown = "".join(characters[:20])
    return f"{len(characters)} character{'s' if len(characters) != 1 else ''} ({shown}{'...' if len(characters) > 20 else ''})"

