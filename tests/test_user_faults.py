"""Faults a new user met, each pinned: damaged run files, config values that passed the
checks and failed later, outputs that lost data, and messages that named the wrong thing."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from safetensors.torch import load_file, save_file

from pipeline.cli import main
from stages.errors import ArtifactError, ConfigError

ROOT = Path(__file__).resolve().parents[1]


def invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def run(trained_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny trained run that these tests may change."""
    copy = tmp_path_factory.mktemp("faults") / "tiny"
    shutil.copytree(trained_run.parent / "runs" / "tiny", copy)
    return copy


@pytest.fixture
def one_line(tmp_path: Path) -> Path:
    path = tmp_path / "in.txt"
    path.write_text("Jesus wept.\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("meta", ['{"model": ', "[]", {"data": 5}, {"data": {"context": "one"}},
                                  {"data": {"context": -1}}, {"tokenizer_sha256": "x"}, {"output_pieces": [99999]},
                                  {"model": [1]}])
def test_a_damaged_meta_json_in_a_checkpoint_folder_is_a_message(run: Path, tmp_path: Path, one_line: Path,
                                                                  meta: str | dict) -> None:
    folder = tmp_path / "ckpt"
    shutil.copytree(run / "train" / "best", folder)
    if isinstance(meta, dict):  # valid JSON with a field of the wrong kind
        meta = json.dumps({**json.loads((folder / "meta.json").read_text()), **meta})
    (folder / "meta.json").write_text(meta)
    code, out = invoke("translate", "--run", str(folder), "-i", str(one_line), "-o", str(tmp_path / "o.txt"))
    assert code == 1 and "meta.json" in out and "damaged" in out and "Traceback" not in out, out
    assert not (tmp_path / "o.txt").exists()


def test_a_run_folder_given_as_a_checkpoint_names_its_checkpoints(run: Path, tmp_path: Path) -> None:
    code, out = invoke("average", str(run), str(run / "train" / "best"), "-o", str(tmp_path / "avg"))
    assert code == 1 and "a run folder, not a checkpoint" in out and str(run / "train" / "best") in out, out
    code, out = invoke("average", str(run / "train"), str(run / "train" / "best"), "-o", str(tmp_path / "avg"))
    assert code == 1 and "a training folder, not a checkpoint" in out, out


def test_a_history_cut_short_plots_and_resumes_and_a_damaged_line_is_named(run: Path, tmp_path: Path) -> None:
    from stages.files import read_records
    from stages.train.validation import _truncate_history

    history = tmp_path / "history.jsonl"
    rows = [{"step": 10, "train_loss": 3.0, "dev_loss": 2.0, "lr": 0.1}, {"step": 20, "train_loss": 2.5,
                                                                        "dev_loss": 1.9, "lr": 0.05}]
    history.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 30, "train_lo')  # a writer killed
    assert read_records(history) == rows
    _truncate_history(history, 20)  # a resume from step 20 drops the cut line
    assert history.read_text() == "".join(json.dumps(r) + "\n" for r in rows)
    history.write_text(json.dumps(rows[0]) + "\nnot json\n" + json.dumps(rows[1]) + "\n")
    with pytest.raises(ArtifactError, match=r"history.jsonl:2: not a JSON record"):
        read_records(history)
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "train" / "history.jsonl").write_text(history.read_text())
    code, out = invoke("plot", str(copy), "-o", str(tmp_path / "plots"))
    assert code == 1 and "history.jsonl:2: not a JSON record" in out, out


def test_plot_into_a_folder_that_cannot_be_made_is_a_message(run: Path) -> None:
    code, out = invoke("plot", str(run), "-o", "/proc/s2s-plots")
    assert code == 1 and "/proc/s2s-plots" in out and "Traceback" not in out, out


@pytest.mark.parametrize("seed", ["-1", "4294967296"])
def test_a_seed_out_of_range_is_a_config_error(tiny_config: Path, seed: str) -> None:
    code, out = invoke("prepare", str(tiny_config), "--set", f"seed={seed}")
    assert code == 1 and "must be a whole number from 0 to 4294967295" in out and "[prepare]" not in out, out


