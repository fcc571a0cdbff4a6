"""End to end through the real CLI on a tiny config in tmp_path."""

from __future__ import annotations

import json
import os
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest
import yaml
from click.testing import CliRunner

from pipeline.cli import main
from stages import artifacts
from stages.model import fast
from tests.conftest import tiny_config_text

ROOT = Path(__file__).resolve().parents[1]
STAGES = ("prepare", "tokenize", "train", "translate", "score")


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def run_dir(trained_run: Path) -> Path:
    return trained_run.parent / "runs" / "tiny"


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    """Four lines: a sentence, an empty line, a blank line, a sentence."""
    src = tmp_path / "in.txt"
    src.write_text("In the beginning God created the heavens.\n\n   \nJesus wept.\n", encoding="utf-8")
    return src


FOLLOW = " (the stages after it follow, unless redoing it writes the same files again)"


def copy_of_run(trained_run: Path, tmp_path: Path) -> Path:
    """A copy of the trained run and its config, for tests that change the run."""
    shutil.copytree(trained_run.parent / "runs", tmp_path / "runs")
    config = tmp_path / "tiny.yaml"
    config.write_text(trained_run.read_text(encoding="utf-8").replace(str(trained_run.parent / "runs"),
                                                                       str(tmp_path / "runs")), encoding="utf-8")
    return config


def test_run_writes_every_stage_and_a_complete_manifest(run_dir: Path) -> None:
    manifest = json.loads((run_dir / artifacts.MANIFEST).read_text())
    assert set(manifest["stages"]) == set(STAGES)
    for name in STAGES:
        entry = manifest["stages"][name]
        assert entry["status"] == "done" and entry["outputs"] and len(entry["fingerprint"]) == 64
    assert {"torch", "sentencepiece", "datasets", "sacrebleu"} <= set(manifest["versions"])
    assert (run_dir / "train" / "best" / "model.safetensors").exists()
    assert (run_dir / "train" / "best" / "spm.src.model").exists()
    assert len((run_dir / "translate" / "test.hyp").read_text(encoding="utf-8").splitlines()) == 20
    scores = json.loads((run_dir / "score" / "scores.json").read_text())
    assert "BLEU" in scores["bleu_detail"] and scores["chrf_signature"]
    history = (run_dir / "train" / "history.jsonl").read_text().splitlines()
    assert [json.loads(h)["step"] for h in history] == [10, 20]
    assert {"decoder_rnn", "encoder.layers.0.0", "generator"} <= set(json.loads(history[0])["grad_norms"])


def test_the_manifest_says_which_optimised_paths_ran(run_dir: Path) -> None:
    stages = json.loads((run_dir / artifacts.MANIFEST).read_text())["stages"]
    train, translate = stages["train"]["summary"]["paths"], stages["translate"]["summary"]["paths"]
    for paths in (train, translate):
        assert paths["cpu_kernels"].startswith(("on: built with", "off: "))
        assert set(paths["ran"]) <= fast.NAMES
    assert train["ran"].get("cross_entropy.kernel", 0) + train["ran"].get("cross_entropy.operators", 0) > 0
    assert translate["ran"]["search_step.tables"] > 0 and "search_step.reference" not in translate["ran"]


def test_rerun_skips_every_stage_then_decoding_change_reruns_only_translate_and_score(
    trained_run: Path, tmp_path: Path
) -> None:
    config = copy_of_run(trained_run, tmp_path)
    code, out = invoke("run", str(config))
    assert code == 0 and out.count("up to date, skipped") == 5, out
    code, out = invoke("run", str(config), "--set", "decoding.beam_size=1")
    assert code == 0
    assert [line for line in out.splitlines() if "running" in line] == ["[translate] running", "[score] running"]


def test_status_shows_a_stage_whose_inputs_changed_as_stale(trained_run: Path, tmp_path: Path) -> None:
    config = copy_of_run(trained_run, tmp_path)
    code, out = invoke("translate", str(config), "--set", "decoding.beam_size=1")  # reruns translate, not score
    assert code == 0 and "[translate] done" in out, out
    run_folder = next((tmp_path / "runs").iterdir())  # its latest config holds the --set
    code, out = invoke("status", str(run_folder))
    states = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:7]}
    assert states == {"prepare": "done", "tokenize": "done", "train": "done", "translate": "done", "score": "stale"}
    assert out.splitlines()[7:] == ["score is stale: translate ran again since it ran"], out
    assert invoke("run", str(config), "--set", "decoding.beam_size=1")[0] == 0
    assert "stale" not in invoke("status", str(run_folder))[1]
    hyp = next((tmp_path / "runs").rglob("translate/*.hyp"))
    hyp.write_text("edited by hand\n", encoding="utf-8")  # the next run redoes translate and what follows
    code, out = invoke("status", str(run_folder))
    states = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:7]}
    assert states == {"prepare": "done", "tokenize": "done", "train": "done", "translate": "stale", "score": "stale"}
    hyp_name = hyp.relative_to(run_folder).as_posix()
    assert out.splitlines()[7:] == [f"translate is stale: outputs changed: edited {hyp_name}{FOLLOW}"]


