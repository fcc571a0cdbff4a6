"""Fit-to-cue: among a unit's n best hypotheses, the best-scoring one that fits the box."""

from __future__ import annotations

from pathlib import Path

from stages.subtitles.formats import parse_subtitles
from stages.subtitles.translation import SubtitleConfig, translate_document

SRT = b"""1
00:00:01,000 --> 00:00:04,000
Go in peace.

2
00:00:05,000 --> 00:00:09,000
And he said unto them.
"""
LONG = "And he said unto them with a loud voice in the middle of the great assembly of the people of the land"


def document():
    return parse_subtitles(SRT, Path("two.srt"))


def one_best(lines: list[str]) -> list[str]:
    raise AssertionError("with n-best lists, the 1-best comes from them")


def test_the_second_hypothesis_fits_where_the_first_is_too_long() -> None:
    def nbest(lines: list[str], n: int) -> list[list[tuple[str, float]]]:
        assert n == 5
        return [[("Id en paz.", -0.1)], [(LONG, -0.2), ("Y les dijo.", -0.5), ("Y él les dijo.", -0.6)]]

    texts, report = translate_document(document(), one_best, SubtitleConfig(), nbest=nbest)
    assert texts == [["Id en paz."], ["Y les dijo."]]
    assert report["cues"]["fitted"] == [2] and report["cues"]["no_fit"] == []
    assert report["counts"]["cues_over_max_lines"] == 0


def test_nothing_fits_keeps_the_best_and_flags_the_cue() -> None:
    def nbest(lines: list[str], n: int) -> list[list[tuple[str, float]]]:
        return [[("Id en paz.", -0.1)], [(LONG, -0.2), (LONG + " again", -0.3)]]

    texts, report = translate_document(document(), one_best, SubtitleConfig(), nbest=nbest)
    assert " ".join(texts[1]) == LONG
    assert report["cues"]["no_fit"] == [2] and report["cues"]["fitted"] == []
    assert report["cues"]["cues_over_max_lines"] == [2]


def test_the_margin_bounds_the_choice() -> None:
    def nbest(lines: list[str], n: int) -> list[list[tuple[str, float]]]:
        return [[("Id en paz.", -0.1)], [(LONG, -0.2), ("Y les dijo.", -5.0)]]

    texts, report = translate_document(document(), one_best, SubtitleConfig(fit_margin=1.0), nbest=nbest)
    assert " ".join(texts[1]) == LONG and report["cues"]["no_fit"] == [2]
    texts, report = translate_document(document(), one_best, SubtitleConfig(fit_margin=5.0), nbest=nbest)
    assert texts[1] == ["Y les dijo."] and report["cues"]["fitted"] == [2]


def test_the_reading_speed_decides_between_hypotheses_that_both_fit_the_box() -> None:
    fast = "Y él les dijo a todos ellos con voz alta."  # twice: two lines of 41, but 21 characters per second

    def nbest(lines: list[str], n: int) -> list[list[tuple[str, float]]]:
        return [[("Id en paz.", -0.1)], [(fast + " " + fast, -0.2), ("Y les dijo.", -0.4)]]

    texts, report = translate_document(document(), one_best, SubtitleConfig(max_cps=17), nbest=nbest)
    assert texts[1] == ["Y les dijo."] and report["cues"]["fitted"] == [2]


def test_one_hypothesis_means_no_fitting() -> None:
    calls: list[int] = []

    def nbest(lines: list[str], n: int) -> list[list[tuple[str, float]]]:
        calls.append(n)
        return [[("x", 0.0)]] * len(lines)

    texts, report = translate_document(document(), lambda lines: ["Id."] * len(lines), SubtitleConfig(fit_nbest=1),
                                       nbest=nbest)
    assert calls == [] and texts == [["Id."], ["Id."]]


SHORT = "Y les dijo en voz alta a todos."


def test_when_nothing_fits_a_length_limited_search_gives_one_that_does() -> None:
    asked: list[list[int]] = []

    def nbest(lines: list[str], n: int) -> list[list[tuple[str, float]]]:
        return [[("Id en paz.", -0.1)], [(LONG, -0.2), (LONG + " again", -0.3)]]

    def shorten(lines: list[str], limits: list[int]) -> list[str]:
        asked.append(limits)
        return [LONG if limits[0] > 70 else SHORT]  # as if still too long at the first limit

    texts, report = translate_document(document(), one_best, SubtitleConfig(), nbest=nbest, shorten=shorten)
    assert texts[1] == [SHORT]
    assert report["cues"]["shortened"] == [2] and report["cues"]["no_fit"] == []
    assert report["counts"]["cues_over_max_lines"] == 0 and report["counts"]["lines_over_limit"] == 0
    assert [limits[0] for limits in asked] == [84, 75, 67]  # 1.0, 0.9, then 0.8 of the 2 x 42 box (LONG is longer)


def test_shortening_that_never_fits_keeps_the_best_and_flags_the_cue() -> None:
    def nbest(lines: list[str], n: int) -> list[list[tuple[str, float]]]:
        return [[("Id en paz.", -0.1)], [(LONG, -0.2)]]

    texts, report = translate_document(document(), one_best, SubtitleConfig(), nbest=nbest,
                                       shorten=lambda lines, limits: ["palabra" * 20] * len(lines))
    assert " ".join(texts[1]) == LONG
    assert report["cues"]["shortened"] == [] and report["cues"]["no_fit"] == [2]


