"""Fine-tuning (`training.init_from`) and reusing a tokenizer (`tokenizer.from_run`)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import torch
from click.testing import CliRunner
from safetensors.torch import load_file

from pipeline.cli import main
from stages import artifacts
from stages.files import sha256_file
from stages.train import trainer


def child_config(shared_run: Path, tmp_path: Path, *lines: str) -> Path:
    """The shared run's config, writing into tmp_path/runs, with extra top-level lines."""
    text = (shared_run.parent.parent / "tiny.yaml").read_text(encoding="utf-8")
    text = text.replace(str(shared_run.parent), str(tmp_path / "runs"))
    config = tmp_path / "child.yaml"
    config.write_text(text + "".join(line + "\n" for line in lines), encoding="utf-8")
    return config


def test_a_child_starts_from_the_parents_weights_and_tokenizer(shared_run: Path, tmp_path: Path,
                                                              monkeypatch) -> None:
    seen: list[dict[str, torch.Tensor]] = []
    real = trainer.train_step

    def first_step(net, *args, **kwargs):  # the weights the first optimizer step sees
        if not seen:
            seen.append({k: v.detach().clone() for k, v in net.state_dict().items()})
        return real(net, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_step", first_step)
    config = child_config(shared_run, tmp_path)
    result = CliRunner().invoke(main, ["train", str(config), "--set", f"training.init_from={shared_run}",
                                       "--set", "training.max_steps=2", "--set", "model.dropout=0.2"])
    assert result.exit_code == 0, result.output
    parent = shared_run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST
    weights = load_file(str(parent / artifacts.CKPT_WEIGHTS))
    assert seen and seen[0].keys() == weights.keys()
    assert all(torch.equal(seen[0][k], weights[k]) for k in weights)
    child = tmp_path / "runs" / "tiny"
    for name in (artifacts.SPM_SRC, artifacts.SPM_TGT):
        assert sha256_file(child / artifacts.TOKENIZE_DIR / name) == sha256_file(shared_run / artifacts.TOKENIZE_DIR / name)
    manifest = json.loads((child / artifacts.MANIFEST).read_text())
    summary = manifest["stages"]["train"]["summary"]
    assert summary["init_from"]["checkpoint"] == str(parent)
    assert summary["init_from"]["weights_sha256"] == sha256_file(parent / artifacts.CKPT_WEIGHTS)
    assert manifest["stages"]["tokenize"]["summary"]["tokenizer_from"] == str(parent)
    saved = json.loads((child / artifacts.RESOLVED_CONFIG).read_text())
    assert saved["tokenizer"]["from_run"] == str(shared_run)  # taken from training.init_from
    # The same parent by another name (its best checkpoint folder): nothing reruns.
    result = CliRunner().invoke(main, ["train", str(config), "--set", f"training.init_from={parent}",
                                       "--set", "training.max_steps=2", "--set", "model.dropout=0.2"])
    assert result.exit_code == 0 and result.output.count("up to date, skipped") == 3, result.output


def test_another_tokenizer_is_refused_naming_both_files(shared_run: Path, tmp_path: Path) -> None:
    other = child_config(shared_run, tmp_path)
    other.write_text(re.sub(r"(?m)^seed: .*$", "seed: 99", other.read_text()).replace("name: tiny", "name: other"))
    assert CliRunner().invoke(main, ["train", str(other), "--set", "training.max_steps=2",
                                     "--set", "tokenizer.vocab_size=190"]).exit_code == 0
    config = child_config(shared_run, tmp_path)
    result = CliRunner().invoke(main, ["train", str(config), "--set", f"training.init_from={shared_run}",
                                       "--set", f"tokenizer.from_run={tmp_path / 'runs' / 'other'}"])
    assert result.exit_code == 1, result.output
    message = " ".join(result.output.split())
    assert f"tokenizer.from_run={tmp_path / 'runs' / 'other'}" in message
    assert f"has other SentencePiece models than training.init_from={shared_run}" in message
    assert not (tmp_path / "runs" / "tiny").exists()  # refused before any stage ran
    result = CliRunner().invoke(main, ["train", str(config), "--set", f"training.init_from={shared_run}",
                                       "--set", f"tokenizer.from_run={tmp_path / 'runs' / 'other' / 'tokenize'}"])
    assert result.exit_code == 1 and "from_run=" in result.output and "no trained run" in result.output


def test_another_architecture_is_refused_naming_the_keys(shared_run: Path, tmp_path: Path) -> None:
    config = child_config(shared_run, tmp_path)
    result = CliRunner().invoke(main, ["train", str(config), "--set", f"training.init_from={shared_run}",
                                       "--set", "model.decoder_hidden=48"])
    assert result.exit_code == 1
    assert "model.decoder_hidden: 64 there, 48 here" in " ".join(result.output.split())
    assert not (tmp_path / "runs" / "tiny").exists()  # refused before prepare and tokenize ran


def test_init_from_a_missing_run(shared_run: Path, tmp_path: Path) -> None:
    config = child_config(shared_run, tmp_path)
    result = CliRunner().invoke(main, ["train", str(config), "--set", f"training.init_from={tmp_path / 'nowhere'}"])
    assert result.exit_code == 1 and f"training.init_from={tmp_path / 'nowhere'}" in result.output
    assert "no trained run" in result.output and not (tmp_path / "runs" / "tiny").exists()


def test_a_child_can_output_its_parents_pieces_too(shared_run: Path, tmp_path: Path) -> None:
    parent = tmp_path / "parent"
    shutil.copytree(shared_run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST, parent)
    meta = json.loads((parent / artifacts.CKPT_META).read_text())
    unseen = max(set(range(meta["tgt_vocab"])) - set(meta["output_pieces"]))  # a piece the child's data lacks
    meta["output_pieces"] = sorted(meta["output_pieces"] + [unseen])
    (parent / artifacts.CKPT_META).write_text(json.dumps(meta), encoding="utf-8")
    config = child_config(shared_run, tmp_path)
    result = CliRunner().invoke(main, ["train", str(config), "--set", f"training.init_from={parent}",
                                       "--set", "training.max_steps=2"])
    assert result.exit_code == 0, result.output
    child = json.loads((tmp_path / "runs" / "tiny" / artifacts.TRAIN_DIR / artifacts.CKPT_LAST / artifacts.CKPT_META)
                       .read_text())
    assert unseen in child["output_pieces"] and set(meta["output_pieces"]) <= set(child["output_pieces"])