def test_status_of_a_config_tells_what_running_it_would_redo(trained_run: Path, tmp_path: Path) -> None:
    config = copy_of_run(trained_run, tmp_path)
    changed = tmp_path / "changed.yaml"
    changed.write_text(config.read_text(encoding="utf-8").replace("  dropout: 0.0\n", "  dropout: 0.1\n"),
                       encoding="utf-8")
    assert "dropout: 0.1" in changed.read_text(encoding="utf-8")
    code, out = invoke("status", str(changed))  # the same run folder, another model section
    states = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:7]}
    assert code == 0 and states == {"prepare": "done", "tokenize": "done", "train": "stale", "translate": "stale",
                                    "score": "stale"}, out
    assert out.splitlines()[7:] == [f"train is stale: model.dropout: 0.0 -> 0.1{FOLLOW}"], out
    run_folder = next((tmp_path / "runs").iterdir())
    assert "stale" not in invoke("status", str(run_folder))[1]  # the folder: against its own latest config
    # A data key: prepare is stale, as `s2s run` of that config agrees.
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    settings["data"]["max_words"] = 100
    changed.write_text(yaml.safe_dump(settings), encoding="utf-8")
    code, out = invoke("status", str(changed))
    assert code == 0 and out.split("\n")[2].split()[:2] == ["prepare", "stale"], out
    assert out.splitlines()[7:] == [f"prepare is stale: data.max_words: 150 -> 100{FOLLOW}"], out
    code, out = invoke("run", str(changed), "--until", "prepare")
    assert code == 0 and "[prepare] running" in out, out