def test_a_complex_yaml_key_and_a_whole_section_in_set_are_config_errors(tiny_config: Path, tmp_path: Path) -> None:
    bad = tmp_path / "complex.yaml"
    bad.write_text("name: x\n? [a, b]\n: 1\n")
    code, out = invoke("status", str(bad))
    assert code == 1 and "complex.yaml:2: a key must be a name, not a list" in out, out
    code, out = invoke("prepare", str(tiny_config), "--set", "training={lr: 1}")
    assert code == 1 and "training is a section" in out and "--set training.KEY=VALUE" in out, out


def test_dev_stdout_writes_where_the_shell_left_it(tmp_path: Path) -> None:
    log = tmp_path / "log.txt"
    log.write_text("before\n")
    script = ("import sys; sys.path.insert(0, sys.argv[1]); from pathlib import Path; "
              "from stages.files import write_text_atomic; write_text_atomic(Path('/dev/stdout'), 'OUT\\n')")
    with open(log, "a") as handle:
        handle.write("A\n")
        handle.flush()
        subprocess.run([sys.executable, "-c", script, str(ROOT)], stdout=handle, check=True)
        handle.write("B\n")
    assert log.read_text() == "before\nA\nOUT\nB\n"


def test_score_refuses_a_subtitle_file_against_a_text_file(tmp_path: Path) -> None:
    srt = tmp_path / "hyp.srt"
    srt.write_text("1\n00:00:01,000 --> 00:00:02,000\nHola.\n")
    txt = tmp_path / "ref.txt"
    txt.write_text("1\n00:00:01,000 --> 00:00:02,000\nHola.\n")
    for args in ((srt, txt), (txt, srt)):
        code, out = invoke("score", *map(str, args))
        assert code == 1 and "hyp.srt is a subtitle file and" in out and "ref.txt is not" in out, out


def test_resume_refuses_a_changed_batching_key(run: Path) -> None:
    from stages.train.state import ResumeOptions, check_resume, read_train_config

    last = run / "train" / "last"
    config = read_train_config(last)["config"]
    for key, value in (("pad_multiple", 1), ("context_dropout", 0.3), ("coword_dropout", 0.1)):
        changed = {**config, "training": {**config["training"], key: value}}
        with pytest.raises(ConfigError, match=f"training.{key} changed from"):
            check_resume(last, changed, ResumeOptions(allow_lr_change=True))
    check_resume(last, config, ResumeOptions())


def test_resume_without_train_last_says_it_is_missing(run: Path, tmp_path: Path) -> None:
    from stages.train.state import read_train_config

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    shutil.rmtree(copy / "train" / "last")
    with pytest.raises(ArtifactError, match="missing, although the training validated"):
        read_train_config(copy / "train" / "last")


def _with_checkpoint(run: Path, folder: str) -> "object":
    from pipeline.config import load_config

    cfg = load_config(run / "config.yaml", [f"decoding.checkpoint={folder}", f"runs_dir={run.parent}"])
    return cfg


