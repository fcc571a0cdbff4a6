"""Config keys added after runs were made (stages/later_keys.py): a run made before a
key existed stays current, and its training can be resumed, while the key holds the
value that reproduces how it ran."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import yaml
from click.testing import CliRunner

from pipeline import orchestrator
from pipeline.cli import main
from pipeline.config import load_config, to_dict
from pipeline.manifest import Manifest, hash_outputs
from stages import artifacts
from stages.later_keys import FIRST_KEYS, LATER_KEYS, earlier_forms, saved_or_earlier
from stages.train.state import config_changes

EARLIER = [f"{s}.{k}={json.dumps(v) if isinstance(v, bool) else v}" for s, k, v in LATER_KEYS]


def _sections(earlier: bool = False, **training: object) -> dict[str, dict]:
    cfg = load_config(None, EARLIER if earlier else [])
    return {"model": to_dict(cfg.model), "decoding": to_dict(cfg.decoding), "data": to_dict(cfg.data),
            "tokenizer": to_dict(cfg.tokenizer),
            "training": {**to_dict(cfg.training), **training}}


def test_earlier_forms_drop_the_newest_keys_while_they_hold_their_earlier_values() -> None:
    forms = earlier_forms(_sections(earlier=True))
    assert len(forms) == 1 + len(LATER_KEYS)
    assert "replace_unk" in forms[-2]["decoding"] and "replace_unk" not in forms[-1]["decoding"]
    # Under the defaults the chain stops at training.pad_multiple: 8, a default that changed
    # how s2s trains (1 before the key), so a training made before it is redone.
    pad = [k for _, k, _ in LATER_KEYS].index("pad_multiple")
    assert len(earlier_forms(_sections())) == 1 + pad
    forms = earlier_forms(_sections())
    assert "context_margin" in forms[0]["training"] and "context_margin" not in forms[1]["training"]
    assert "decoder_self_attention" in forms[1]["model"] and "decoder_self_attention" not in forms[2]["model"]
    assert "context_halves" in forms[2]["data"] and "context_halves" not in forms[3]["data"]
    assert "stopping" in forms[3]["decoding"] and "stopping" not in forms[4]["decoding"]
    assert "target_context" in forms[4]["data"] and "target_context" not in forms[5]["data"]
    assert "coword_dropout" in forms[5]["training"] and "coword_dropout" not in forms[6]["training"]
    assert "context_dropout" not in forms[7]["training"] and forms[7]["training"]["lr"] == forms[0]["training"]["lr"]
    # A run that sets an older later key was made after it existed: no form without it.
    assert len(earlier_forms(_sections(context_dropout=0.5))) == pad
    assert len(earlier_forms({"data": {**_sections()["data"], "target_context": True}})) == 2
    assert len(earlier_forms({"model": {**_sections()["model"], "decoder_self_attention": True}})) == 1
    # Sections a stage does not hash are skipped: the training stage's forms lack decoding.
    assert len(earlier_forms({"data": _sections()["data"]})) == 3
    assert saved_or_earlier("training", "coword_dropout", {}) == 0.0 and saved_or_earlier("training", "lr", {}) is None


def _as_recorded_before_the_later_keys(run: Path) -> None:
    """Rewrite a run folder as s2s recorded it before every later key existed: the
    stages' fingerprints, each over the earlier upstream one, and the training states'
    configs."""
    for state in (run / artifacts.TRAIN_DIR).glob(f"*/{artifacts.CKPT_TRAIN_STATE}"):
        data = json.loads(state.read_text(encoding="utf-8"))
        for section, key, _ in LATER_KEYS:
            data["config"].get(section, {}).pop(key, None)
        state.write_text(json.dumps(data), encoding="utf-8")
    cfg = load_config(run / artifacts.RESOLVED_CONFIG_YAML, [])
    manifest = Manifest.load(run)
    manifest.stage("train")["outputs"] = hash_outputs(run, artifacts.TRAIN_DIR)
    for stage in orchestrator.STAGES:
        sections = {s: to_dict(getattr(cfg, s)) for s in stage.sections}
        for section, key, _ in LATER_KEYS:
            sections.get(section, {}).pop(key, None)
        manifest.stage(stage.name)["fingerprint"] = orchestrator._hash(stage, cfg, manifest, sections,
                                                                       orchestrator._outside_files(stage, cfg))
    manifest.save()


def test_a_run_made_before_the_later_keys_is_current_and_resumable(trained_run: Path, tmp_path: Path) -> None:
    run = tmp_path / "runs" / "tiny"
    shutil.copytree(trained_run.parent / "runs" / "tiny", run)
    config = tmp_path / "tiny.yaml"
    config.write_text(trained_run.read_text(encoding="utf-8").replace(str(trained_run.parent / "runs"),
                                                                        str(tmp_path / "runs")), encoding="utf-8")
    _as_recorded_before_the_later_keys(run)
    result = CliRunner().invoke(main, ["run", str(config), "--until", "tokenize"])
    assert result.output.count("up to date, skipped") == 2, result.output  # tokenizer.from_run: "" as before
    settings = yaml.safe_load(config.read_text(encoding="utf-8"))
    for section, key, earlier in LATER_KEYS:  # every later key at its earlier value
        settings.setdefault(section, {})[key] = earlier
    config.write_text(yaml.safe_dump(settings), encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(config)])
    assert result.exit_code == 0, result.output
    assert result.output.count("up to date, skipped") == len(orchestrator.STAGES), result.output
    assert config_changes(run / artifacts.TRAIN_DIR / artifacts.CKPT_LAST,
                          orchestrator._training_config(load_config(config, []))) == []
    # Set away from its earlier value, a later key is a change like any other.
    changed = load_config(config, ["training.coword_dropout=0.1", "data.context=1"])
    assert "training.coword_dropout: 0.0 -> 0.1" in config_changes(run / artifacts.TRAIN_DIR / artifacts.CKPT_LAST,
                                                                  orchestrator._training_config(changed))
    result = CliRunner().invoke(main, ["run", str(config), "--set", "data.target_context=true", "--set", "data.context=1",
                                       "--until", "prepare"])
    assert result.exit_code == 0 and "[prepare] up to date" not in result.output


def test_every_key_added_to_the_config_is_a_later_key_with_a_valid_earlier_value() -> None:
    cfg = load_config(None, EARLIER)  # the config checks accept every earlier value
    keys = {f"{s}.{k}" for s, section in to_dict(cfg).items() if isinstance(section, dict) for k in section}
    assert keys - FIRST_KEYS == {f"{s}.{k}" for s, k, _ in LATER_KEYS}
    assert all(to_dict(getattr(cfg, s))[k] == v for s, k, v in LATER_KEYS)
