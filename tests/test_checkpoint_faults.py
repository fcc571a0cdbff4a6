"""Damaged checkpoints give messages that name the file, what is wrong and what to do,
in every command that reads them; `s2s average` checks every input before writing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Callable

import pytest
import sentencepiece as spm
import torch
from click.testing import CliRunner

from pipeline.cli import main
from stages import artifacts
from stages.errors import ArtifactError
from stages.model.checkpoint import (
    average_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq


@pytest.fixture(scope="module")
def good(tokenized_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint folder of a tiny model with the tokenized run's SentencePiece models."""
    spm_dir = tokenized_run.parent / "runs" / "tiny" / artifacts.TOKENIZE_DIR
    pieces = spm.SentencePieceProcessor(model_file=str(spm_dir / artifacts.SPM_SRC)).get_piece_size()
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(embedding_size=8, encoder_hidden=6, decoder_hidden=12), pieces, pieces)
    folder = tmp_path_factory.mktemp("ckpt") / "good"
    save_checkpoint(folder, model, spm_dir, {"step": 1})
    return folder


def damaged(good: Path, tmp_path: Path, harm: Callable[[Path], None]) -> Path:
    folder = tmp_path / "damaged"
    shutil.copytree(good, folder)
    harm(folder)
    return folder


def truncate(folder: Path) -> None:
    weights = folder / artifacts.CKPT_WEIGHTS
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def pickled(folder: Path) -> None:
    torch.save({"x": torch.zeros(2)}, folder / artifacts.CKPT_WEIGHTS)


def other_weights(folder: Path) -> None:
    """The same model with other weights (halved), as another step of one training holds."""
    from safetensors.torch import load_file, save_file
    weights = load_file(str(folder / artifacts.CKPT_WEIGHTS))
    save_file({k: (v / 2).contiguous() for k, v in weights.items()}, str(folder / artifacts.CKPT_WEIGHTS))


def nan_weights(folder: Path) -> None:
    from safetensors.torch import load_file, save_file
    weights = load_file(str(folder / artifacts.CKPT_WEIGHTS))
    name = next(k for k in weights if k.startswith("generator"))
    weights[name] = torch.full_like(weights[name], float("nan"))
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / artifacts.CKPT_WEIGHTS))


def other_model(folder: Path) -> None:
    model = Seq2Seq(ModelConfig(embedding_size=8, encoder_hidden=6, decoder_hidden=16), 200, 200)
    from safetensors.torch import save_file
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(folder / artifacts.CKPT_WEIGHTS))


def edit_meta(change: Callable[[dict], None]) -> Callable[[Path], None]:
    def harm(folder: Path) -> None:
        meta = json.loads((folder / artifacts.CKPT_META).read_text())
        change(meta)
        (folder / artifacts.CKPT_META).write_text(json.dumps(meta))
    return harm