def test_a_decoding_checkpoint_folder_is_read_from_the_working_folder_and_checked_first(
        run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from pipeline.manifest import Manifest
    from pipeline.orchestrator import (
        STAGES,
        check_decoding_checkpoint,
        decoding_checkpoint,
        fingerprint,
    )

    average = tmp_path / "avg"
    other = tmp_path / "other"
    shutil.copytree(run / "train" / "last", other)
    weights = load_file(str(other / "model.safetensors"))
    save_file({k: (v * 0.9).contiguous() for k, v in weights.items()}, str(other / "model.safetensors"))
    code, out = invoke("average", str(run / "train" / "last"), str(other), "-o", str(average))
    assert code == 0, out
    monkeypatch.chdir(tmp_path)
    cfg = _with_checkpoint(run, "avg")
    assert decoding_checkpoint(cfg, run).resolve() == average.resolve()  # as --checkpoint reads it
    check_decoding_checkpoint(cfg, run)
    translate = next(s for s in STAGES if s.name == "translate")
    before = fingerprint(translate, cfg, Manifest.load(run))
    save_file({k: (v * 0.5).contiguous() for k, v in load_file(str(average / "model.safetensors")).items()},
              str(average / "model.safetensors"))  # averaged again from other checkpoints
    assert fingerprint(translate, cfg, Manifest.load(run)) != before
    hyp = run / "translate" / "test.hyp"
    kept = hyp.read_bytes()
    code, out = invoke("translate", str(run / "config.yaml"), "--set", "decoding.checkpoint=missing",
                       "--set", f"runs_dir={run.parent}")
    assert code == 1 and "decoding.checkpoint=" in out and "missing: no such folder; give best, last" in out, out
    assert hyp.read_bytes() == kept  # the stage never started: its output is still there


def test_an_ensemble_never_loads_one_checkpoint_folder_for_every_run(run: Path, tmp_path: Path) -> None:
    from pipeline.api import Translator

    with pytest.raises(ConfigError, match="is one model, but an ensemble loads one per run"):
        Translator.load([run, run], checkpoint=str(run / "train" / "best"))
    with pytest.raises(ConfigError, match="is one model, but an ensemble loads one per run"):
        Translator.load([run, run], overrides=[f"decoding.checkpoint={run / 'train' / 'best'}"])
    with pytest.raises(ConfigError, match="is a checkpoint folder, which is one model"):
        Translator.load(run / "train" / "best", checkpoint="last")


def test_a_missing_fine_tuning_parent_names_training_init_from(tiny_config: Path) -> None:
    from pipeline.config import load_config
    from pipeline.orchestrator import from_run_key

    cfg = load_config(tiny_config, ["training.init_from=gone"])
    assert from_run_key(cfg) == "training.init_from"
    cfg = load_config(tiny_config, ["training.init_from=gone", "tokenizer.from_run=other"])
    assert from_run_key(cfg) == "tokenizer.from_run"


def test_a_key_in_the_wrong_section_names_its_section(tiny_config: Path) -> None:
    code, out = invoke("prepare", str(tiny_config), "--set", "decoding.keep_best=3")
    assert code == 1 and "keep_best is a training key: training.keep_best" in out, out
    code, out = invoke("prepare", str(tiny_config), "--set", "training.=3")
    assert code == 1 and "training.: unknown key (valid keys: batch_type," in out, out
    code, out = invoke("prepare", str(tiny_config), "--set", "training.batch_tokens=1")
    assert code == 1 and "training.batch_tokens=1: must be at least training.pad_multiple" in out, out


def test_a_failed_stage_leaves_its_earlier_outputs(run: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.orchestrator as orchestrator
    from pipeline.config import load_config

    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(run, copy)
    kept = (copy / "translate" / "test.hyp").read_bytes()

    def fails(cfg: object, train_dir: Path, tokenize_dir: Path, prepare_dir: Path, out_dir: Path) -> dict:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "test.hyp").write_text("half")
        raise ArtifactError("the checkpoint's tokenizer differs")

    monkeypatch.setattr(orchestrator, "run_translate", fails)
    cfg = load_config(copy / "config.yaml", [f"runs_dir={copy.parent}", "decoding.beam_size=3"])
    with pytest.raises(ArtifactError):
        orchestrator.run_pipeline(cfg, until="translate", force=("translate",), echo=lambda _: None)
    assert (copy / "translate" / "test.hyp").read_bytes() == kept
    assert not (copy / ".translate.previous").exists()


def test_a_name_too_long_is_a_message(run: Path, tmp_path: Path) -> None:
    long = str(tmp_path / ("x" * 300))
    for args in (("plot", str(run), "-o", long), ("translate", "--run", str(run), "-i", long, "-o", long + "o"),
                 ("status", long)):
        code, out = invoke(*args)
        assert code == 1 and "file name too long" in out, (args, out)


def test_status_says_when_the_runs_config_cannot_be_read(run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    (copy / "config.yaml").write_text("training: [\n")
    result = CliRunner().invoke(main, ["status", str(copy)])
    assert result.exit_code == 0 and "warning:" in result.output and "config.yaml" in result.output, result.output
    (copy / "config.json").write_text(json.dumps({"data": {}}))
    from pipeline.api import saved_section
    with pytest.raises(ArtifactError, match="no decoding section in it"):
        saved_section(copy, "decoding")
    (copy / "config.json").unlink()  # a run folder without it: its decoding settings are not known
    with pytest.raises(ArtifactError, match=r"config\.json: missing, so the run's settings are not known"):
        saved_section(copy, "decoding")
    assert saved_section(copy / "train" / "best", "data")  # a bare checkpoint folder has none: its meta serves


def test_the_tokenizer_sample_is_the_same_for_the_same_seed(tmp_path: Path) -> None:
    import csv
    import gzip

    from datasets import Dataset

    from stages.corpus.config import TokenizerConfig
    from stages.corpus.tables import column_lines
    from stages.corpus.tokenization import _train_spm

    with gzip.open(ROOT / "data" / "bible" / "train.tsv.gz", "rt", encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:3001]
    table = Dataset.from_dict({"src": [r[1] for r in rows], "tgt": [r[2] for r in rows]})
    sample = list(column_lines(table, ("src", "tgt"), 1000, 7))
    assert len(sample) == 1000 and sample == list(column_lines(table, ("src", "tgt"), 1000, 7))
    assert sample != list(column_lines(table, ("src", "tgt"), 1000, 8))
    cfg = TokenizerConfig(vocab_size=300, max_sentences=1000)
    models = []
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        _train_spm(table, ("src", "tgt"), tmp_path / f"{name}.model", cfg, seed)
        models.append((tmp_path / f"{name}.model").read_bytes())
    assert models[0] == models[1] != models[2]


def test_status_names_a_decoding_checkpoint_whose_weights_changed(run: Path, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(run, copy)
    other = tmp_path / "other"
    shutil.copytree(copy / "train" / "last", other)
    save_file({k: (v * 0.9).contiguous() for k, v in load_file(str(other / "model.safetensors")).items()},
              str(other / "model.safetensors"))
    monkeypatch.chdir(tmp_path)
    assert invoke("average", str(copy / "train" / "last"), "other", "-o", "avg")[0] == 0
    config = tmp_path / "avg.yaml"
    config.write_text((copy / "config.yaml").read_text() + "\n")
    sets = ["--set", "decoding.checkpoint=avg", "--set", f"runs_dir={copy.parent}"]
    code, out = invoke("translate", str(config), *sets)
    assert code == 0 and "[translate] done" in out, out
    assert f"checkpoint: {tmp_path / 'avg'}" in (copy / "config.yaml").read_text()  # recorded as a full path
    save_file({k: (v * 0.5).contiguous() for k, v in load_file(str(tmp_path / "avg" / "model.safetensors")).items()},
              str(tmp_path / "avg" / "model.safetensors"))
    code, out = invoke("status", str(copy))
    assert code == 0 and "translate is stale: the weights in decoding.checkpoint" in out, out


def test_config_into_dev_stdout_writes_the_config_alone(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "pipeline.cli", "config", "tiny", "-o", "/dev/stdout"],
                         capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert out.startswith("# A smoke test") and "wrote the" not in out


def test_a_decoding_checkpoint_with_cut_weights_is_refused_before_any_stage(run: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut"
    shutil.copytree(run / "train" / "best", cut)
    weights = cut / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:10_000])
    code, out = invoke("run", str(run / "config.yaml"), "--set", f"decoding.checkpoint={cut}",
                       "--set", f"runs_dir={run.parent}", "--set", "model.dropout=0.3")
    assert code == 1 and "decoding.checkpoint:" in out and "not a readable safetensors file" in out, out
    assert "[prepare]" not in out and "[train]" not in out  # refused before the model change retrained


def test_status_says_an_earlier_stage_failed_since(run: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import pipeline.orchestrator as orchestrator
    from pipeline.config import load_config

    copy = tmp_path / "runs" / "tiny"
    shutil.copytree(run, copy)

    def fails(*args: object) -> dict:
        raise ArtifactError("no")

    monkeypatch.setattr(orchestrator, "run_translate", fails)
    cfg = load_config(copy / "config.yaml", [f"runs_dir={copy.parent}"])
    with pytest.raises(ArtifactError):
        orchestrator.run_pipeline(cfg, until="translate", force=("translate",), echo=lambda _: None)
    code, out = invoke("status", str(copy))
    assert code == 0 and "score is stale: translate failed since it ran" in out, out


def test_ctrl_c_while_the_cli_loads_is_aborted_without_a_traceback(monkeypatch: pytest.MonkeyPatch,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import builtins

    import pipeline.entry as entry

    real = builtins.__import__

    def interrupted(name: str, *args: object, **kwargs: object) -> object:
        if name == "pipeline.cli":
            raise KeyboardInterrupt
        return real(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", interrupted)
    with pytest.raises(SystemExit) as stopped:
        entry.main()
    assert stopped.value.code == 1 and capsys.readouterr().err == "Aborted!\n"
