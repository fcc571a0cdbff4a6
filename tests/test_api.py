"""The Python API (`pipeline.api`): what a user calls from their own code."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.api import ArtifactError, ConfigError, InputDataError, Translator
from pipeline.cli import main
from stages import artifacts
from stages.subtitles.formats import load_subtitles, parse_subtitles

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "subtitles"
LINES = ["In the beginning God created the heavens.", "", "Jesus wept.", "And God said, Let there be light."]


@pytest.fixture(scope="module")
def translator(shared_run: Path) -> Translator:
    return Translator.load(shared_run)


def test_a_batch_and_each_line_alone_give_the_same_translation(translator: Translator) -> None:
    batch = translator.translate(LINES)
    assert batch[1] == "" and len(batch) == len(LINES)
    assert [translator.translate(line) for line in LINES] == batch


def test_nbest_lists_are_ordered_and_start_with_the_translation(translator: Translator) -> None:
    nbest = translator.translate_nbest(LINES, 3)
    assert nbest[1] == []
    for line, hyps in zip(LINES, nbest):
        if not line:
            continue
        assert 1 <= len(hyps) <= 3
        scores = [h.score for h in hyps]
        assert scores == sorted(scores, reverse=True)
        assert hyps[0].text == translator.translate(line)
        assert hyps[0].attention is None


def test_lines_read_from_a_file_object_come_back_without_their_line_ends(translator: Translator,
                                                                          tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_bytes(b"...\n  \xe2\x99\xaa \r\nJesus wept.\n3:16")
    with open(source, encoding="utf-8", newline="") as handle:  # lines keep \n and \r\n
        texts = [hyps[0].text for hyps in translator.translate_stream(handle)]
    assert texts[:2] == ["...", "  \u266a "] and texts[3] == "3:16"
    assert texts[2] == translator.translate("Jesus wept.")
    assert translator.translate(["...\n", "Jesus wept.\n"]) == ["...", translator.translate("Jesus wept.")]


def test_unknown_characters_are_warned_about_once_per_translator(shared_run: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    translator = Translator.load(shared_run)
    for _ in range(3):
        translator.translate(["The price is 5€."])
    translator.translate(["Write to me@home for 5€."])  # one new character: one more warning, naming it alone
    warnings = [r.getMessage() for r in caplog.records if "the tokenizer never saw" in r.getMessage()]
    assert len(warnings) == 2 and "(5€)" in warnings[0] and "(@)" in warnings[1], warnings


def test_nbest_texts_are_distinct_the_best_scoring_of_each_kept(translator: Translator,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Hypotheses that read the same (another split into pieces, or for a 2+2 model
    another translation of the previous line) count once: of each text the best-scoring
    stays, and the search keeps all beam_size finished ones to fill the list."""
    from stages.decode import translation
    from stages.decode.search import Hypothesis

    sp = translator.sp_tgt
    whole = sp.encode("Y lloró.")
    pieces = [sp.piece_to_id(p) for word in "Y lloró.".split() for p in ("\u2581", *word)]  # letter by letter
    assert sp.decode(pieces) == sp.decode(whole) == "Y lloró." and pieces != whole  # one text, two splits
    other = sp.encode("Y oró.")
    asked = []

    def search(model, seqs, cfg, device, n_best, *args, **kwargs):  # type: ignore[no-untyped-def]
        asked.append(n_best)
        return [[Hypothesis(whole, -1.0, -1.0), Hypothesis(pieces, -2.0, -2.0), Hypothesis(other, -3.0, -3.0)]
                for _ in seqs]

    monkeypatch.setattr(translation, "translate_ids_nbest", search)
    [hyps] = translator.translate_nbest(["Jesus wept."], 2)
    assert [(h.text, h.score) for h in hyps] == [("Y lloró.", -1.0), ("Y oró.", -3.0)]
    assert set(asked) == {translator.config.beam_size} == {3}  # spares beyond the 2 asked for
    assert translator.translate_nbest(["Jesus wept."], 1)[0][0].text == "Y lloró." and asked[-1] == 1