CASES = {
    "empty weights": (lambda f: (f / artifacts.CKPT_WEIGHTS).write_bytes(b""), "model.safetensors: not a readable"),
    "truncated weights": (truncate, "model.safetensors: not a readable"),
    "no weights": (lambda f: (f / artifacts.CKPT_WEIGHTS).unlink(), "model.safetensors: missing"),
    "pickle renamed": (pickled, "model.safetensors: not a readable"),
    "meta not json": (lambda f: (f / artifacts.CKPT_META).write_text("{oops"), "meta.json: not valid JSON"),
    "meta without keys": (edit_meta(lambda m: m.pop("model")), "meta.json: no model in it"),
    "meta of an unknown model": (edit_meta(lambda m: m["model"].update(cell="transformer")),
                                 "meta.json: not a model this version of s2s can build"),
    "weights of another model": (other_model, "its weights do not fit the model of meta.json"),
    "NaN weights": (nan_weights, r"model.safetensors: tensor 'generator\.\w+' holds NaN or infinite values"),
    "tokenizer replaced": (lambda f: shutil.copyfile(f / artifacts.SPM_TGT, f / artifacts.SPM_SRC)
                           if (f / artifacts.SPM_TGT).read_bytes() != (f / artifacts.SPM_SRC).read_bytes()
                           else (f / artifacts.SPM_SRC).write_bytes(b"junk"), "spm.src.model: tokenizer missing"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_damaged_checkpoint_is_a_message_naming_the_file(good: Path, tmp_path: Path, case: str) -> None:
    harm, message = CASES[case]
    folder = damaged(good, tmp_path, harm)
    with pytest.raises(ArtifactError, match=message) as error:
        load_checkpoint(folder)
    assert "retrain" in str(error.value) or "train the run" in str(error.value)


def test_a_tokenizer_that_does_not_fit_the_weights(good: Path, tmp_path: Path) -> None:
    corpus = tmp_path / "lines.txt"
    corpus.write_text("".join(f"word{i} other{i % 7} thing\n" for i in range(300)))
    spm.SentencePieceTrainer.train(input=str(corpus), model_prefix=str(tmp_path / "small"), vocab_size=40,
                                   minloglevel=2)
    from stages.files import sha256_file

    def harm(folder: Path) -> None:
        shutil.copyfile(tmp_path / "small.model", folder / artifacts.SPM_SRC)
        edit_meta(lambda m: m["tokenizer_sha256"].update({artifacts.SPM_SRC: sha256_file(folder / artifacts.SPM_SRC)}))(folder)

    with pytest.raises(ArtifactError, match=r"spm\.src\.model: 40 pieces, but the model's embeddings have"):
        load_checkpoint(damaged(good, tmp_path, harm))


def test_translate_with_a_damaged_checkpoint_exits_1_with_the_message(good: Path, tmp_path: Path) -> None:
    folder = damaged(good, tmp_path, truncate)
    (tmp_path / "run" / "train").mkdir(parents=True)
    (tmp_path / "in.txt").write_text("Jesus wept.\n")
    result = CliRunner().invoke(main, ["translate", "--run", str(tmp_path / "run"), "--checkpoint", str(folder),
                                       "-i", str(tmp_path / "in.txt"), "-o", str(tmp_path / "out.txt")])
    assert result.exit_code == 1 and "model.safetensors: not a readable safetensors file" in result.output
    assert not (tmp_path / "out.txt").exists()


@pytest.mark.parametrize("which", ["weights against their meta", "first tokenizer"])
def test_average_checks_every_input_before_writing(good: Path, tmp_path: Path, which: str) -> None:
    second = tmp_path / "second"
    shutil.copytree(good, second)
    first = damaged(good, tmp_path, other_model if which == "weights against their meta"
                    else lambda f: (f / artifacts.SPM_SRC).write_bytes(b"junk"))
    with pytest.raises(ArtifactError):
        average_checkpoints([first, second], tmp_path / "avg")
    assert not (tmp_path / "avg").exists()


def test_average_never_writes_over_a_folder_it_was_not_asked_to_make(good: Path, tmp_path: Path) -> None:
    second = tmp_path / "second"
    shutil.copytree(good, second)
    other_weights(second)
    kept = tmp_path / "mine"
    kept.mkdir()
    (kept / "notes.txt").write_text("keep me")
    run = tmp_path / "run"
    (run / "train").mkdir(parents=True)
    (run / artifacts.MANIFEST).write_text("{}")
    for target, message in ((kept, "already exists"), (tmp_path, "holds or lies in"), (second / "avg", "lies in"),
                            (run / "train" / "avg", "lies in run .* stage folder train/")):
        with pytest.raises(ArtifactError, match=message):
            average_checkpoints([good, second], target)
    assert (kept / "notes.txt").read_text() == "keep me" and not (second / "avg").exists()
    average_checkpoints([good, second], run / "average")  # beside the stage folders: a rerun leaves it
    assert (run / "average" / artifacts.CKPT_WEIGHTS).exists()
    with pytest.raises(ArtifactError, match="given twice"):
        average_checkpoints([good, good], tmp_path / "avg")


def test_average_refuses_one_checkpoint_under_two_names_and_other_data(good: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(good, copy)  # train/best and train/last after a last validation that was the best
    with pytest.raises(ArtifactError, match="holds the same weights as .*good.*count them double"):
        average_checkpoints([good, copy], tmp_path / "avg")
    with pytest.raises(ArtifactError, match="two or more"):
        average_checkpoints([good], tmp_path / "avg")
    plain = tmp_path / "plain"
    shutil.copytree(good, plain)
    edit_meta(lambda m: m.update(data={"src_lang": "en", "tgt_lang": "es", "context": 0}))(plain)
    for name, change in (("reverse", {"src_lang": "es", "tgt_lang": "en"}), ("context", {"context": 1})):
        other = tmp_path / name
        shutil.copytree(plain, other)
        other_weights(other)
        edit_meta(lambda m, change=change: m["data"].update(change))(other)
        with pytest.raises(ArtifactError, match=r"its data \(.*\) differs"):
            average_checkpoints([plain, other], tmp_path / "avg")
    assert not (tmp_path / "avg").exists()


def test_average_names_the_model_key_that_differs(good: Path, tmp_path: Path) -> None:
    other = damaged(good, tmp_path, edit_meta(lambda m: m["model"].update(dropout=0.5)))
    with pytest.raises(ArtifactError, match=r"its model \(dropout: 0\.2 against 0\.5\) differs"):
        average_checkpoints([good, other], tmp_path / "avg")


def test_a_checkpoint_the_disk_refuses_is_a_message_naming_it(good: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from safetensors import SafetensorError

    from stages.errors import OutputError
    from stages.model import checkpoint

    def full(state: object, path: str) -> None:
        raise SafetensorError("Error while serializing: I/O error: File too large (os error 27)")

    model, *_ = load_checkpoint(good)
    monkeypatch.setattr(checkpoint, "save_file", full)
    target = tmp_path / "best"
    with pytest.raises(OutputError, match=r"best: could not be written \(File too large\)"):
        save_checkpoint(target, model, good, {"step": 1})
    assert not target.exists() and list(tmp_path.iterdir()) == []
