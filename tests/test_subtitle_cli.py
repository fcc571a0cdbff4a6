"""`s2s subtitle` and subtitle scoring end to end on a tiny context model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import main
from stages.subtitles.formats import load_subtitles
from tests.conftest import tiny_config_text

FIXTURES = Path(__file__).parent / "fixtures" / "subtitles"


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


def test_subtitle_command_end_to_end(tiny_corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "context.yaml"
    text = tiny_config_text(tiny_corpus, tmp_path / "runs").replace("data:\n", "data:\n  context: 1\n")
    config.write_text(text, encoding="utf-8")
    code, out = invoke("run", str(config), "--until", "train")
    assert code == 0, out
    prepared = (tmp_path / "runs" / "tiny" / "prepare" / "test.src").read_text(encoding="utf-8").splitlines()
    assert prepared[0].startswith("<sep> ") and " <sep> " in prepared[1]
    run = str(tmp_path / "runs" / "tiny")

    out_srt = tmp_path / "out" / "episode.es.srt"
    code, out = invoke("subtitle", str(FIXTURES / "episode.srt"), "--run", run, "-o", str(out_srt))
    assert code == 0, out
    assert "cues in 10, out 10" in out and "context 1" in out
    source, translated = load_subtitles(FIXTURES / "episode.srt"), load_subtitles(out_srt)
    assert [(c.start, c.end) for c in translated.cues] == [(c.start, c.end) for c in source.cues]
    report = json.loads(Path(f"{out_srt}.report.json").read_text(encoding="utf-8"))
    assert report["counts"]["cues_out"] == 10 and report["context"] == 1
    assert report["cues"]["passed_through"] == [9]

    # Converting on the way out, and the bilingual mode.
    out_vtt = tmp_path / "out" / "episode.es.vtt"
    code, out = invoke("subtitle", str(FIXTURES / "episode.srt"), "--run", run, "-o", str(out_vtt),
                       "--bilingual", "--context", "0", "--set", "decoding.beam_size=1")
    assert code == 0, out
    assert out_vtt.read_text(encoding="utf-8").startswith("WEBVTT")
    assert "- Who are you?" in out_vtt.read_text(encoding="utf-8")

    # Plain files through a context model: each line goes in behind the line before it.
    lines = tmp_path / "lines.en"
    lines.write_text("In the beginning.\n\nAnd God said.\n", encoding="utf-8")
    for extra in ((), ("--context", "0")):
        code, out = invoke("translate", "--run", run, "-i", str(lines), "-o", str(tmp_path / "lines.es"),
                           "--alignments", str(tmp_path / "align.jsonl"), *extra)
        assert code == 0, out
        rows = [json.loads(r) for r in (tmp_path / "align.jsonl").read_text(encoding="utf-8").splitlines()]
        assert rows[1]["source_pieces"] == []
        seen = "".join(rows[2]["source_pieces"]).replace("\u2581", " ").strip()
        assert seen == ("<sep> And God said." if extra else "In the beginning. <sep> And God said.")

    # Scoring subtitle files cue by cue, after their timings are checked.
    code, out = invoke("score", str(out_srt), str(FIXTURES / "episode.srt"))
    assert code == 0, out
    assert json.loads(out)["cues"] == 10
    shifted = tmp_path / "shifted.srt"
    shifted.write_text((FIXTURES / "episode.srt").read_text(encoding="utf-8").replace("00:00:14,000 -->", "00:00:14,200 -->"))
    code, out = invoke("score", str(out_srt), str(shifted))
    assert code == 1 and "cue 7 runs 00:00:14.000 --> 00:00:16.000" in out and "timings must match" in out


def test_subtitle_errors_leave_nothing_behind(tiny_corpus: Path, tmp_path: Path) -> None:
    config = tmp_path / "plain.yaml"
    config.write_text(tiny_config_text(tiny_corpus, tmp_path / "runs"), encoding="utf-8")
    assert invoke("run", str(config), "--until", "train")[0] == 0
    run = str(tmp_path / "runs" / "tiny")
    out_srt = tmp_path / "out.srt"
    out_srt.write_text("precious\n", encoding="utf-8")
    code, out = invoke("subtitle", str(FIXTURES / "broken_time.srt"), "--run", run, "-o", str(out_srt))
    assert code == 1 and "broken_time.srt:2: broken timestamp" in out
    assert out_srt.read_text(encoding="utf-8") == "precious\n"
    code, out = invoke("subtitle", str(FIXTURES / "episode.srt"), "--run", run, "-o", str(out_srt), "--context", "1")
    assert code == 1 and "--context 1: " in out and "trained without context (data.context: 0)" in out
    # The option is named so in every command that takes it (the API says context=1).
    code, out = invoke("subtitle", str(FIXTURES / "episode.srt"), str(FIXTURES / "episode.vtt"), "--run", run,
                       "-o", str(tmp_path / "season"), "--context", "1")
    assert code == 1 and "--context 1: " in out and not (tmp_path / "season").exists()
    code, out = invoke("translate", "--run", run, "-i", str(FIXTURES / "episode.srt"), "-o", str(out_srt),
                       "--context", "1")
    assert code == 1 and "--context 1: " in out and "trained without context" in out
    assert out_srt.read_text(encoding="utf-8") == "precious\n"
    code, out = invoke("subtitle", str(FIXTURES / "episode.srt"), "--run", run, "-o", "-")
    assert code == 1 and "-o -: s2s subtitle writes a file" in out and not Path("-").exists()
    code, out = invoke("subtitle", str(FIXTURES / "episode.srt"), "--run", run, "-o", "/dev/stdout")
    assert code == 1 and "-o /dev/stdout: s2s subtitle writes a file and its report beside it" in out, out
    code, out = invoke("subtitle", str(FIXTURES / "episode.srt"), "--run", run, "-o", str(tmp_path / "out.txt"))
    assert code == 1 and "out.txt: the extension '.txt' is not a subtitle format s2s writes" in out and "--to" in out
    assert not (tmp_path / "out.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []
    shutil.rmtree(tmp_path / "runs")


def test_a_folder_and_files_with_one_model_load_and_a_broken_file_skipped(shared_run: Path, tmp_path: Path) -> None:
    season = tmp_path / "season"
    (season / "disc2").mkdir(parents=True)
    shutil.copy(FIXTURES / "episode.srt", season / "e01.srt")
    shutil.copy(FIXTURES / "episode.vtt", season / "disc2" / "e02.vtt")
    shutil.copy(FIXTURES / "broken_time.srt", season / "e03.srt")
    (season / "notes.txt").write_text("not a subtitle\n", encoding="utf-8")
    out = tmp_path / "out"
    code, text = invoke("subtitle", str(season), str(FIXTURES / "credits.srt"), "--run", str(shared_run), "-o", str(out))
    assert code == 1 and "1 of 4 files failed" in text and "e03.srt" in text
    for name, source in (("e01.srt", season / "e01.srt"), ("disc2/e02.vtt", season / "disc2" / "e02.vtt"),
                         ("credits.srt", FIXTURES / "credits.srt")):
        written = load_subtitles(out / name)
        assert [(c.start, c.end) for c in written.cues] == [(c.start, c.end) for c in load_subtitles(source).cues]
        assert json.loads((out / f"{name}.report.json").read_text())["counts"]["cues_out"] == len(written.cues)
    assert not (out / "e03.srt").exists() and not (out / "notes.txt").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["files"] == 4 and len(summary["written"]) == 3 and summary["failed"][0]["input"].endswith("e03.srt")


def test_a_glob_and_a_conversion_into_a_folder(shared_run: Path, tmp_path: Path) -> None:
    code, text = invoke("subtitle", str(FIXTURES / "episode.*"), "--run", str(shared_run), "-o", str(tmp_path / "vtt"),
                        "--to", "vtt")
    assert code == 1 and "would both be written as" in text and not (tmp_path / "vtt").exists()
    code, text = invoke("subtitle", str(FIXTURES / "*.srt"), "--run", str(shared_run), "-o", str(tmp_path / "vtt"),
                        "--to", "vtt", "--set", "decoding.beam_size=1")
    assert code == 1 and "broken_time.srt" in text  # the broken fixture is skipped, the others written
    assert (tmp_path / "vtt" / "episode.vtt").read_text(encoding="utf-8").startswith("WEBVTT")


def test_folder_mode_refuses_what_it_cannot_do(shared_run: Path, tmp_path: Path) -> None:
    code, text = invoke("subtitle", str(tmp_path / "none-*.srt"), "--run", str(shared_run), "-o", str(tmp_path / "o"))
    assert code == 1 and "file matches this pattern" in text
    code, text = invoke("subtitle", str(FIXTURES), "--run", str(shared_run), "-o", str(FIXTURES))
    assert code == 1 and "would replace the input" in text
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    shutil.copy(FIXTURES / "plain.srt", a / "x.srt")
    shutil.copy(FIXTURES / "plain.srt", b / "x.srt")
    code, text = invoke("subtitle", str(a / "x.srt"), str(b / "x.srt"), "--run", str(shared_run), "-o", str(tmp_path / "o"))
    assert code == 1 and "would both be written as x.srt" in text
    code, text = invoke("subtitle", str(a / "x.srt"), str(FIXTURES / "plain.srt"), "--run", str(shared_run), "-o",
                        str(tmp_path / "new"),
                        "--set", "decoding.beam_size=0")
    assert code == 1 and "beam_size" in text and not (tmp_path / "new").exists()  # a bad option makes no folder


def test_an_output_folder_inside_the_input_folder_is_not_read_again(shared_run: Path, tmp_path: Path) -> None:
    season = tmp_path / "season"
    season.mkdir()
    shutil.copy(FIXTURES / "episode.srt", season / "e01.srt")
    for _ in range(2):  # the second run finds the first one's output inside the input folder
        code, text = invoke("subtitle", str(season), "--run", str(shared_run), "-o", str(season / "es"))
        assert code == 0, text
    assert sorted(p.relative_to(season).as_posix() for p in season.rglob("*.srt")) == ["e01.srt", "es/e01.srt"]
    summary = json.loads((season / "es" / "summary.json").read_text(encoding="utf-8"))
    assert summary["files"] == 1


def test_earlier_translations_in_an_input_folder_are_left_out(shared_run: Path, tmp_path: Path) -> None:
    season = tmp_path / "season"
    season.mkdir()
    shutil.copy(FIXTURES / "episode.srt", season / "e01.srt")
    code, text = invoke("subtitle", str(season), "--run", str(shared_run), "-o", str(season / "es"))
    assert code == 0, text
    code, text = invoke("subtitle", str(season), "--run", str(shared_run), "-o", str(season / "fr"))
    assert code == 0 and "left out 1 earlier translation" in text
    assert sorted(p.relative_to(season).as_posix() for p in season.rglob("*.srt")) == ["e01.srt", "es/e01.srt",
                                                                                       "fr/e01.srt"]
    code, text = invoke("subtitle", str(season / "es" / "e01.srt"), "--run", str(shared_run), "-o",
                        str(tmp_path / "again"))  # named, it is translated
    assert code == 0 and (tmp_path / "again" / "e01.srt").exists() and "left out" not in text


def test_a_recursive_glob_leaves_earlier_translations_out_before_it_compares_names(shared_run: Path,
                                                                                   tmp_path: Path) -> None:
    season = tmp_path / "season"
    season.mkdir()
    shutil.copy(FIXTURES / "episode.srt", season / "e01.srt")
    assert invoke("subtitle", str(season), "--run", str(shared_run), "-o", str(season / "es"))[0] == 0
    code, text = invoke("subtitle", str(season / "**" / "*.srt"), "--run", str(shared_run), "-o", str(tmp_path / "g"))
    assert code == 0 and "left out 1 earlier translation" in text and (tmp_path / "g" / "e01.srt").exists()


def test_to_and_an_output_extension_that_disagree_are_refused(shared_run: Path, tmp_path: Path) -> None:
    code, text = invoke("subtitle", str(FIXTURES / "episode.srt"), "--run", str(shared_run), "-o",
                        str(tmp_path / "out.srt"), "--to", "vtt")
    assert code == 1 and "names an SRT file, but --to vtt writes a VTT one" in text
    assert not (tmp_path / "out.srt").exists()


def test_folder_mode_refuses_an_output_it_cannot_make_before_any_work(shared_run: Path, tmp_path: Path) -> None:
    inputs = [str(FIXTURES / "episode.srt"), str(FIXTURES / "episode.vtt")]
    (tmp_path / "file").write_text("x", encoding="utf-8")
    code, text = invoke("subtitle", *inputs, "--run", str(shared_run), "-o", str(tmp_path / "file" / "new"))
    assert code == 1 and "is a file, so no folder can be made there" in text
    code, text = invoke("subtitle", *inputs, "--run", str(shared_run), "-o", str(tmp_path / "both.srt"))
    assert code == 1 and "named like a subtitle file" in text and not (tmp_path / "both.srt").exists()
    code, text = invoke("subtitle", *inputs, "--run", str(shared_run), "-o", str(tmp_path / "o"), "--report",
                        str(tmp_path / "file" / "summary.json"))
    assert code == 1 and "--report" in text and not (tmp_path / "o").exists()  # checked before any work
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        import os
        if os.access(locked, os.W_OK):  # root writes anywhere: nothing to refuse
            return
        code, text = invoke("subtitle", *inputs, "--run", str(shared_run), "-o", str(locked / "new"))
        assert code == 1 and "permission denied" in text
    finally:
        locked.chmod(0o700)


def test_the_summary_sums_every_count_of_the_reports(shared_run: Path, tmp_path: Path) -> None:
    code, text = invoke("subtitle", str(FIXTURES / "episode.srt"), str(FIXTURES / "episode.vtt"), "--run",
                        str(shared_run), "-o", str(tmp_path / "o"))
    assert code == 0, text
    summary = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    reports = [json.loads((tmp_path / "o" / f"{n}.report.json").read_text(encoding="utf-8"))
               for n in ("episode.srt", "episode.vtt")]
    assert set(summary["counts"]) == set(reports[0]["counts"])
    assert all(summary["counts"][k] == sum(r["counts"][k] for r in reports) for k in summary["counts"])


def test_an_output_or_summary_that_would_replace_an_input_or_a_report_is_refused(shared_run: Path, tmp_path: Path) -> None:
    a, out = tmp_path / "a", tmp_path / "out"
    (a / "sub").mkdir(parents=True), (out / "sub").mkdir(parents=True)
    shutil.copy(FIXTURES / "episode.srt", a / "sub" / "x.srt")
    shutil.copy(FIXTURES / "episode.srt", out / "sub" / "x.srt")
    code, text = invoke("subtitle", str(a), str(out / "sub" / "x.srt"), "--run", str(shared_run), "-o", str(out))
    assert code == 1 and "would replace the input" in text  # a/sub/x.srt's output is out/sub/x.srt, an input
    shutil.rmtree(out / "sub")
    shutil.copy(FIXTURES / "episode.srt", a / "y.srt")
    code, text = invoke("subtitle", str(a), "--run", str(shared_run), "-o", str(out),
                        "--report", str(out / "y.srt.report.json"))
    assert code == 1 and "--report" in text and "give the summary another name" in text
    assert not (out / "y.srt").exists() and not (out / "sub").exists()  # refused before any work


def test_an_ensemble_of_a_model_with_itself_subtitles_as_the_model(shared_run: Path, tmp_path: Path) -> None:
    code, text = invoke("subtitle", str(FIXTURES / "episode.srt"), "--run", str(shared_run), "-o", str(tmp_path / "one.srt"))
    assert code == 0, text
    code, text = invoke("subtitle", str(FIXTURES / "episode.srt"), "--run", str(shared_run), "--run", str(shared_run),
                        "-o", str(tmp_path / "two.srt"))
    assert code == 0, text
    assert (tmp_path / "two.srt").read_text(encoding="utf-8") == (tmp_path / "one.srt").read_text(encoding="utf-8")


def test_a_ctrl_c_in_a_folder_job_leaves_complete_files_and_a_summary(shared_run: Path, tmp_path: Path,
                                                                      monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from pipeline.api import Translator
    real = Translator.translate_subtitles
    calls = []

    def second_interrupted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Translator, "translate_subtitles", second_interrupted)
    code, text = invoke("subtitle", str(FIXTURES / "episode.srt"), str(FIXTURES / "episode.vtt"), "--run",
                        str(shared_run), "-o", str(tmp_path / "o"))
    assert code == 1 and "interrupted: 1 of 2 files written" in text
    summary = json.loads((tmp_path / "o" / "summary.json").read_text(encoding="utf-8"))
    assert summary["interrupted"] and len(summary["written"]) == 1 and summary["files"] == 2
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["episode.srt", "episode.srt.report.json",
                                                                  "summary.json"]


def test_a_glob_keeps_sub_folders_and_passes_over_what_is_not_a_subtitle(shared_run: Path, tmp_path: Path) -> None:
    many = tmp_path / "many"
    (many / "sub").mkdir(parents=True)
    shutil.copy(FIXTURES / "episode.srt", many / "a.srt")
    shutil.copy(FIXTURES / "episode.srt", many / "sub" / "a.srt")  # same name, another folder: no clash
    assert invoke("subtitle", str(many), "--run", str(shared_run), "-o", str(many / "es"))[0] == 0
    code, text = invoke("subtitle", str(many / "**"), "--run", str(shared_run), "-o", str(tmp_path / "out"))
    assert code == 0, text  # the earlier run's reports and summary are no inputs
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.srt")) == [
        "a.srt", "sub/a.srt"]