def test_prepared_data_counts_by_the_input_files_content_not_the_folder_a_run_starts_in(
        tiny_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for where in ("a", "b"):
        shutil.copytree(tiny_corpus, tmp_path / where / "corpus")
    config = tmp_path / "relative.yaml"
    text = tiny_config_text(tiny_corpus, tmp_path / "runs").replace(f"{tiny_corpus}/", "corpus/")
    config.write_text(text, encoding="utf-8")
    monkeypatch.chdir(tmp_path / "a")
    assert invoke("run", str(config), "--until", "prepare")[0] == 0
    monkeypatch.chdir(tmp_path / "b")  # the same files in another place
    code, out = invoke("status", str(config))
    assert code == 0 and out.splitlines()[2].split()[:2] == ["prepare", "done"], out
    (tmp_path / "b" / "corpus" / "test.tsv").write_text("Jesus wept.\tJesús lloró.\n", encoding="utf-8")
    code, out = invoke("status", str(config))
    assert out.splitlines()[2].split()[:2] == ["prepare", "stale"], out
    assert f"prepare is stale: input file changed: corpus/test.tsv{FOLLOW}" in out


def test_plot_and_status(run_dir: Path, tmp_path: Path) -> None:
    code, out = invoke("plot", str(run_dir), "-o", str(tmp_path / "plots"))
    assert code == 0 and {Path(p).name for p in out.split()} == {"loss.png", "lr.png", "dev_bleu.png", "grad_norms.png"}
    assert (tmp_path / "plots" / "grad_norms.png").read_bytes().startswith(b"\x89PNG")
    code, out = invoke("status", str(run_dir))
    assert code == 0 and "score" in out and "done" in out


def test_a_run_is_found_by_folder_by_name_or_by_its_config(trained_run: Path, run_dir: Path) -> None:
    runs = str(run_dir.parent)
    by_folder = invoke("status", str(run_dir))
    assert by_folder[0] == 0
    assert invoke("status", "tiny", "--runs-dir", runs) == by_folder
    assert invoke("status", str(trained_run)) == by_folder  # the config names runs_dir and name
    code, out = invoke("status", "tiny")  # not under ./runs
    assert code == 1 and f"{Path.cwd() / 'runs' / 'tiny' / 'manifest.json'}" in out and "--runs-dir" in out
    elsewhere = trained_run.parent / "elsewhere.yaml"  # a config whose runs_dir is not where the run is
    elsewhere.write_text(trained_run.read_text(encoding="utf-8").replace(runs, "moved"), encoding="utf-8")
    assert invoke("status", str(elsewhere), "--runs-dir", runs) == by_folder  # --runs-dir says where
    code, out = invoke("status", "nope.yaml")
    assert code == 1 and "nope.yaml: no such config file" in out


def test_translate_a_file_keeps_every_line(run_dir: Path, text_file: Path, tmp_path: Path) -> None:
    out_path = tmp_path / "out.txt"
    code, out = invoke("translate", "--run", str(run_dir), "-i", str(text_file), "-o", str(out_path), "--beam-size", "2")
    assert code == 0, out
    lines = out_path.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 5 and lines[1] == "" and lines[2] == "" and lines[4] == ""
    # The input may also be the argument, as for `s2s subtitle FILE --run RUN`; not both.
    code, out = invoke("translate", str(text_file), "--run", str(run_dir), "-o", str(tmp_path / "arg.txt"),
                       "--beam-size", "2")
    assert code == 0 and (tmp_path / "arg.txt").read_text(encoding="utf-8") == out_path.read_text(encoding="utf-8"), out
    code, out = invoke("translate", str(text_file), "--run", str(run_dir), "-i", str(text_file), "-o",
                       str(tmp_path / "twice.txt"))
    assert code == 2 and "the input is given twice" in out and not (tmp_path / "twice.txt").exists()
    code, out = invoke("score", str(out_path), str(text_file))
    assert code == 0 and '"bleu"' in out


def test_output_files_get_the_mode_a_plain_write_would(run_dir: Path, text_file: Path, tmp_path: Path) -> None:
    before = os.umask(0o022)
    try:
        new, old = tmp_path / "new.txt", tmp_path / "old.txt"
        old.write_text("old\n")
        old.chmod(0o664)
        for path in (new, old):
            code, out = invoke("translate", "--run", str(run_dir), "-i", str(text_file), "-o", str(path),
                               "--beam-size", "1")
            assert code == 0, out
        assert stat.S_IMODE(new.stat().st_mode) == 0o644 and stat.S_IMODE(old.stat().st_mode) == 0o664
    finally:
        os.umask(before)


def test_numbers_and_symbols_the_tokenizer_never_saw_survive(run_dir: Path, tmp_path: Path,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    src = tmp_path / "numbers.txt"
    src.write_text("The price is 5€ today.\nCall 555-1234 or see http://example.org now.\n", encoding="utf-8")
    for replace, expect in (("true", True), ("false", False)):
        out = tmp_path / f"out_{replace}.txt"
        code, text = invoke("translate", "--run", str(run_dir), "-i", str(src), "-o", str(out), "--beam-size", "2",
                            "--set", f"decoding.replace_unk={replace}")
        assert code == 0, text
        lines = out.read_text(encoding="utf-8").splitlines()
        kept = "5€" in lines[0] and "555-1234" in lines[1] and "http://example.org" in lines[1]
        assert kept == expect, lines
    assert any("the tokenizer never saw" in r.getMessage() and "numbers.txt" in r.getMessage() for r in caplog.records)


def test_translate_n_best_as_jsonl(run_dir: Path, text_file: Path, tmp_path: Path) -> None:
    nbest_path = tmp_path / "nbest.jsonl"
    code, out = invoke("translate", "--run", str(run_dir), "-i", str(text_file), "-o", str(nbest_path), "--n-best", "2",
                       "--beam-size", "3", "--set", "decoding.precision=bf16")
    assert code == 0, out
    rows = [json.loads(line) for line in nbest_path.read_text(encoding="utf-8").splitlines()]
    assert [r["line"] for r in rows] == [1, 2, 3, 4] and rows[1]["hypotheses"] == []
    assert len(rows[0]["hypotheses"]) == 2 and {"text", "score", "log_prob"} <= set(rows[0]["hypotheses"][0])
    assert rows[0]["hypotheses"][0]["score"] >= rows[0]["hypotheses"][1]["score"]


def test_translate_int8_with_truncation_and_fp16_refused_on_cpu(
    run_dir: Path, text_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    q_path = tmp_path / "int8.txt"
    code, out = invoke("translate", "--run", str(run_dir), "-i", str(text_file), "-o", str(q_path), "--quantize", "int8",
                       "--set", "decoding.max_input_tokens=3")
    assert code == 0, out
    assert len(q_path.read_text(encoding="utf-8").split("\n")) == 5
    assert any("in.txt:1:" in r.getMessage() and "truncated to decoding.max_input_tokens=3" in r.getMessage()
               for r in caplog.records)
    before = q_path.read_bytes()  # fp16 has no CPU kernels for recurrent layers: a clear error, output kept
    code, out = invoke("translate", "--run", str(run_dir), "-i", str(text_file), "-o", str(q_path), "--set",
                       "decoding.precision=fp16", "--set", "decoding.device=cpu")
    assert code != 0 and "decoding.precision=fp16 needs a CUDA device" in out and "bf16" in out
    assert q_path.read_bytes() == before


def test_translate_alignments_and_attention_plots(run_dir: Path, text_file: Path, tmp_path: Path) -> None:
    align_path, plots = tmp_path / "align.jsonl", tmp_path / "plots"
    code, out = invoke("translate", "--run", str(run_dir), "-i", str(text_file), "-o", str(tmp_path / "o.txt"),
                       "--alignments", str(align_path), "--plot-attention", str(plots), "--set", "decoding.min_len=2")
    assert code == 0, out
    rows = [json.loads(line) for line in align_path.read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 4 and rows[1]["attention"] == [] and rows[0]["source_pieces"]
    first = rows[0]
    assert len(first["attention"]) == len(first["target_pieces"]) >= 2
    assert all(len(row) == len(first["source_pieces"]) and abs(sum(row) - 1) < 1e-3 for row in first["attention"])
    assert sorted(p.name for p in plots.iterdir()) == ["line1.png", "line4.png"]
    assert (plots / "line1.png").read_bytes().startswith(b"\x89PNG")
    copied = tmp_path / "copied.txt"
    copied.write_text("Jesus wept.\n...\n", encoding="utf-8")
    code, out = invoke("translate", "--run", str(run_dir), "-i", str(copied), "-o", str(tmp_path / "c.txt"),
                       "--plot-attention", str(tmp_path / "plots2"), "--set", "decoding.min_len=2")
    assert code == 0, out
    assert [p.name for p in (tmp_path / "plots2").iterdir()] == ["line1.png"]  # "..." is copied: nothing to draw


def test_translate_stdin_to_stdout(run_dir: Path) -> None:
    result = CliRunner().invoke(main, ["translate", "--run", str(run_dir), "--beam-size", "1"], input="\nJesus wept.\n")
    assert result.exit_code == 0 and result.output.count("\n") == 2 and result.output.startswith("\n")
    dashes = CliRunner().invoke(main, ["translate", "--run", str(run_dir), "--beam-size", "1", "-i", "-", "-o", "-"],
                                input="\nJesus wept.\n")  # `-`: standard input and output, not files named -
    assert dashes.exit_code == 0 and dashes.output == result.output and not Path("-").exists()
    aligned = CliRunner().invoke(main, ["translate", "--run", str(run_dir), "-o", "-", "--alignments", "-"],
                                 input="Jesus wept.\n")
    assert aligned.exit_code == 1 and "--alignments -: standard output is not available" in aligned.output
    assert not Path("-").exists()
    config = CliRunner().invoke(main, ["config", "tiny", "-o", "-"])
    assert config.exit_code == 0 and config.output.startswith("#") and not Path("-").exists()


def test_stdin_is_read_like_a_file(run_dir: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["translate", "--run", str(run_dir), "--beam-size", "1"],
                                input=b"Jesus wept.\n\xff\xfe binary\n")
    assert result.exit_code == 1 and "<stdin>:2: invalid UTF-8" in result.output
    closed = subprocess.run(f"{sys.executable} -m pipeline.cli translate --run {run_dir} <&-", shell=True,
                            capture_output=True, text=True, cwd=ROOT, executable="/bin/bash")
    assert closed.returncode == 1 and "<stdin>: standard input is closed" in closed.stderr, closed.stderr


def test_translate_streams_in_chunks_and_bad_utf8_leaves_no_output(run_dir: Path, text_file: Path,
                                                                   tmp_path: Path) -> None:
    whole, streamed = tmp_path / "whole.txt", tmp_path / "streamed.txt"
    for path, chunk in ((whole, "10000"), (streamed, "1")):
        code, out = invoke("translate", "--run", str(run_dir), "-i", str(text_file), "-o", str(path), "--beam-size", "2",
                           "--set", f"decoding.stream_lines={chunk}")
        assert code == 0, out
    assert streamed.read_text(encoding="utf-8") == whole.read_text(encoding="utf-8")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"Jesus wept.\nAmen.\ncaf\xe9\n")
    code, out = invoke("translate", "--run", str(run_dir), "-i", str(bad), "-o", str(tmp_path / "never.txt"),
                       "--set", "decoding.stream_lines=1")
    assert code == 1 and "bad.txt:3: invalid UTF-8" in out and not (tmp_path / "never.txt").exists()


def test_average_then_translate_with_the_average(run_dir: Path, text_file: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    avg, other = tmp_path / "avg", tmp_path / "other"
    shutil.copytree(run_dir / "train" / "last", other)  # another step's weights
    weights = load_file(str(other / "model.safetensors"))
    save_file({k: (v * 0.9).contiguous() for k, v in weights.items()}, str(other / "model.safetensors"))
    code, out = invoke("average", str(run_dir / "train" / "last"), str(other), "-o", str(avg))
    assert code == 0 and (avg / "model.safetensors").exists(), out
    code, out = invoke("translate", "--run", str(run_dir), "--checkpoint", str(avg), "-i", str(text_file),
                       "-o", str(tmp_path / "avg.txt"))
    assert code == 0 and len((tmp_path / "avg.txt").read_text(encoding="utf-8").split("\n")) == 5, out


def test_model_change_reruns_training_onward(tiny_config: Path) -> None:
    code, out = invoke("tokenize", str(tiny_config))
    assert code == 0 and "[tokenize] done" in out and "[train]" not in out
    code, out = invoke("train", str(tiny_config), "--set", "training.max_steps=4", "--set", "training.valid_every=2")
    assert code == 0 and out.count("skipped") == 2 and "[train] done" in out and "[translate]" not in out
    code, out = invoke("run", str(tiny_config), "--set", "training.max_steps=4", "--set", "training.valid_every=2",
                       "--set", "model.dropout=0.1")
    assert code == 0 and out.count("skipped") == 2 and "[train] done" in out and "[score] done" in out
    assert "holds a trained model, but the config changed since it was trained (model.dropout: 0.0 -> 0.1)" in out
    assert "training starts over and replaces it" in out
    code, out = invoke("run", str(tiny_config), "--set", "training.max_steps=4", "--set", "training.valid_every=2",
                       "--set", "model.dropout=0.1", "--force", "train")
    assert code == 0 and "holds a trained model, but --force train was given: training starts over" in out, out


def test_early_stopping(tiny_config: Path, tmp_path: Path) -> None:
    # A 2-step-old tiny model scores the same dev BLEU twice in a row: patience 1 stops it.
    code, out = invoke("train", str(tiny_config), "--set", "training.valid_every=2", "--set", "training.patience=1",
                       "--set", "training.keep_best=2", "--set", "training.valid_bleu=false")
    assert code == 0, out
    history = [json.loads(h) for h in (tmp_path / "runs" / "tiny" / "train" / "history.jsonl").read_text().splitlines()]
    by_loss = sorted(history, key=lambda h: (h["dev_loss"], h["step"]))[:2]
    top = tmp_path / "runs" / "tiny" / "train" / "top"
    assert sorted(p.name for p in top.iterdir()) == sorted(f"step{h['step']}" for h in by_loss)

    code, out = invoke("train", str(tiny_config), "--set", "training.valid_every=2", "--set", "training.patience=1")
    assert code == 0, out
    assert not top.exists()  # a rerun starts from an empty stage folder
    history = [json.loads(h) for h in (tmp_path / "runs" / "tiny" / "train" / "history.jsonl").read_text().splitlines()]
    bleu = [h["dev_bleu"] for h in history]
    stopped_at = next(i for i in range(1, len(bleu)) if bleu[i] <= max(bleu[:i]))
    assert len(history) == stopped_at + 1 < 10


def test_bad_inputs_exit_codes(tiny_config: Path, tmp_path: Path) -> None:
    code, out = invoke("run", str(tiny_config), "--until", "nosuchstage")
    assert code == 2 and "nosuchstage" in out
    code, out = invoke("frobnicate")
    assert code == 2
    code, out = invoke("run", str(tiny_config), "--set", "training.lr_rate=1")
    assert code == 1 and "did you mean 'lr'" in out
    code, out = invoke("run", str(tmp_path / "missing.yaml"))
    assert code == 1 and "config file not found" in out
    code, out = invoke("run", str(tiny_config), "--set", f"data.train={tmp_path}/none.tsv")
    assert code == 1 and "none.tsv: file not found" in out
    manifest = json.loads((tmp_path / "runs" / "tiny" / artifacts.MANIFEST).read_text())
    assert manifest["stages"]["prepare"]["status"] == "failed"
    code, out = invoke("score", str(tmp_path / "a"), str(tmp_path / "b"))
    assert code == 1 and "file not found" in out
    code, out = invoke("translate", "--run", str(tmp_path / "nowhere"), "-i", "x")
    assert code == 1 and "no trained run" in out
    for command in ("translate", "subtitle"):  # a beam of 0 is refused before anything runs
        code, out = invoke(command, "in.txt", "--run", str(tmp_path / "nowhere"), "-o", "o.txt", "--beam-size", "0")
        assert code == 2 and "--beam-size" in out and "0 is not in the range x>=1" in out
    # A text file where a run config is expected: the error says what was probably meant.
    hyp = tmp_path / "out.hyp"
    hyp.write_text("Jesús lloró.\nEn el principio: Dios.\nAmén.\n", encoding="utf-8")
    code, out = invoke("score", str(hyp))
    assert code == 1 and "read as a run config" in out and "s2s score HYP REF" in out
    code, out = invoke("translate", str(hyp))
    assert code == 1 and "s2s translate FILE --run RUN" in out
    code, out = invoke("run", str(tmp_path / "missing.yaml"))
    assert "read as a run config" not in out


def test_train_resume(tiny_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal

    from stages.train import trainer

    train_dir = tmp_path / "runs" / "tiny" / "train"
    steps = lambda: [json.loads(h)["step"] for h in (train_dir / "history.jsonl").read_text().splitlines()]  # noqa: E731
    sets = ["--set", "training.valid_every=2", "--set", "training.schedule=constant", "--set", "training.valid_bleu=false"]
    code, out = invoke("train", str(tiny_config), "--resume", *sets)
    assert code == 1 and "no training state to resume from" in out

    real, calls = trainer.train_step, [0]

    def terminated_at_step_3(*args: object, **kwargs: object) -> tuple[float, dict[str, float]]:
        calls[0] += 1
        if calls[0] == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(trainer, "train_step", terminated_at_step_3)
    code, out = invoke("train", str(tiny_config), "--set", "training.max_steps=4", *sets)
    assert code == 1 and "training stopped by SIGTERM at step 3" in out
    assert f"`s2s train {tiny_config} --set training.max_steps=4" in out and "--resume`" in out  # the exact command
    assert json.loads((train_dir.parent / artifacts.MANIFEST).read_text())["stages"]["train"]["status"] == "interrupted"
    assert invoke("status", str(tiny_config))[1].splitlines()[4].split()[:2] == ["train", "interrupted"]
    from pipeline import orchestrator
    from pipeline.config import load_config
    from pipeline.manifest import Manifest

    said: list[str] = []  # what `s2s run` would say before starting over
    orchestrator._say_what_retraining_discards(load_config(tiny_config, ["training.max_steps=4", *sets[1::2]]),
                                               train_dir.parent, Manifest.load(train_dir.parent), said.append)
    assert said and "holds a trained model, but its training was interrupted" in said[0], said
    monkeypatch.undo()
    code, out = invoke("train", str(tiny_config), "--resume", "--set", "training.max_steps=4", *sets)
    assert code == 0 and "[train] resuming" in out and steps() == [2, 4], out
    code, out = invoke("train", str(tiny_config), "--resume", "--set", "training.max_steps=6", *sets)
    assert code == 0 and steps() == [2, 4, 6], out
    summary = json.loads((train_dir.parent / artifacts.MANIFEST).read_text())["stages"]["train"]["summary"]
    assert summary["resumed_from_step"] == 4 and summary["steps"] == 6 and summary["stopped"] == "max_steps"
    record = json.loads((train_dir.parent / artifacts.MANIFEST).read_text())["stages"]["train"]
    code, out = invoke("train", str(tiny_config), "--resume", "--set", "training.max_steps=6", *sets)
    assert code == 0 and "nothing to resume: training had already stopped at step 6 (max_steps)" in out, out
    assert json.loads((train_dir.parent / artifacts.MANIFEST).read_text())["stages"]["train"] == record

    more = ["--set", "training.max_steps=8", *sets]
    code, out = invoke("train", str(tiny_config), "--resume", "--set", "model.dropout=0.3", *more)
    assert code == 1 and "model.dropout changed from 0.0 to 0.3" in out
    code, out = invoke("train", str(tiny_config), "--resume", "--set", "training.lr=0.001", *more)
    assert code == 1 and "training.lr changed from 0.003 to 0.001" in out and "--allow-lr-change" in out
    assert steps() == [2, 4, 6]  # refused before anything ran
    code, out = invoke("run", str(tiny_config), "--until", "train", "--resume", "--allow-lr-change",
                       "--set", "training.lr=0.001", *more)
    assert code == 0 and steps() == [2, 4, 6, 8], out
    history = [json.loads(h) for h in (train_dir / "history.jsonl").read_text().splitlines()]
    assert history[-1]["lr"] == pytest.approx(0.001) and history[-2]["lr"] == pytest.approx(0.003)

    code, out = invoke("train", str(tiny_config), "--allow-lr-change")
    assert code == 2 and "only applies with --resume" in out
    code, out = invoke("train", str(tiny_config), "--resume", "--force")
    assert code == 2 and "pick one" in out


def test_project_errors_exit_1_and_bugs_keep_their_traceback(tiny_config: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.cli
    from stages.errors import InputDataError

    def fails(error: Exception) -> object:
        def run_pipeline(*args: object, **kwargs: object) -> None:
            raise error
        return run_pipeline

    monkeypatch.setattr(pipeline.cli, "run_pipeline", fails(InputDataError("data/x.tsv:3: a bad line; fix it")))
    result = CliRunner().invoke(main, ["prepare", str(tiny_config)])
    assert result.exit_code == 1 and result.output == "Error: data/x.tsv:3: a bad line; fix it\n"
    monkeypatch.setattr(pipeline.cli, "run_pipeline", fails(RuntimeError("a bug")))
    result = CliRunner().invoke(main, ["prepare", str(tiny_config)])
    assert isinstance(result.exception, RuntimeError)


def test_a_second_writer_fails_at_once_naming_the_holder(tiny_config: Path, tmp_path: Path) -> None:
    from pipeline.runs import run_lock

    run_dir = tmp_path / "runs" / "tiny"
    with run_lock(run_dir, "s2s train tiny.yaml"):
        code, out = invoke("prepare", str(tiny_config))
        assert code == 1 and f"pid {os.getpid()} runs `s2s train tiny.yaml`" in out and "in use" in out
        assert not (run_dir / "prepare").exists() and not (run_dir / artifacts.MANIFEST).exists()
    code, out = invoke("prepare", str(tiny_config))
    assert code == 0, out


def test_a_killed_holder_leaves_no_stale_lock_and_status_says_interrupted(tiny_config: Path, tmp_path: Path) -> None:
    from pipeline.runs import run_lock

    run_dir = tmp_path / "runs" / "tiny"
    assert invoke("prepare", str(tiny_config))[0] == 0
    manifest_path = run_dir / artifacts.MANIFEST
    manifest = json.loads(manifest_path.read_text())
    manifest["stages"]["prepare"]["status"] = "running"  # as a process killed mid-stage leaves it
    manifest_path.write_text(json.dumps(manifest))
    killed = subprocess.run(
        [sys.executable, "-c", "import os, signal; from pathlib import Path; from pipeline.runs import run_lock\n"
         f"with run_lock(Path({str(run_dir)!r}), 's2s run'):\n    os.kill(os.getpid(), signal.SIGKILL)"],
        cwd=ROOT)
    assert killed.returncode == -9
    code, out = invoke("status", str(run_dir))
    assert code == 0 and "interrupted" in out and "in use" not in out
    with run_lock(run_dir, "s2s run tiny.yaml"):
        code, out = invoke("status", str(run_dir))
        assert "running" in out and "s2s run tiny.yaml" in out


@pytest.mark.parametrize("args,exit_code,message", [
    (["-o", "{tmp}/outdir/"], 1, "-o {tmp}/outdir/: is a folder"),
    (["-o", "{tmp}"], 2, "File '{tmp}' is a directory"),  # Click's own check of the option
    (["-o", "{tmp}/afile/out.txt"], 1, "afile is a file, so no folder can be made there"),
    (["-o", "{tmp}/in.txt"], 1, "is the input file"),
    (["-o", "{tmp}/o.txt", "--alignments", "{tmp}/o.txt"], 1, "is given for two outputs"),
    (["-o", "{tmp}/o.txt", "--plot-attention", "{tmp}/afile"], 2, "Directory '{tmp}/afile' is a file"),
    (["-o", "{tmp}/o.txt", "--plot-attention", "{tmp}/afile/plots"], 1, "afile is a file, so no folder"),
])
def test_output_paths_are_checked_before_any_work(run_dir: Path, text_file: Path, tmp_path: Path, args: list[str],
                                                  exit_code: int, message: str) -> None:
    (tmp_path / "afile").write_text("x")
    code, out = invoke("translate", "--run", str(run_dir), "-i", str(text_file),
                       *[a.format(tmp=tmp_path) for a in args])
    assert code == exit_code and message.format(tmp=tmp_path) in out, out
    assert text_file.read_text(encoding="utf-8").startswith("In the beginning")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "in.txt"]


def _limited(size: int) -> Callable[[], None]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    return limit


def test_a_write_refused_by_the_os_is_a_message_and_leaves_nothing(run_dir: Path, text_file: Path,
                                                                   tmp_path: Path) -> None:
    out = tmp_path / "out" / "o.txt"
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "translate", "--run", str(run_dir), "-i",
                             str(text_file), "-o", str(out), "--beam-size", "1"], capture_output=True, text=True,
                            cwd=ROOT, preexec_fn=_limited(2))  # the output has at least 4 bytes
    assert result.returncode == 1 and f"{out}: could not be written (File too large)" in result.stderr, result.stderr
    assert list((tmp_path / "out").iterdir()) == []


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_full_disk_behind_standard_output_is_a_message(run_dir: Path, text_file: Path) -> None:
    with open("/dev/full", "w") as full:
        result = subprocess.run([sys.executable, "-m", "pipeline.cli", "translate", "--run", str(run_dir), "-i",
                                 str(text_file), "--beam-size", "1"], stdout=full, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
    assert result.returncode == 1 and "<stdout>: could not be written (No space left on device)" in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    for command in (["config"], ["score", str(text_file), str(text_file)]):  # every command that prints
        with open("/dev/full", "w") as full:
            result = subprocess.run([sys.executable, "-m", "pipeline.cli", *command], stdout=full,
                                    stderr=subprocess.PIPE, text=True, cwd=ROOT)
        assert result.returncode == 1 and "<stdout>: could not be written" in result.stderr, result.stderr
        assert "Traceback" not in result.stderr, result.stderr


def test_a_link_stays_a_link_and_a_pipe_a_pipe(run_dir: Path, text_file: Path, tmp_path: Path) -> None:
    import threading

    real, link, pipe = tmp_path / "real.txt", tmp_path / "link.txt", tmp_path / "pipe"
    real.write_text("old\n", encoding="utf-8")
    link.symlink_to(real)
    os.mkfifo(pipe)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(pipe.read_text(encoding="utf-8")))
    reader.start()
    for out in (link, pipe):
        code, text = invoke("translate", "--run", str(run_dir), "-i", str(text_file), "-o", str(out), "--beam-size", "1")
        assert code == 0, text
    reader.join(timeout=60)
    assert link.is_symlink() and real.read_text(encoding="utf-8") != "old\n"
    assert pipe.exists() and not pipe.is_file() and read == [real.read_text(encoding="utf-8")]


def test_a_write_failure_in_prepare_is_not_blamed_on_the_input(tiny_config: Path, tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "pipeline.cli", "prepare", str(tiny_config)], capture_output=True,
                            text=True, cwd=ROOT, preexec_fn=_limited(60_000))
    assert result.returncode == 1 and "could not be written (File too large)" in result.stderr, result.stderr
    assert "could not be read" not in result.stderr and "Traceback" not in result.stderr


def test_a_refused_resume_leaves_no_run_folder_behind(tiny_config: Path, tmp_path: Path) -> None:
    code, out = invoke("train", str(tiny_config), "--resume")
    assert code == 1 and "no training state to resume from" in out
    assert not (tmp_path / "runs" / "tiny").exists()



def test_sigterm_ends_a_command_without_leaving_a_half_written_file(shared_run: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    source = tmp_path / "in.txt"
    source.write_text("the man went to the city and he saw the house .\n" * 40000, encoding="utf-8")
    out = tmp_path / "out" / "out.txt"
    out.parent.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-c", "from pipeline.cli import main; main()", "translate", "--run", str(shared_run),
         "-i", str(source), "-o", str(out), "--set", "decoding.stream_lines=500"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 120
    while not list(out.parent.glob(".out.txt.*.tmp")) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert process.poll() is None, "the translation ended before it was signalled"
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1 and "Aborted" in output and "Traceback" not in output, output
    assert list(out.parent.iterdir()) == []  # neither the output nor its temporary file


@pytest.mark.parametrize("args", [
    ["subtitle", "in.srt", "--run", "r", "-o", "o.srt", "--max-cps", "nan"],
    ["subtitle", "in.srt", "--run", "r", "-o", "o.srt", "--fit-margin", "inf"],
    ["serve", "--run", "r", "--timeout", "nan"],
    ["serve", "--run", "r", "--max-file-mb", "inf"],
])
def test_float_options_refuse_nan_and_infinity_by_name(args: list[str]) -> None:
    code, out = invoke(*args)
    option = next(a for a in args if a.startswith("--") and a != "--run")
    assert code == 2 and f"Invalid value for '{option}'" in out and "is not a finite number" in out


def test_a_windows_file_is_translated_with_its_line_ends(run_dir: Path, tmp_path: Path) -> None:
    source, out = tmp_path / "in.txt", tmp_path / "out.txt"
    source.write_bytes(b"Jesus wept.\r\n...\r\n")
    code, text = invoke("translate", "--run", str(run_dir), "-i", str(source), "-o", str(out), "--beam-size", "1")
    assert code == 0, text
    data = out.read_bytes()
    assert data.count(b"\r\n") == 2 and data.endswith(b"...\r\n") and b"\n" not in data.replace(b"\r\n", b"")
    source.write_bytes(b"Jesus wept.\r...\r")  # lone CRs (an old Mac file)
    code, text = invoke("translate", "--run", str(run_dir), "-i", str(source), "-o", str(out), "--beam-size", "1")
    assert code == 0 and out.read_bytes() == data.replace(b"\r\n", b"\r"), text