def test_alignments_have_a_row_per_target_piece_and_a_column_per_source_piece(translator: Translator) -> None:
    [[best, *_]] = translator.translate_nbest(["Jesus wept."], 2, alignments=True)
    assert best.source_pieces and best.target_pieces and best.attention
    assert len(best.attention) == len(best.target_pieces)
    assert all(len(row) == len(best.source_pieces) for row in best.attention)
    assert all(abs(sum(row) - 1) < 1e-2 for row in best.attention)
    assert set(best.as_dict()) == {"text", "score", "log_prob", "source_pieces", "target_pieces", "attention"}


def test_a_line_without_words_comes_back_as_it_is(translator: Translator) -> None:
    lines = ["...", "In the beginning God created the heavens.", "♪ ♪", "3:16", "—", "?!"]
    out = translator.translate(lines)
    assert [out[0], *out[2:]] == ["...", "♪ ♪", "3:16", "—", "?!"] and out[1] == translator.translate(lines[1])
    [[copied], [searched, *_]] = translator.translate_nbest(["  ...   ...", "Jesus wept."], 3, alignments=True)
    assert (copied.text, copied.score, copied.target_pieces, copied.attention) == ("  ...   ...", 0.0, [], [])
    assert searched.text == translator.translate("Jesus wept.")


def test_a_line_without_words_behind_its_context_comes_back_without_the_context() -> None:
    from stages.corpus.vocab import join_context, with_context
    from stages.decode.translation import _as_given

    assert _as_given(join_context(["And God said"], "  ♪   ♪ ")) == "  ♪   ♪ "
    assert [_as_given(line) for line in with_context(["Jesus wept.", " ... "], 1)] == ["Jesus wept.", " ... "]


def test_calls_from_several_threads_give_the_serial_results(translator: Translator) -> None:
    expected = translator.translate(LINES)
    results: list[list[str]] = []

    def work() -> None:
        results.append(translator.translate(LINES))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [expected] * 4