def test_a_source_cue_over_the_box_is_not_shortened() -> None:
    wide = SRT.replace(b"And he said unto them.", b"And he said unto them, all of them, in the middle of the great hall.")
    calls: list[list[str]] = []

    def shorten(lines: list[str], limits: list[int]) -> list[str]:
        calls.append(lines)
        return [SHORT] * len(lines)

    texts, report = translate_document(parse_subtitles(wide, Path("w.srt")), lambda lines: ["Id en paz.", LONG],
                                       SubtitleConfig(max_chars=30, max_lines=2), shorten=shorten)
    assert calls == [] and report["cues"]["no_fit"] == [2]


def test_without_fit_shorten_nothing_is_searched_again() -> None:
    def shorten(lines: list[str], limits: list[int]) -> list[str]:
        raise AssertionError("fit_shorten is off")

    texts, report = translate_document(document(), lambda lines: ["Id en paz.", LONG],
                                       SubtitleConfig(fit_shorten=False), shorten=shorten)
    assert " ".join(texts[1]) == LONG and report["cues"]["no_fit"] == [2]


def test_shortening_also_serves_the_one_best_path() -> None:
    texts, report = translate_document(document(), lambda lines: ["Id en paz.", LONG], SubtitleConfig(fit_nbest=1),
                                       shorten=lambda lines, limits: [SHORT] * len(lines))
    assert texts[1] == [SHORT] and report["cues"]["shortened"] == [2]


DIALOGUE = b"""1
00:00:01,000 --> 00:00:04,000
- Who are you?
- I am the servant of the king.

2
00:00:05,000 --> 00:00:09,000
- Yes.
- And he went down to the river.
"""
SPANISH = {
    "Who are you?": "¿Quién eres tú, que vienes aquí de noche sin ser llamado?",
    "I am the servant of the king.": "Yo soy el siervo del rey, que me envió a buscarte con prisa.",
    "Yes.": "Sí.",
    "And he went down to the river.": "Y él descendió al río con todos los siervos de la casa del rey.",
}
SHORT_SPANISH = {"Who are you?": "¿Quién eres?", "I am the servant of the king.": "Soy el siervo del rey.",
                 "And he went down to the river.": "Y descendió al río."}


def test_each_speaker_of_a_dialogue_cue_is_shortened_to_its_own_line() -> None:
    asked: list[tuple[str, int]] = []

    def shorten(lines: list[str], limits: list[int]) -> list[str]:
        asked.extend(zip(lines, limits))
        return [SHORT_SPANISH[line] for line in lines]

    doc = parse_subtitles(DIALOGUE, Path("d.srt"))
    texts, report = translate_document(doc, lambda lines: [SPANISH[line] for line in lines], SubtitleConfig(),
                                       shorten=shorten)
    assert texts == [["- ¿Quién eres?", "- Soy el siervo del rey."], ["- Sí.", "- Y descendió al río."]]
    assert report["cues"]["shortened"] == [1, 2] and report["cues"]["no_fit"] == []
    assert "Yes." not in [line for line, _ in asked]  # the speaker that fits keeps its translation
    assert all(limit <= 40 for _, limit in asked)  # a speaker's line less its "- "


SHARED = b"""1
00:00:01,000 --> 00:00:03,000
And he said unto them all, in the

2
00:00:03,100 --> 00:00:05,000
middle of the hall, go.
"""


def test_a_cue_that_fits_is_shortened_even_when_its_sentence_shares_a_cue_that_does_not() -> None:
    long = "Y les dijo a todos ellos, en medio de la gran sala del rey, id ahora mismo y no volváis."

    def shorten(lines: list[str], limits: list[int]) -> list[str]:
        return ["Y les dijo a todos, en medio de la sala: id."]

    cfg = SubtitleConfig(max_chars=30, max_lines=1)
    texts, report = translate_document(parse_subtitles(SHARED, Path("s.srt")), lambda lines: [long], cfg,
                                       shorten=shorten)
    assert report["counts"]["cross_cue_sentences"] == 1
    assert len(texts[1]) == 1 and len(texts[1][0]) <= 30  # cue 2's source fits: so does its translation
    assert 2 in report["cues"]["shortened"] and 2 not in report["cues"]["no_fit"]


def test_a_cue_still_over_its_box_is_not_listed_as_shortened() -> None:
    def shorten(lines: list[str], limits: list[int]) -> list[str]:  # fixes one speaker, never the other
        return [SHORT_SPANISH[line] if line.startswith("Who") else SPANISH[line] for line in lines]

    doc = parse_subtitles(DIALOGUE, Path("d.srt"))
    texts, report = translate_document(doc, lambda lines: [SPANISH[line] for line in lines], SubtitleConfig(),
                                       shorten=shorten)
    assert texts[0][0] == "- ¿Quién eres?"
    assert report["cues"]["no_fit"] == [1, 2] and report["cues"]["shortened"] == []
