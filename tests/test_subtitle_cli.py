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
    assert code == 1 and "trained without context (data.context: 0)" in out
    code, out = invoke("subtitle", str(FIXTURES / "episode.srt"), "--run", run, "-o", str(tmp_path / "out.txt"))
    assert code == 1 and "out.txt: the extension '.txt' is not a subtitle format s2s writes" in out and "--to" in out
    assert not (tmp_path / "out.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".out")) == []
    shutil.rmtree(tmp_path / "runs")