def test_the_cli_and_the_api_write_the_same_translation(shared_run: Path, translator: Translator,
                                                         tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    result = CliRunner().invoke(main, ["translate", str(src), "--run", str(shared_run), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text(encoding="utf-8").split("\n")[:-1] == translator.translate(LINES)


def test_options_override_the_runs_decoding_section(shared_run: Path) -> None:
    greedy = Translator.load(shared_run, beam_size=1, checkpoint="last")
    assert greedy.config.beam_size == 1 and greedy.config.checkpoint == "last"
    assert [len(h) for h in greedy.translate_nbest(["Jesus wept."], 4)] == [1]
    as_set = Translator.load(shared_run, overrides=["decoding.beam_size=2"])
    assert as_set.config.beam_size == 2


def test_a_checkpoint_folder_loads_on_its_own(shared_run: Path, translator: Translator) -> None:
    folder = Translator.load(shared_run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST)
    assert folder.translate(LINES) == translator.translate(LINES)


@pytest.mark.parametrize("options, message", [
    ({"beam_sise": 3}, "did you mean 'beam_size'"),
    ({"beam_size": 0}, "decoding.beam_size=0: must be at least 1"),
    ({"quantize": "int4"}, "decoding.quantize"),
    ({"context": 1}, "trained without context"),
    ({"context": -1}, "context=-1"),
])
def test_bad_options_are_config_errors_naming_the_option(shared_run: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        Translator.load(shared_run, **options)


def test_a_missing_run_is_an_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="no trained run there"):
        Translator.load(tmp_path / "nowhere")


def test_wrong_types_and_broken_text_are_clear_errors(shared_run: Path, translator: Translator) -> None:
    with pytest.raises(TypeError, match="line 2 is int, not str"):
        translator.translate(["fine", 2])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="expected a list of str lines, not NoneType"):
        translator.translate(None)  # type: ignore[arg-type]
    with pytest.raises(InputDataError, match="line 1: character 2 is a lone surrogate"):
        translator.translate(["a\ud800"])
    with pytest.raises(TypeError, match="run: expected"):
        Translator.load(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="overrides takes a list"):
        Translator.load(shared_run, overrides="decoding.beam_size=2")


def test_unknown_characters_survive_normalised_punctuation(translator: Translator, caplog) -> None:
    """SentencePiece reads text NFKC-normalised: a full-width comma must not hide the
    unknown characters next to it."""
    [out] = translator.translate(["你好，世界"])
    assert "你好" in out and "世界" in out
    assert out == out.strip() and "  " not in out


def test_nbest_needs_a_list(translator: Translator) -> None:
    with pytest.raises(TypeError, match=r"\[line\]"):
        translator.translate_nbest("Jesus wept.", 2)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="n_best=0"):
        translator.translate_nbest(["Jesus wept."], 0)


def test_subtitles_keep_every_cue_and_timing(translator: Translator) -> None:
    path = FIXTURES / "episode.srt"
    result, report = translator.translate_subtitles(path)
    source = load_subtitles(path)
    out = parse_subtitles(result.data, Path("out.srt"))
    assert [(c.start, c.end) for c in out.cues] == [(c.start, c.end) for c in source.cues]
    assert report["counts"]["cues_out"] == len(source.cues) == len(result.cues)
    assert [(r["start"], r["end"]) for r in result.cues] == [(c.start, c.end) for c in source.cues]
    assert result.report is report and result.format == "srt"


NARROW = "".join(f"{i}\n00:00:{2 * i:02d},000 --> 00:00:{2 * i + 1:02d},500\n{text}\n\n" for i, text in enumerate(
    ["And God said.", "Let there be light.", "And there was light.", "The earth was empty.", "Jesus wept.",
     "He went up.", "They gave thanks.", "And he said unto them."], start=1))  # one sentence a cue


@pytest.fixture(scope="module")
def babbler(shared_run: Path) -> Translator:
    """The tiny run with random weights: it writes long strings of pieces (the trained
    tiny model writes next to nothing)."""
    import torch

    babbler = Translator.load(shared_run, overrides=["decoding.max_len_ratio=3", "decoding.replace_unk=false"])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for weight in babbler.model.parameters():
            weight.copy_(torch.randn(weight.shape, generator=generator))
    return babbler


def test_a_character_limit_bounds_each_translation(babbler: Translator) -> None:
    lines = [line for line in LINES if line]
    free = babbler.translate(lines)
    limits = [max(4, len(text) // 3) for text in free]
    bounded = babbler.translate_inputs(list(babbler.prepare_inputs(lines)), max_chars=limits)
    assert all(len(hyps[0].text) <= limit for hyps, limit in zip(bounded, limits))
    assert all(len(text) > limit for text, limit in zip(free, limits))


def test_narrow_boxes_are_met_by_shortening_with_the_model(babbler: Translator) -> None:
    limits = {"max_chars": 22, "max_lines": 1}
    loose, loose_report = babbler.translate_subtitles(NARROW.encode(), name="n.srt", fit_shorten=False, **limits)
    result, report = babbler.translate_subtitles(NARROW.encode(), name="n.srt", **limits)
    assert loose_report["counts"]["no_fit"] > 0, loose.cues
    assert report["cues"]["shortened"] and report["counts"]["no_fit"] == 0, report["cues"]
    assert all(len(r["translation"]) == 1 and len(r["translation"][0]) <= 22 for r in result.cues)
    kept = set(range(1, 9)) - set(loose_report["cues"]["no_fit"])
    assert all(result.cues[n - 1]["translation"] == loose.cues[n - 1]["translation"] for n in kept)


def test_a_sentence_over_cues_too_short_to_share_is_shortened_cue_by_cue(babbler: Translator) -> None:
    """The babbler's shorter translation of the four cues' sentence has fewer words than
    cues: each cue is searched again on its own, as the first pass does."""
    spread = "".join(f"{i}\n00:00:{2 * i:02d},000 --> 00:00:{2 * i + 1:02d},500\n{text}\n\n" for i, text in enumerate(
        ["And God said", "Let there be light", "and there was light", "The earth was empty", "Jesus wept",
         "He went up", "They gave thanks", "And he said unto them"], start=1))  # sentences over cues
    result, report = babbler.translate_subtitles(spread.encode(), name="n.srt", max_chars=22, max_lines=1)
    assert report["counts"]["no_fit"] == 0, report["cues"]
    assert set(report["cues"]["shortened"]) >= {1, 2, 3, 4}
    assert all(len(r["translation"]) == 1 and len(r["translation"][0]) <= 22 for r in result.cues)


def test_subtitle_bytes_give_what_the_file_gives(translator: Translator) -> None:
    path = FIXTURES / "episode.vtt"
    from_file, _ = translator.translate_subtitles(path, to="srt", max_chars=30)
    from_bytes, _ = translator.translate_subtitles(path.read_bytes(), name="upload.vtt", to="srt", max_chars=30)
    assert from_bytes.text == from_file.text and from_bytes.format == "srt"
    from_text, _ = translator.translate_subtitles(path.read_text(encoding="utf-8"), format="vtt", to="srt",
                                                  max_chars=30)
    assert from_text.text == from_file.text


def test_bad_subtitle_input_and_limits_are_clear_errors(translator: Translator) -> None:
    with pytest.raises(InputDataError, match="upload.srt"):
        translator.translate_subtitles(b"not a subtitle file\n", name="upload.srt")
    with pytest.raises(InputDataError, match="not a subtitle format"):
        translator.translate_subtitles(b"1\n", name="notes.txt")
    with pytest.raises(ConfigError, match="subtitles.max_chars=5"):
        translator.translate_subtitles(FIXTURES / "episode.srt", max_chars=5)
    with pytest.raises(ConfigError, match="max_char: not a subtitle limit"):
        translator.translate_subtitles(FIXTURES / "episode.srt", max_char=30)
    for key, value, want in (("max_chars", "42", "a whole number"), ("max_chars", 42.5, "a whole number"),
                             ("fit_shorten", "no", "True or False"), ("fit_shorten", 0, "True or False"),
                             ("max_cps", float("nan"), "a finite number"), ("max_lines", True, "a whole number")):
        with pytest.raises(ConfigError, match=f"{key}={re.escape(repr(value))}: must be {want}"):
            translator.translate_subtitles(FIXTURES / "episode.srt", **{key: value})


def test_a_context_model_takes_at_most_the_previous_lines_it_was_trained_with() -> None:
    from pipeline.api import context_size

    assert [context_size(Path("r"), 2, asked) for asked in (None, 0, 1, 2)] == [(2, True), (0, True), (1, True),
                                                                                (2, True)]
    with pytest.raises(ConfigError, match=r"context=3: r was trained with data.context: 2 .* give 0 to 2"):
        context_size(Path("r"), 2, 3)
    with pytest.raises(ConfigError, match="trained without context"):
        context_size(Path("r"), 0, 1)


def test_a_context_that_is_not_a_whole_number_and_a_source_of_no_kind_are_clear_errors(shared_run: Path) -> None:
    for context in ("1", 1.5, True, -1):
        with pytest.raises(ConfigError, match=f"context={re.escape(repr(context))}"):
            Translator.load(shared_run, context=context)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="not NoneType"):
        Translator.load(shared_run).translate_subtitles(None)  # type: ignore[arg-type]


@pytest.mark.parametrize("limits", [[10, 10], [10, 10, 10, 10], [10, -5, 10], [10, 0, 10], [10, 2**70, 10],
                                    [10, None, 10], [10, "7", 10], [10, 1.5, 10], [10, True, 10], 7, None])
def test_bad_character_limits_are_clear_errors(translator: Translator, limits: object) -> None:
    inputs = list(translator.prepare_inputs(["Jesus wept.", "And God said.", "Amen."]))
    if limits is None:
        assert len(translator.translate_inputs(inputs, max_chars=limits)) == 3  # None: no limit
        return
    with pytest.raises(ConfigError, match=r"max_chars"):
        translator.translate_inputs(inputs, max_chars=limits)  # type: ignore[arg-type]


def test_the_docs_example_runs(shared_run: Path) -> None:
    """docs/api.md's first example, run against the tiny run."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    example = re.search(r"```python\n(.*?)```", text, re.S)
    assert example, "docs/api.md has no python example"
    code = example.group(1).replace('"runs/default"', repr(str(shared_run)))
    namespace: dict = {}
    exec(compile(code, "docs/api.md", "exec"), namespace)


def test_subtitle_limits_follow_the_target_language(shared_run: Path) -> None:
    from stages.subtitles.norms import norms_for

    assert norms_for("es") == (42, 17.0) and norms_for("en") == (42, 20.0)
    assert norms_for("zh-Hant") == (16, 9.0) and norms_for("JA") == (13, 4.0)
    translator = Translator.load(shared_run)
    _, report = translator.translate_subtitles(FIXTURES / "episode.srt")
    assert report["limits"] == {"max_chars": 42, "max_lines": 2, "max_cps": 17.0}  # the run translates into Spanish
    translator.languages = ("en", "ko")
    _, report = translator.translate_subtitles(FIXTURES / "episode.srt", max_cps=15)
    assert report["limits"] == {"max_chars": 16, "max_lines": 2, "max_cps": 15}


@pytest.mark.parametrize("n", ["3", None, 2.5, float("nan"), True, 0, -1])
def test_n_best_of_the_wrong_kind_is_named(translator: Translator, n: object) -> None:
    with pytest.raises(ConfigError, match=r"n_best="):
        translator.translate_nbest(["Jesus wept."], n)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"n_best="):
        translator.translate_stream(["Jesus wept."], n_best=n)  # type: ignore[arg-type]  # before iterating
    with pytest.raises(ConfigError, match=r"n_best="):
        translator.translate_inputs(["Jesus wept."], n)  # type: ignore[arg-type]


@pytest.mark.parametrize("lines", [{"Jesus wept.": 1}, {"Jesus wept."}])
def test_lines_without_an_order_are_refused(translator: Translator, lines: object) -> None:
    with pytest.raises(TypeError, match="not a (dict|set)"):
        translator.translate(lines)  # type: ignore[call-overload]


@pytest.mark.parametrize("fixture", ["episode.vtt", "episode.ass", "episode.srt"])
def test_subtitle_bytes_without_a_name_are_read_in_their_own_format(translator: Translator, fixture: str) -> None:
    data = (Path(__file__).parent / "fixtures" / "subtitles" / fixture).read_bytes()
    result, report = translator.translate_subtitles(data)
    assert result.format == fixture.split(".")[1] and report["counts"]["cues_in"] > 0
    if fixture != "episode.srt":  # UTF-16 too, and an ASS file that opens with a comment
        text = data.decode("utf-8")
        result, _ = translator.translate_subtitles(text.encode("utf-16"))
        assert result.format == fixture.split(".")[1]
        if fixture.endswith(".ass"):
            result, _ = translator.translate_subtitles(("; made by hand\n" + text).encode())
            assert result.format == "ass"


def test_a_line_over_the_input_limit_is_translated_in_parts(shared_run: Path, translator: Translator) -> None:
    first, second = "And God said, Let there be light.", "And there was light and it was good."
    limit = max(len(translator.sp_src.encode(first)), len(translator.sp_src.encode(second))) + 2
    assert len(translator.sp_src.encode(f"{first} {second}")) > limit
    limited = Translator.load(shared_run, overrides=[f"decoding.max_input_tokens={limit}"])
    whole = limited.translate_nbest([f"{first} {second}", first], 3)
    assert len(whole[0]) == 1  # one hypothesis: the parts' best translations joined
    parts = [limited.translate(part) for part in (first, second)]  # each behind the line's own (empty) context
    assert whole[0][0].text == " ".join(t for t in parts if t)
    assert [h.text for h in whole[1]] == [h.text for h in limited.translate_nbest([first], 3)[0]]  # untouched
