"""Subtitle files: structure and timing kept exactly, markup kept, line norms, context."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pysubs2
import pytest

from stages.errors import InputDataError
from stages.subtitles.formats import load_subtitles, output_encoding, render
from stages.subtitles.text import parse_cue, split_by_share, wrap_line
from stages.subtitles.translation import SubtitleConfig, translate_document

FIXTURES = Path(__file__).parent / "fixtures" / "subtitles"


class Spy:
    """A stand-in model: records every input it sees and answers with a marked copy of
    the sentence (context stripped), so tests can see where each piece went."""

    def __init__(self, answer: str = "«{}»") -> None:
        self.inputs: list[str] = []
        self.answer = answer

    def __call__(self, lines: list[str]) -> list[str]:
        self.inputs += lines
        return [self.answer.format(line.split("<sep>")[-1].strip()) for line in lines]


def _timings(doc):  # type: ignore[no-untyped-def]
    return [(c.start, c.end) for c in doc.cues]


@pytest.mark.parametrize("name", ["episode.srt", "episode.vtt", "episode.ass", "bom_crlf.srt", "cp1252.srt"])
def test_cues_and_timings_survive_translation(name: str, tmp_path: Path) -> None:
    doc = load_subtitles(FIXTURES / name)
    texts, report = translate_document(doc, Spy(), SubtitleConfig())
    out = tmp_path / name
    out.write_text(render(doc, texts), encoding="utf-8")
    again = load_subtitles(out)
    assert _timings(again) == _timings(load_subtitles(FIXTURES / name))
    assert report["counts"]["cues_in"] == report["counts"]["cues_out"] == len(again.cues)
    # Per pysubs2 too, not only per our own reader.
    fmt = name.rsplit(".", 1)[1]
    theirs = pysubs2.load(str(out), encoding="utf-8", format_=fmt)
    dialogue = [e for e in theirs.events if e.type == "Dialogue"]
    assert [(e.start, e.end) for e in dialogue] == _timings(again)


def test_srt_structure_and_markup(tmp_path: Path) -> None:
    doc = load_subtitles(FIXTURES / "episode.srt")
    texts, report = translate_document(doc, Spy(), SubtitleConfig())
    text = render(doc, texts)
    source = (FIXTURES / "episode.srt").read_text(encoding="utf-8")
    # Ids and timing lines byte for byte, in order.
    skeleton = lambda t: [ln for ln in t.splitlines() if re.fullmatch(r"\d+|.*-->.*", ln)]  # noqa: E731
    assert skeleton(text) == skeleton(source)
    cues = [c.lines for c in load_subtitles(_write(tmp_path / "o.srt", text)).cues]
    assert cues[0] == ["<i>«And God said unto Moses,»</i>"]
    assert cues[1] == ["- «Who are you?»", "- «I am the servant of the king.»"]
    assert cues[5] == ["\u266a «Praise the Lord» \u266a"]
    assert cues[6][0].startswith("[«THUNDER»]")  # an all-capitals sound cue stays in capitals
    assert cues[7] == ['<font color="#ffff00">«Hear me, O Israel, for I am the Lord.»</font>']
    assert cues[8] == []  # the empty cue passes through
    assert cues[9] == ["{\\an8}MOSES: «Go in peace.»"]
    assert report["cues"]["passed_through"] == [9]
    assert report["cues"]["overlapping_cues"] == [10]


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_sentence_spanning_three_cues_is_translated_once_and_split_back() -> None:
    doc = load_subtitles(FIXTURES / "episode.srt")
    spy = Spy()
    texts, report = translate_document(doc, spy, SubtitleConfig())
    joined = "And the king went down to the river to see whether the waters had risen in the night."
    assert joined in spy.inputs
    parts = [" ".join(texts[i]) for i in (2, 3, 4)]
    assert all(parts)
    assert " ".join(parts) == f"«{joined}»"
    # Each cue's share follows the source's: the long first cue keeps the most words.
    assert len(parts[0]) > len(parts[1])
    assert report["counts"]["cross_cue_sentences"] == 1


def test_split_never_leaves_a_cue_empty() -> None:
    assert split_by_share("uno dos tres cuatro", [30, 1, 1]) == ["uno dos", "tres", "cuatro"]
    assert split_by_share("uno", [10, 10]) is None


def test_too_short_a_translation_for_its_cues_is_redone_cue_by_cue() -> None:
    doc = load_subtitles(FIXTURES / "episode.srt")
    calls: list[list[str]] = []

    def short(lines: list[str]) -> list[str]:
        calls.append(lines)
        return ["Sí." if "river" in line and "night" in line else f"«{line}»" for line in lines]

    texts, _ = translate_document(doc, short, SubtitleConfig())
    assert len(calls) == 2 and len(calls[1]) == 3
    assert all(texts[i] for i in (2, 3, 4))


def test_vtt_keeps_header_notes_styles_ids_and_settings() -> None:
    doc = load_subtitles(FIXTURES / "episode.vtt")
    spy = Spy()
    texts, _ = translate_document(doc, spy, SubtitleConfig())
    out = render(doc, texts)
    for kept in ("WEBVTT Kind: captions; Language: en", "NOTE This file tests headers", "::cue(.yellow)",
                 "intro\n00:00:01.000 --> 00:00:03.000 align:start position:10%", "NOTE a note between cues",
                 "third-cue\n00:00:05.500 --> 00:00:08.000 line:0", "00:03.500 --> 00:05.000"):
        assert kept in out
    assert "Bread & water." in spy.inputs  # entities decoded for the model ...
    assert "<v Moses>«Bread &amp; water.»</v>" in out  # ... and encoded again
    assert "<c.yellow>«Go in peace.»</c>" in out


def test_ass_keeps_styles_comments_overrides_and_drawings() -> None:
    doc = load_subtitles(FIXTURES / "episode.ass")
    spy = Spy()
    texts, report = translate_document(doc, spy, SubtitleConfig())
    out = pysubs2.SSAFile.from_string(render(doc, texts))
    assert set(out.styles) == {"Default", "Sign"} and out.styles["Sign"].bold
    events = out.events
    assert [e.type for e in events] == ["Dialogue", "Comment", "Dialogue", "Dialogue"]
    assert events[0].text.startswith("{\\an8}«") and events[0].name == "Moses"
    assert events[1].text == "a translator's note"
    assert events[2].text == "{\\i1}«Go in peace.»{\\i0}"
    assert events[3].text.startswith("{\\p1}m 0 0")  # a drawing is not text
    assert not any("m 0 0" in line for line in spy.inputs)
    assert report["cues"]["passed_through"] == [3]


def test_encodings_are_detected_and_named() -> None:
    assert load_subtitles(FIXTURES / "bom_crlf.srt").encoding == "utf-8-sig"
    latin = load_subtitles(FIXTURES / "cp1252.srt")
    assert latin.encoding == "cp1252"
    assert latin.cues[0].lines == ["The caf\u00e9 was closed \u2013 said he."]


def test_utf16_and_crlf_round_trip(tmp_path: Path) -> None:
    source = (FIXTURES / "bom_crlf.srt").read_bytes().decode("utf-8-sig")
    path = tmp_path / "u16.srt"
    path.write_bytes(source.encode("utf-16"))
    doc = load_subtitles(path)
    assert doc.encoding == "utf-16" and doc.newline == "\r\n"
    texts, _ = translate_document(doc, Spy(), SubtitleConfig())
    assert "00:00:02,500 --> 00:00:04,000\r\n«The second day.»\r\n" in render(doc, texts)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("broken_time.srt", r"broken_time.srt:2: broken timestamp '00:00:01,000 --> 00:00:0x,500'"),
        ("plain.srt", r"plain.srt:1: expected an SRT cue"),
    ],
)
def test_bad_files_name_the_line(name: str, message: str) -> None:
    with pytest.raises(InputDataError, match=message):
        load_subtitles(FIXTURES / name)


def test_other_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match="a WebVTT file starts with 'WEBVTT'"):
        load_subtitles(_write(tmp_path / "x.vtt", "1\n00:00:01.000 --> 00:00:02.000\nhi\n"))
    with pytest.raises(InputDataError, match="not a subtitle format"):
        load_subtitles(_write(tmp_path / "x.txt", "hi\n"))
    with pytest.raises(InputDataError, match=r"x.srt:6: the cue ends"):
        load_subtitles(_write(tmp_path / "x.srt", "1\n00:00:01,000 --> 00:00:02,000\nhi\n\n2\n00:00:05,000 --> 00:00:04,000\nho\n"))
    with pytest.raises(InputDataError, match=r"x.srt:5: block after cue 1 has no timing line"):
        load_subtitles(_write(tmp_path / "x.srt", "1\n00:00:01,000 --> 00:00:02,000\nhi\n\nstray text\n"))
    with pytest.raises(InputDataError, match=r"cannot be decoded as utf-8"):
        load_subtitles(FIXTURES / "cp1252.srt", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"read as --encoding utf-16: if that is not the file's encoding"):
        load_subtitles(FIXTURES / "plain.srt", encoding="utf-16")


@pytest.mark.parametrize(("old", "new", "message"), [
    ("Dialogue: 0,0:00:04.00,0:00:06.00,Sign,,0,0,0,,{\\i1}Go in peace.{\\i0}", "Dialogue: 0,0:00:04.00",
     r"x.ass:16: Dialogue line with 2 of the 10 fields \(Layer, Start, End, .*\); the line is cut short"),
    ("0:00:04.00,0:00:06.00,Sign", "0:00:04.00,0:0x:06.00,Sign",
     r"x.ass:16: broken End time '0:0x:06.00'; expected e.g. '0:01:02.50'"),
    ("0:00:04.00,0:00:06.00,Sign", "0:00:04.00,0:75:06.00,Sign", r"x.ass:16: '0:75:06.00' has minutes or seconds of 60"),
    ("0:00:04.00,0:00:06.00,Sign", "0:00:06.00,0:00:04.00,Sign", r"x.ass:16: the event ends \(0:00:04.00\) before it starts"),
    ("Comment: 0,0:00:02.00,0:00:03.00", "Comment: 0,0:00:02.00,3", r"x.ass:15: broken End time '3'"),
], ids=["cut-short", "broken-time", "minute-75", "end-before-start", "comment"])
def test_a_broken_ass_event_is_named_by_its_line(tmp_path: Path, old: str, new: str, message: str) -> None:
    text = (FIXTURES / "episode.ass").read_text(encoding="utf-8")
    assert old in text
    with pytest.raises(InputDataError, match=message):
        load_subtitles(_write(tmp_path / "x.ass", text.replace(old, new)))


def test_a_time_past_59_minutes_or_seconds_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match=r"x.srt:2: '00:00:01,000 --> 00:75:03,000' has minutes or seconds of 60"):
        load_subtitles(_write(tmp_path / "x.srt", "1\n00:00:01,000 --> 00:75:03,000\nhi\n"))
    with pytest.raises(InputDataError, match=r"x.vtt:3: .* has minutes or seconds of 60"):
        load_subtitles(_write(tmp_path / "x.vtt", "WEBVTT\n\n00:00:01.000 --> 00:00:61.000\nhi\n"))


def test_empty_cue_warns_and_passes_through(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        load_subtitles(FIXTURES / "episode.srt")
    assert "episode.srt:35: cue 9 is empty; passed through unchanged" in caplog.text
    assert "cue 10 starts before cue 9 ends" in caplog.text


def test_lines_are_wrapped_to_the_limits() -> None:
    long = "Y el rey descendió al río para ver si las aguas habían crecido durante la noche"
    lines = wrap_line(long, 42, 2)
    assert len(lines) == 2 and all(len(line) <= 42 for line in lines)
    assert " ".join(lines) == long
    assert wrap_line("Corto.", 42, 2) == ["Corto."]
    # Never end a line on an article, even when that balances the lines best.
    lines = wrap_line("Entonces Moisés tomó la vara de Dios en su mano", 26, 2)
    assert lines[0].split()[-1].lower() not in {"la", "el", "los", "las", "un", "una", "su"} or lines[0].endswith(",")
    assert all(len(line) <= 26 for line in lines)
    # Prefer breaking after punctuation.
    assert wrap_line("Hear me, O Israel and all the people of the land", 30, 2)[0] == "Hear me, O Israel and all"  or \
        wrap_line("Hear me, O Israel and all the people of the land", 30, 2)[0].endswith(",")


def test_report_counts_norms(tmp_path: Path) -> None:
    doc = load_subtitles(FIXTURES / "episode.srt")
    wordy = Spy("{} " + "palabra " * 20)
    texts, report = translate_document(doc, wordy, SubtitleConfig(max_chars=42, max_lines=2, max_cps=17))
    for number in report["cues"]["cues_over_max_lines"]:
        assert len(texts[number - 1]) > 2
    assert report["counts"]["cues_over_cps"] >= 1 and report["counts"]["lines_over_limit"] == 0
    empty = Spy("")
    texts, report = translate_document(doc, empty, SubtitleConfig())
    assert report["cues"]["empty_translations"] and all(texts[n - 1] for n in report["cues"]["empty_translations"])


def test_context_changes_what_the_model_sees() -> None:
    doc = load_subtitles(FIXTURES / "episode.srt")
    without, with_one = Spy(), Spy()
    translate_document(doc, without, SubtitleConfig(context=0, separator="<sep>"))
    translate_document(doc, with_one, SubtitleConfig(context=1, separator="<sep>"))
    assert without.inputs[0] == "<sep> And God said unto Moses,"
    assert with_one.inputs[1] == "And God said unto Moses, <sep> Who are you?"
    assert with_one.inputs[2] == "Who are you? <sep> I am the servant of the king."
    # Lyrics and sound cues are not context for the speech after them.
    night = "And the king went down to the river to see whether the waters had risen in the night."
    thunder = with_one.inputs.index(f"{night} <sep> thunder")
    assert with_one.inputs[thunder + 1] == f"{night} <sep> And there was a great voice."
    plain = Spy()
    translate_document(doc, plain, SubtitleConfig())
    assert "<sep>" not in " ".join(plain.inputs)


def test_bilingual_keeps_source_under_translation() -> None:
    doc = load_subtitles(FIXTURES / "episode.srt")
    texts, _ = translate_document(doc, Spy(), SubtitleConfig(bilingual=True))
    assert texts[1] == ["- «Who are you?»", "- «I am the servant of the king.»", "- Who are you?",
                        "- I am the servant of the king."]


@pytest.mark.parametrize(("src", "dst"), [("episode.srt", "vtt"), ("episode.vtt", "srt"), ("episode.srt", "ass"),
                                          ("episode.ass", "srt")])
def test_convert_between_formats_keeps_timing(src: str, dst: str, tmp_path: Path) -> None:
    doc = load_subtitles(FIXTURES / src)
    texts, _ = translate_document(doc, Spy(), SubtitleConfig())
    out = _write(tmp_path / f"out.{dst}", render(doc, texts, dst))  # type: ignore[arg-type]
    converted = [e for e in pysubs2.load(str(out)).events if e.type == "Dialogue"]
    # SRT and VTT have no drawings: pysubs2 leaves ASS drawings out of them.
    expected = [(c.start, c.end) for c in doc.cues if c.translatable or dst in ("ass", "ssa")]
    assert [(e.start, e.end) for e in converted] == expected


def test_parse_cue_keeps_partial_tags_out() -> None:
    cue = parse_cue(["<i>Hello</i> there"], "srt")
    assert (cue.prefix, cue.suffix, cue.inner_tags_dropped) == ("", "", 2)
    assert cue.segments[0].text == "Hello there"


def test_a_cue_run_into_the_next_is_split_not_swallowed(tmp_path: Path) -> None:
    path = _write(tmp_path / "run_on.srt", "1\n00:00:01,000 --> 00:00:02,000\nFirst line.\n2\n00:00:03,000 --> "
                  "00:00:04,000\nSecond line.\n\n3\n00:00:05,000 --> 00:00:06,000\nThird.\n")
    doc = load_subtitles(path)
    assert [(c.start, c.lines) for c in doc.cues] == [(1000, ["First line."]), (3000, ["Second line."]),
                                                      (5000, ["Third."])]
    texts, _ = translate_document(doc, Spy(), SubtitleConfig())
    out = render(doc, texts)
    assert out.count("-->") == 3 and "00:00:03,000 --> 00:00:04,000" in out
    vtt = _write(tmp_path / "run_on.vtt", "WEBVTT\n\n00:01.000 --> 00:02.000\nOne.\n00:03.000 --> 00:04.000\nTwo.\n")
    assert [c.start for c in load_subtitles(vtt).cues] == [1000, 3000]


def test_a_timing_line_that_starts_no_cue_is_refused(tmp_path: Path) -> None:
    # Inside a cue's text, after a blank line that makes it a block without a number or
    # timing line of its own: the count of timing lines and cues must agree.
    path = _write(tmp_path / "odd.srt", "1\n00:00:01,000 --> 00:00:02,000\nA\n\nx\ny\n00:00:03,000 --> 00:00:04,000\nB\n")
    with pytest.raises(InputDataError, match=r"odd\.srt:\d+: "):
        load_subtitles(path)


BOUNDS = {  # (format, the largest time it holds, a time it cannot hold exactly)
    "srt": (99 * 3600_000 + 59 * 60_000 + 59_999, None),
    "vtt": (99 * 3600_000 + 59 * 60_000 + 59_999, None),
    "ass": (9 * 3600_000 + 59 * 60_000 + 59_990, 1_001),
}


@pytest.mark.parametrize("src", ["srt", "vtt"])
@pytest.mark.parametrize("dst", ["srt", "vtt", "ass"])
@pytest.mark.parametrize("ms", [0, 1, 10, 999, 59_999, 3599_999, 9 * 3600_000 + 59 * 60_000 + 59_990,
                                10 * 3600_000, 99 * 3600_000 + 59 * 60_000 + 59_999])
def test_a_conversion_keeps_every_time_or_refuses(src: str, dst: str, ms: int, tmp_path: Path) -> None:
    def stamp(t: int, sep: str) -> str:
        return f"{t // 3600000:02d}:{t // 60000 % 60:02d}:{t // 1000 % 60:02d}{sep}{t % 1000:03d}"

    sep = "," if src == "srt" else "."
    head = "" if src == "srt" else "WEBVTT\n\n"
    path = _write(tmp_path / f"in.{src}", f"{head}1\n{stamp(ms, sep)} --> {stamp(ms, sep)}\nText.\n")
    doc = load_subtitles(path)
    holdable = ms <= BOUNDS[dst][0] and (dst != "ass" or ms % 10 == 0)
    if not holdable:
        with pytest.raises(InputDataError, match=rf"cue 1 runs .* which {dst.upper()} cannot hold exactly"):
            render(doc, [c.lines for c in doc.cues], dst)  # type: ignore[arg-type]
        return
    out = _write(tmp_path / f"out.{dst}", render(doc, [c.lines for c in doc.cues], dst))  # type: ignore[arg-type]
    assert [(c.start, c.end) for c in load_subtitles(out).cues] == [(ms, ms)]


def test_the_writer_keeps_line_ends_trailing_blank_lines_and_the_bom(tmp_path: Path) -> None:
    for text, newline in (("1\r00:00:01,000 --> 00:00:02,000\rA.\r\r\r", "\r"),
                          ("1\r\n00:00:01,000 --> 00:00:02,000\r\nA.\r\n\r\n", "\r\n"),
                          ("1\n00:00:01,000 --> 00:00:02,000\nA.\n\n\n\n", "\n")):
        path = tmp_path / "f.srt"
        path.write_bytes(text.encode("utf-8"))
        doc = load_subtitles(path)
        assert doc.newline == newline and render(doc, [["A."]]) == text
    bom = tmp_path / "bom.srt"
    bom.write_bytes(b"\xef\xbb\xbf1\n00:00:01,000 --> 00:00:02,000\nA.\n")
    assert output_encoding(load_subtitles(bom)) == "utf-8-sig"
    assert output_encoding(load_subtitles(FIXTURES / "cp1252.srt")) == "utf-8"


@pytest.mark.parametrize("dst", ["srt", "vtt"])
def test_ass_times_at_their_bounds_convert_exactly(dst: str, tmp_path: Path) -> None:
    ass = (FIXTURES / "episode.ass").read_text(encoding="utf-8")
    head, events = ass.split("[Events]", 1)
    form = next(line for line in events.splitlines() if line.startswith("Format:"))
    body = "\n".join([form, "Dialogue: 0,0:00:00.00,0:00:00.01,Default,,0,0,0,,First.",
                      "Dialogue: 0,9:59:59.98,9:59:59.99,Default,,0,0,0,,Last."])
    path = _write(tmp_path / "bounds.ass", f"{head}[Events]\n{body}\n")
    doc = load_subtitles(path)
    assert [(c.start, c.end) for c in doc.cues] == [(0, 10), (35_999_980, 35_999_990)]
    out = _write(tmp_path / f"out.{dst}", render(doc, [c.lines for c in doc.cues], dst))  # type: ignore[arg-type]
    assert [(c.start, c.end) for c in load_subtitles(out).cues] == [(0, 10), (35_999_980, 35_999_990)]


def test_each_speaker_keeps_the_voice_tag_of_its_own_line(tmp_path: Path) -> None:
    path = tmp_path / "voices.vtt"
    path.write_text("WEBVTT\n\n1\n00:00:01.000 --> 00:00:03.000\n<v Moses>- Who are you, Lord?</v>\n"
                    "<v Aaron>- I am thy brother &amp; friend.</v>\n", encoding="utf-8")
    doc = load_subtitles(path)
    spanish = {"Who are you, Lord?": "¿Quién eres, Señor?", "I am thy brother & friend.": "Soy tu hermano y amigo."}
    texts, report = translate_document(doc, lambda lines: [spanish[line] for line in lines], SubtitleConfig())
    assert texts[0] == ["<v Moses>- ¿Quién eres, Señor?</v>", "<v Aaron>- Soy tu hermano y amigo.</v>"]
    assert report["counts"]["inner_tags_dropped"] == 0
    parsed = parse_cue(["<i>- Who?</i>", "<b>- Me.</b>"], "srt")  # different tags per line: each kept
    assert parsed.line_marks == [("<i>", "</i>"), ("<b>", "</b>")] and parsed.own_lines
    assert parse_cue(["<v Moses>Who are you,</v>", "<v Moses>Lord?</v>"], "vtt").line_marks == []  # one speaker


VTT_MARKUP = ("WEBVTT\n\nintro\n00:00:01.000 --> 00:00:03.000 line:10%\n<v Moses>Tom &amp; <i>Jerry</i> &lt;3 "
              "<00:00:02.000><c.loud>now</c></v>\n\nscene-2\n00:00:04.000 --> 00:00:06.000\nAnd there was light.\n")


@pytest.mark.parametrize("dst", ["srt", "ass"])
def test_a_vtt_conversion_writes_text_not_vtt_syntax(dst: str, tmp_path: Path) -> None:
    # The next cue's identifier is not the previous cue's last line; character references
    # are decoded; karaoke timestamps, classes and voices leave no trace in the text.
    doc = load_subtitles(_write(tmp_path / "in.vtt", VTT_MARKUP))
    out = _write(tmp_path / f"out.{dst}", render(doc, [c.lines for c in doc.cues], dst))  # type: ignore[arg-type]
    events = [e for e in pysubs2.load(str(out)).events if e.type == "Dialogue"]
    assert [e.plaintext for e in events] == ["Tom & Jerry <3 now", "And there was light."]
    assert "scene-2" not in out.read_text(encoding="utf-8") and "&amp;" not in out.read_text(encoding="utf-8")
    assert events[0].text == "Tom & {\\i1}Jerry{\\i0} <3 now"  # italic kept (SRT's <i> as pysubs2 reads it)
    if dst == "ass":
        assert events[0].name == "Moses"  # the voice becomes the event's actor


def test_into_vtt_the_text_is_escaped_and_cues_out_of_order_are_sorted(tmp_path: Path) -> None:
    # VTT needs its cues in time order and its & < > escaped; every time is still kept.
    path = _write(tmp_path / "ooo.srt", "1\n00:00:05,000 --> 00:00:06,000\nLate <3\n\n2\n00:00:01,000 --> "
                  "00:00:02,000\nEarly & <i>soon</i>\n")
    doc = load_subtitles(path)
    out = render(doc, [c.lines for c in doc.cues], "vtt")
    assert out.index("Early &amp; <i>soon</i>") < out.index("Late &lt;3")
    back = load_subtitles(_write(tmp_path / "out.vtt", out))
    assert sorted(_timings(back)) == sorted(_timings(doc))


def test_overlaps_are_found_whatever_the_order_of_the_cues(tmp_path: Path) -> None:
    from stages.subtitles.formats import overlapping_cues
    path = _write(tmp_path / "ooo.srt", "1\n00:00:05,000 --> 00:00:07,000\nA.\n\n2\n00:00:01,000 --> "
                  "00:00:02,000\nB.\n\n3\n00:00:06,000 --> 00:00:08,000\nC.\n")
    assert overlapping_cues(load_subtitles(path)) == [3]  # cue 3 starts while cue 1 is shown; cue 2 overlaps nothing


def _srt(*cues: str) -> str:
    return "\n".join(f"{i}\n00:00:{2 * i - 1:02d},000 --> 00:00:{2 * i + 1:02d},000\n{text}\n"
                     for i, text in enumerate(cues, start=1))


@pytest.mark.parametrize(("first", "second"), [
    ("{\\an8}JERUSALEM", "And God said, Let there be light."),  # a sign at the top, then speech
    ("And God said--", "Get out!"),  # cut off by the next speaker
    ("And God said\u2014", "Get out!"),
    ("<i>And God said</i>", "let there be light."),  # a voice off screen, then one on it
])
def test_cues_of_two_voices_or_a_sign_are_not_one_sentence(first: str, second: str, tmp_path: Path) -> None:
    spy = Spy()
    translate_document(load_subtitles(_write(tmp_path / "in.srt", _srt(first, second))), spy, SubtitleConfig())
    assert len(spy.inputs) == 2


def test_cues_placed_apart_are_not_one_sentence(tmp_path: Path) -> None:
    vtt = ("WEBVTT\n\n00:01.000 --> 00:03.000 line:10%\nTHE TEMPLE OF\n\n00:03.000 --> 00:05.000\n"
           "And God said, Let there be light.\n")
    spy = Spy()
    translate_document(load_subtitles(_write(tmp_path / "in.vtt", vtt)), spy, SubtitleConfig())
    assert spy.inputs == ["THE TEMPLE OF", "And God said, Let there be light."]
    ass = pysubs2.SSAFile()
    ass.styles["Sign"] = pysubs2.SSAStyle()
    ass.append(pysubs2.SSAEvent(start=1000, end=3000, text="The temple of", style="Sign"))
    ass.append(pysubs2.SSAEvent(start=3000, end=5000, text="And God said, Let there be light."))
    ass.append(pysubs2.SSAEvent(start=5000, end=6000, text="And he said", name="Moses"))
    ass.append(pysubs2.SSAEvent(start=6000, end=7000, text="nothing.", name="Aaron"))
    spy = Spy()
    translate_document(load_subtitles(_write(tmp_path / "in.ass", ass.to_string("ass"))), spy, SubtitleConfig())
    assert spy.inputs == ["The temple of", "And God said, Let there be light.", "And he said", "nothing."]


def test_a_dash_on_the_second_speaker_alone_is_a_dialogue_cue(tmp_path: Path) -> None:
    spy = Spy()
    texts, _ = translate_document(load_subtitles(_write(tmp_path / "in.srt", _srt("Who are you?\n- I am the Lord."))),
                                  spy, SubtitleConfig())
    assert spy.inputs == ["Who are you?", "I am the Lord."]
    assert texts == [["«Who are you?»", "- «I am the Lord.»"]]


def test_a_lyric_keeps_the_notes_it_has_and_hash_lyrics_are_lyrics(tmp_path: Path) -> None:
    spy = Spy()
    doc = load_subtitles(_write(tmp_path / "in.srt", _srt("\u266a Happy birthday to you", "# Happy birthday #")))
    texts, _ = translate_document(doc, spy, SubtitleConfig())
    assert spy.inputs == ["Happy birthday to you", "Happy birthday"]
    assert texts == [["\u266a «Happy birthday to you»"], ["# «Happy birthday» #"]]  # no closing note made up


@pytest.mark.parametrize("encoding", ["utf-8", "UTF8", "utf_8"])
def test_encoding_utf8_reads_a_file_with_a_bom_and_keeps_it(encoding: str, tmp_path: Path) -> None:
    path = tmp_path / "bom.vtt"
    path.write_bytes(b"\xef\xbb\xbfWEBVTT\n\n00:01.000 --> 00:02.000\nHello.\n")
    doc = load_subtitles(path, encoding=encoding)
    assert doc.cues[0].lines == ["Hello."] and output_encoding(doc) == "utf-8-sig"


def test_a_conversion_that_would_add_a_cue_is_refused_and_no_newline_is_added(tmp_path: Path) -> None:
    ass = pysubs2.SSAFile()
    ass.append(pysubs2.SSAEvent(start=1000, end=2000, text="A\\N00:00:05,000 --> 00:00:06,000"))
    doc = load_subtitles(_write(tmp_path / "in.ass", ass.to_string("ass")))
    with pytest.raises(InputDataError, match=r"would read as a cue of its own \(00:00:05.000"):
        render(doc, [c.lines for c in doc.cues], "srt")
    vtt = _write(tmp_path / "in.vtt", "WEBVTT\n\n00:01.000 --> 00:02.000\nA\n00:00:05,000 --> 00:00:06,000\n")
    with pytest.raises(InputDataError, match=r"in\.vtt:5: '00:00:05,000 --> 00:00:06,000' looks like a timing line"):
        load_subtitles(vtt)  # a comma is no VTT time: as text, it would join the cue above
    srt = _write(tmp_path / "in.srt", "1\n00:00:01,000 --> 00:00:02,000\nA")  # no line end after the last line
    assert render(load_subtitles(srt), [["B"]]) == "1\n00:00:01,000 --> 00:00:02,000\nB"


@pytest.mark.parametrize("arrow", ["->", "=>", "--", " "])
def test_a_timing_line_without_its_arrow_is_named(arrow: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "in.srt", f"1\n00:00:01,000 --> 00:00:02,000\nA\n\n2\n00:00:03,000 {arrow} 00:00:04,000\nB\n")
    with pytest.raises(InputDataError, match=r"in\.srt:6: timing line .* has no ' --> '"):
        load_subtitles(path)
    first = _write(tmp_path / "first.srt", f"1\n00:00:01,000 {arrow} 00:00:02,000\nA\n")
    with pytest.raises(InputDataError, match=r"first\.srt:2: timing line"):
        load_subtitles(first)


def test_a_dash_before_a_small_letter_runs_on_into_the_next_cue(tmp_path: Path) -> None:
    spy = Spy()
    doc = load_subtitles(_write(tmp_path / "in.srt", _srt("that we should love one another\u2014", "unlike Cain.")))
    translate_document(doc, spy, SubtitleConfig())
    assert spy.inputs == ["that we should love one another\u2014 unlike Cain."]


@pytest.mark.parametrize("timing", ["00:00:03,000 -> 00:00:04,000", "00:00:03,000 --> 00;00:04,000",
                                    "00:00:03,000 -- > 00:00:04,000",
                                    "00:00:03.000 => 00:00:04.000"])
def test_a_mistyped_timing_line_under_a_cue_is_refused_not_swallowed(timing: str, tmp_path: Path) -> None:
    path = _write(tmp_path / "in.srt", f"1\n00:00:01,000 --> 00:00:02,000\nHello there.\n2\n{timing}\nIn the "
                  f"beginning.\n\n3\n00:00:05,000 --> 00:00:06,000\nC.\n")
    with pytest.raises(InputDataError, match=r"in\.srt:5: .* looks like a timing line but is not one"):
        load_subtitles(path)


@pytest.mark.parametrize(("cue", "model_input", "framed"), [
    ("\u266a In the beginning \u266a\n\u266a God created the earth \u266a", "In the beginning God created the earth",
     ("\u266a ", " \u266a")),
    ("God created the earth \u266a", "God created the earth", ("", " \u266a")),  # a song's last line
    ("\u266a In the beginning\nGod created the earth", "In the beginning God created the earth", ("\u266a ", "")),
    ("# In the beginning #\n# God created #", "In the beginning God created", ("# ", " #")),
])
def test_a_song_over_several_lines_is_one_lyric_without_its_notes(cue: str, model_input: str,
                                                                  framed: tuple[str, str], tmp_path: Path) -> None:
    spy = Spy()
    texts, _ = translate_document(load_subtitles(_write(tmp_path / "in.srt", _srt(cue))), spy, SubtitleConfig())
    assert spy.inputs == [model_input]
    text = " ".join(texts[0])
    assert text.startswith(framed[0] + "«") and text.endswith("»" + framed[1]) and text.count("\u266a") == cue.count(
        "\u266a") - (2 if cue.count("\u266a") == 4 else 0)


def test_a_cue_of_one_dashed_line_is_a_new_speaker(tmp_path: Path) -> None:
    spy = Spy()
    doc = load_subtitles(_write(tmp_path / "in.srt", _srt("I think that the man", "- Who are you?")))
    texts, _ = translate_document(doc, spy, SubtitleConfig())
    assert spy.inputs == ["I think that the man", "Who are you?"]  # not one sentence, the dash kept out
    assert texts[1] == ["- «Who are you?»"]


def test_two_signs_placed_alike_are_not_one_sentence(tmp_path: Path) -> None:
    spy = Spy()
    translate_document(load_subtitles(_write(tmp_path / "in.srt", _srt("{\\an8}HOTEL", "{\\an8}CALIFORNIA"))), spy,
                       SubtitleConfig())
    assert spy.inputs == ["HOTEL", "CALIFORNIA"]


def test_ass_into_vtt_escapes_the_text_and_dialogue_labels_are_kept(tmp_path: Path) -> None:
    ass = pysubs2.SSAFile()
    ass.append(pysubs2.SSAEvent(start=1000, end=2000, text="Tom&Jerry <3 {\\i1}now{\\i0}"))
    doc = load_subtitles(_write(tmp_path / "in.ass", ass.to_string("ass")))
    out = render(doc, [c.lines for c in doc.cues], "vtt")
    assert "Tom&amp;Jerry &lt;3 <i>now</i>" in out
    spy = Spy()
    texts, _ = translate_document(load_subtitles(_write(tmp_path / "d.srt", _srt("- MOSES: Who?\n- AARON: Me."))), spy,
                                  SubtitleConfig())
    assert spy.inputs == ["Who?", "Me."] and texts == [["- MOSES: «Who?»", "- AARON: «Me.»"]]


def test_a_speakers_own_tags_are_kept_when_the_other_line_has_none(tmp_path: Path) -> None:
    texts, _ = translate_document(load_subtitles(_write(tmp_path / "in.srt", _srt("<i>Who?</i>\n- Me."))), Spy(),
                                  SubtitleConfig())
    assert texts == [["<i>«Who?»</i>", "- «Me.»"]]


@pytest.mark.parametrize(("src", "dst"), [("srt", "vtt"), ("vtt", "srt")])
def test_bold_and_the_other_styles_survive_a_conversion_between_srt_and_vtt(src: str, dst: str, tmp_path: Path) -> None:
    head, sep = ("WEBVTT\n\n", ".") if src == "vtt" else ("", ",")
    path = _write(tmp_path / f"in.{src}", f"{head}1\n00:00:01{sep}000 --> 00:00:02{sep}000\n<b>Loud</b> <i>soft</i> "
                  f"<u>under</u>\nsecond line\n")
    out = render(load_subtitles(path), [c.lines for c in load_subtitles(path).cues], dst)  # type: ignore[arg-type]
    assert "<b>Loud</b> <i>soft</i> <u>under</u>\nsecond line" in out
