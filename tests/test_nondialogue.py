"""Cues that are not speech are passed through unchanged and listed in the report."""

from __future__ import annotations

from pathlib import Path

import pytest

from stages.subtitles.formats import load_subtitles
from stages.subtitles.nondialogue import non_dialogue_reason
from stages.subtitles.translation import SubtitleConfig, translate_document

FIXTURES = Path(__file__).parent / "fixtures" / "subtitles"


@pytest.mark.parametrize("text, reason", [
    ("Synced and corrected by n17t01", "credit"),
    ("Subtitles by explosiveskull", "credit"),
    ("Sync & corrections by Firefly", "credit"),
    ("Translated by: María López", "credit"),
    ("Captioning made possible by ABC Studios", "credit"),
    ("Downloaded from www.OpenSubtitles.org", "credit"),
    ("Follow us @kingdomsubs", "link"),
    ("Watch more at https://example.org/show", "link"),
    ("Email bob@example.com", "link"),
    ("♪ ♪", "symbols"),
    ("* * *", "symbols"),
    ("THE KINGDOM S02E05 Aired 12/08/2017", "title card"),
    ("Season 3, Episode 7", "title card"),
    ("Downloaded from YTS.MX", "credit"),
    ("Subtitles by Jane Doe", "credit"),
    ("Sync and corrections by n17t01 & Firefly", "credit"),
    ("Subtitled by the Netflix team", "credit"),
    ("English subtitles by Netflix", "credit"),
    ("Subtitles by: SubRip team", "credit"),
    ("Created and encoded by bokutox", "credit"),
    ("Fixed & Synced by bozxphd. Enjoy The Flick", "credit"),
])
def test_what_is_not_speech(text: str, reason: str) -> None:
    assert non_dialogue_reason(text) == reason


@pytest.mark.parametrize("text", [
    "I was translated by the wind.",
    "Subtitles are hard to read by candlelight, he said slowly to me.",
    "Timing is everything, by the way.",
    "He was born on May 5, 1990.",
    "Episode one of my life, she said, began when I met him at the old station by the river.",
    "Meet me at 5.",
    "- Who is at the door?",
    "♪ Praise the Lord ♪",
    "The sync of the hearts.",
    # A credit word and "by"/":" followed by the rest of a sentence, not by names:
    "Timing is everything: you know that.",
    "Edited by whom?",
    "Timed out by the server",
    "Corrections: none so far",
    "Transcript from the trial:",
    "Downloaded from the internet",
    # An episode or a date in speech that runs on into the next cue:
    "Episode 5 was great",
    "We will meet on March 12, 2017",
    # Found by a second check: a full stop, a common word or a longer sentence around them.
    "Corrected by the teacher.",
    "Timed by me",
    "Edited by hand.",
    "Downloaded from the web.",
    "Translation: I love you.",
    "Subtitles: yes.",
    "Timing: 3 seconds.",
    "Translated by Tuesday.",
    "He was edited by Tom",
    "Go to Google.com and search.",
    "It's on Netflix.com",
    "I sent it to john.doe@gmail.com.",
    "Season 2 starts tomorrow",
    "May 5, 2020 changed everything",
    "Season 3, baby",
    "It's 2020-01-01",
    "",
])
def test_what_is_speech(text: str) -> None:
    assert non_dialogue_reason(text) is None


def echo(lines: list[str]) -> list[str]:
    return [f"<{line}>" for line in lines]


def test_non_dialogue_cues_pass_through_unchanged_and_are_listed() -> None:
    doc = load_subtitles(FIXTURES / "credits.srt")
    texts, report = translate_document(doc, echo, SubtitleConfig())
    assert texts[1] == ["<And God said unto Moses,>"] and texts[3] == ["<Go in peace.>"]
    for i in (0, 2, 4, 5):
        assert texts[i] == doc.cues[i].lines
    assert [(n["cue"], n["reason"]) for n in report["cues"]["non_dialogue"]] == \
        [(1, "title card"), (3, "symbols"), (5, "credit"), (6, "link")]
    assert report["counts"]["non_dialogue"] == 4 and report["counts"]["passed_through"] == 4
    assert report["counts"]["translated"] == 2


def test_asked_to_they_are_translated() -> None:
    doc = load_subtitles(FIXTURES / "credits.srt")
    texts, report = translate_document(doc, echo, SubtitleConfig(translate_non_dialogue=True))
    assert report["counts"]["non_dialogue"] == 0
    assert texts[4] != doc.cues[4].lines and texts[0] != doc.cues[0].lines


def test_a_cue_without_a_letter_is_its_own_unit_and_no_context(tmp_path: Path) -> None:
    from stages.corpus.vocab import CONTEXT_SEP

    path = tmp_path / "dots.srt"
    path.write_text("1\n00:00:01,000 --> 00:00:02,000\nAnd God said unto Moses,\n\n"
                    "2\n00:00:02,100 --> 00:00:03,000\n...\n\n"
                    "3\n00:00:03,100 --> 00:00:04,000\nGo in peace.\n", encoding="utf-8")
    doc = load_subtitles(path)
    seen: list[str] = []

    def record(lines: list[str]) -> list[str]:
        seen.extend(lines)
        return echo(lines)

    texts, _ = translate_document(doc, record, SubtitleConfig(translate_non_dialogue=True))
    assert texts == [["<And God said unto Moses,>"], ["<...>"], ["<Go in peace.>"]]  # "..." joins no sentence
    seen.clear()
    translate_document(doc, record, SubtitleConfig(translate_non_dialogue=True, context=1, separator=CONTEXT_SEP))
    assert seen[2] == f"And God said unto Moses, {CONTEXT_SEP} Go in peace."  # "..." is no context


def test_the_subtitle_command_passes_them_through(shared_run: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main

    out = tmp_path / "credits.es.srt"
    result = CliRunner().invoke(main, ["subtitle", str(FIXTURES / "credits.srt"), "--run", str(shared_run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert "passed through 4 (not speech: 4)" in result.output
    source, translated = load_subtitles(FIXTURES / "credits.srt"), load_subtitles(out)
    assert translated.cues[4].lines == source.cues[4].lines
    again = CliRunner().invoke(main, ["subtitle", str(FIXTURES / "credits.srt"), "--run", str(shared_run),
                                      "-o", str(tmp_path / "all.srt"), "--translate-non-dialogue"])
    assert again.exit_code == 0 and "(not speech: 0)" in again.output
