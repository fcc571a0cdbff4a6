"""Source text the tokenizer does not know is put back into the translation."""

from __future__ import annotations

from stages.corpus.vocab import SEP_ID, UNK_ID
from stages.decode.unknowns import (
    SPACE,
    describe,
    piece_texts,
    restore_unknowns,
    unknown_characters,
    unknown_words,
)

S = SPACE


def test_piece_texts_recover_what_each_unknown_piece_covers() -> None:
    ids = [10, 11, 12, 13, UNK_ID, 14, 15]
    pieces = [f"{S}The", f"{S}price", f"{S}is", S, "<unk>", f"{S}today", "."]
    assert piece_texts(ids, pieces, "The price is 5€ today.") == [
        f"{S}The", f"{S}price", f"{S}is", S, "5€", f"{S}today", "."]
    assert piece_texts([UNK_ID], ["<unk>"], "€€") == [f"{S}€€"]
    assert piece_texts([10], [f"{S}other"], "text") is None  # pieces that do not spell the text


def test_an_unknown_source_word_is_inserted_after_the_target_word_that_attends_to_it() -> None:
    source_ids = [10, 11, 12, 13, UNK_ID, 14, 15]
    texts = [f"{S}The", f"{S}price", f"{S}is", S, "5€", f"{S}today", "."]
    target = [f"{S}El", f"{S}precio", f"{S}es", f"{S}ho", "y", "."]
    attention = [[0.9, 0, 0, 0, 0, 0.1, 0], [0, 0.9, 0, 0, 0.1, 0, 0], [0, 0, 0.9, 0, 0.1, 0, 0],
                 [0, 0, 0, 0.2, 0.6, 0.2, 0], [0, 0, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 0, 1]]
    out = restore_unknowns(target, [20, 21, 22, 23, 24, 25], attention, source_ids, texts)
    assert out == "El precio es hoy 5€."  # after the whole word "hoy", never inside it


def test_unknown_quotes_around_a_known_word_wrap_its_translation_rather_than_copy_the_word() -> None:
    # He said, "Go." with `"` unknown: the model translates Go.; the quotes go around "Ve."
    source_ids = [10, 11, 12, 13, UNK_ID, 14, 15, UNK_ID]
    texts = [f"{S}He", f"{S}said", ",", S, '"', "Go", ".", '"']
    target = [f"{S}Dijo", ":", f"{S}Ve", "."]
    attention = [[0.5, 0.5, 0, 0, 0, 0, 0, 0], [0, 0.2, 0.8, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0.1, 0.8, 0.1, 0],
                 [0, 0, 0, 0, 0, 0.1, 0.8, 0.1]]
    out = restore_unknowns(target, [20, 21, 22, 23], attention, source_ids, texts)
    assert out == 'Dijo: "Ve".'  # not 'Dijo: Ve. "Go."'; the closing mark follows the word that attends most
    assert unknown_words(source_ids, texts) == ['""']  # the room a character limit keeps: the marks alone
    # An unknown character inside a word (5€, 555-1234) still puts the whole word back.
    assert unknown_words([10, UNK_ID, 11], [f"{S}a", f"{S}5€", "x"]) == ["5€x"]


def test_an_unknown_target_piece_becomes_the_source_word_it_attends_to() -> None:
    texts = [f"{S}see", f"{S}http", ":", "<unk>", "x", ".", "org"]
    texts[3] = "//"
    source_ids = [10, 11, 12, UNK_ID, 13, 14, 15]
    target = [f"{S}mira", "<unk>"]
    attention = [[1, 0, 0, 0, 0, 0, 0], [0, 0.1, 0.1, 0.6, 0.1, 0, 0.1]]
    out = restore_unknowns(target, [20, UNK_ID], attention, source_ids, texts)
    assert out == "mira http://x.org"  # the whole source word, once


def test_an_empty_translation_keeps_the_unknown_word() -> None:
    assert restore_unknowns([], [], [], [UNK_ID], [f"{S}42"]) == "42"


def test_unknown_characters_are_counted_once() -> None:
    chars = unknown_characters([[f"{S}a", "5€"], None, ["55"]], [[10, UNK_ID], [UNK_ID], [UNK_ID]])
    assert chars == ["5", "€"] and describe(chars) == "2 characters (5€)"


def test_a_context_models_previous_lines_lend_no_unknown_words() -> None:
    """Source: `5€ <sep> it costs 7€`; the 5€ of the previous line is not this line's."""
    source_ids = [UNK_ID, SEP_ID, 10, 11, UNK_ID]
    texts = [f"{S}5€", f"{S}<sep>", f"{S}it", f"{S}costs", f"{S}7€"]
    target = [f"{S}cuesta", "<unk>"]
    attention = [[0.5, 0, 0.2, 0.3, 0], [0.6, 0, 0, 0, 0.4]]  # the unknown piece looks most at the context's 5€
    assert restore_unknowns(target, [20, UNK_ID], attention, source_ids, texts, first=2) == "cuesta 7€"
    assert restore_unknowns(target, [20, UNK_ID], attention, source_ids, texts) == "cuesta 5€ 7€"  # without `first`
    assert restore_unknowns([f"{S}cuesta"], [20], attention[:1], source_ids, texts, first=2) == "cuesta 7€"
