from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pipeline.config import RunConfig, load_config, to_dict
from stages.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_file() -> None:
    cfg = load_config(None)
    assert cfg == RunConfig()
    assert cfg.model.cell == "lstm"


def test_unknown_key_suggests_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"training\.lr_rate: unknown key \(did you mean 'lr'\?\)"):
        load_config(write(tmp_path, "training:\n  lr_rate: 0.1\n"))


def test_unknown_section_suggests_closest(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"trainig: unknown key \(did you mean 'training'\?\)"):
        load_config(write(tmp_path, "trainig:\n  lr: 0.1\n"))


def test_wrong_type_names_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"decoding\.beam_size: expected an integer, got five$"):
        load_config(write(tmp_path, "decoding:\n  beam_size: five\n"))


def test_yaml_no_for_string_asks_to_quote(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"data\.tgt_lang: got the boolean False.*quote"):
        load_config(write(tmp_path, "data:\n  tgt_lang: no\n"))


def test_choice_suggests(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model\.cell: 'lstn' is not one of rnn, gru, lstm \(did you mean 'lstm'\?\)"):
        load_config(write(tmp_path, "model:\n  cell: lstn\n"))


def test_int_widens_to_float(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "training:\n  lr: 1\n")).training.lr == 1.0


def test_overrides() -> None:
    cfg = load_config(None, ["decoding.beam_size=10", "model.cell=gru", "name=x"])
    assert (cfg.decoding.beam_size, cfg.model.cell, cfg.name) == (10, "gru", "x")
    with pytest.raises(ConfigError, match="expected section.key=value"):
        load_config(None, ["decoding.beam_size"])
    with pytest.raises(ConfigError, match=r"decoding\.beam_sise: unknown key \(did you mean 'beam_size'\?\)"):
        load_config(None, ["decoding.beam_sise=3"])
    with pytest.raises(ConfigError, match=r"--set 'decodng.beam_size=3': decodng: unknown key \(did you mean 'decoding'"):
        load_config(None, ["decodng.beam_size=3"])  # named as the option it came from, not as the config file
    with pytest.raises(ConfigError, match=r"--set '=3': no key before '='"):
        load_config(None, ["=3"])


def test_impossible_combination_names_both_keys() -> None:
    with pytest.raises(ConfigError, match=r"model\.tie_embeddings.*model\.embedding_size \(256\).*model\.decoder_hidden \(512\)"):
        load_config(None, ["model.tie_embeddings=true"])
    with pytest.raises(ConfigError, match=r"luong_dot.*model\.decoder_hidden"):
        load_config(None, ["model.attention=luong_dot", "model.decoder_hidden=300"])


def test_range_checks() -> None:
    with pytest.raises(ConfigError, match=r"decoding\.beam_size=0: must be at least 1"):
        load_config(None, ["decoding.beam_size=0"])


@pytest.mark.parametrize("override,message", [
    ("data.context=-1", r"data\.context=-1: must be 0 or more"),
    ("data.dev_size=0", r"data\.dev_size=0: must be at least 1"),
    ("data.max_ratio=0.5", r"data\.max_ratio=0\.5: must be in \[1, inf\)"),
    ("tokenizer.character_coverage=0", r"tokenizer\.character_coverage=0\.0: must be in \(0, 1\]"),
    ("tokenizer.character_coverage=1.5", r"tokenizer\.character_coverage=1\.5: must be in \(0, 1\]"),
    ("training.label_smoothing=1", r"training\.label_smoothing=1\.0: must be in \[0, 1\)"),
    ("training.max_steps=-5", r"training\.max_steps=-5: must be 0 or more"),
    ("training.keep_best=0", r"training\.keep_best=0: must be at least 1"),
    ("training.clip_norm=-1", r"training\.clip_norm=-1\.0: must be 0 or more"),
    ("decoding.max_len_ratio=0", r"decoding\.max_len_ratio=0\.0: must be in \(0, inf\)"),
    ("decoding.min_len=-2", r"decoding\.min_len=-2: must be 0 or more"),
])
def test_out_of_range_values_name_the_key_and_the_range(override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_range_edges_that_mean_off_or_no_limit_load() -> None:
    load_config(None, ["data.context=0", "training.max_steps=0", "training.max_minutes=0", "training.clip_norm=0",
                       "training.valid_every=0", "training.label_smoothing=0", "data.max_ratio=1",
                       "tokenizer.character_coverage=1", "decoding.length_penalty=0"])


def test_fp16_decoding_on_the_cpu_is_refused_at_load() -> None:
    with pytest.raises(ConfigError, match=r"decoding\.precision=fp16 needs a CUDA device.*bf16 or fp32"):
        load_config(None, ["decoding.precision=fp16", "decoding.device=cpu"])
    assert load_config(None, ["decoding.precision=bf16", "decoding.device=cpu"]).decoding.precision == "bf16"


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml:2: not valid YAML"):
        load_config(write(tmp_path, "model:\n\tcell: lstm\n"))


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_example_configs_load(path: Path) -> None:
    load_config(path)


def test_default_yaml_shows_every_key_with_its_default() -> None:
    shown = yaml.safe_load((ROOT / "configs" / "default.yaml").read_text(encoding="utf-8"))
    assert shown == to_dict(RunConfig())


@pytest.mark.parametrize("written,value", [("3e-3", 0.003), ("1E-3", 0.001), (".5e-2", 0.005), ("+2.5e-3", 0.0025),
                                           ("0.003", 0.003), ("1_000e-6", 0.001), ("3", 3.0)])
def test_floats_as_people_write_them_in_a_file_and_in_set(tmp_path: Path, written: str, value: float) -> None:
    assert load_config(write(tmp_path, f"training:\n  lr: {written}\n")).training.lr == pytest.approx(value)
    assert load_config(None, [f"training.lr={written}"]).training.lr == pytest.approx(value)
    assert load_config(None, [f"decoding.length_penalty={written}"]).decoding.length_penalty == pytest.approx(value)


@pytest.mark.parametrize("written,value", [("1_000", 1000), ("1e4", 10000), ("2.4E3", 2400), ("12", 12)])
def test_integers_as_people_write_them(tmp_path: Path, written: str, value: int) -> None:
    cfg = load_config(write(tmp_path, f"training:\n  max_steps: {written}\n"))
    assert cfg.training.max_steps == value and type(cfg.training.max_steps) is int
    assert load_config(None, [f"training.max_steps={written}"]).training.max_steps == value


@pytest.mark.parametrize("written", ["1.5", "'ten'", "1e", "nan", ".inf", "true", "1e-3"])
def test_what_is_not_an_integer_is_refused(tmp_path: Path, written: str) -> None:
    with pytest.raises(ConfigError, match=r"training\.max_steps: expected an integer"):
        load_config(write(tmp_path, f"training:\n  max_steps: {written}\n"))


@pytest.mark.parametrize("written", ["'three'", "nan", ".inf", "yes", "3e", "e3"])
def test_what_is_not_a_number_is_refused(tmp_path: Path, written: str) -> None:
    with pytest.raises(ConfigError, match=r"training\.lr: expected a number"):
        load_config(write(tmp_path, f"training:\n  lr: {written}\n"))


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n"])
def test_an_empty_config_file_is_refused(tmp_path: Path, text: str) -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml: the config file is empty"):
        load_config(write(tmp_path, text))


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"c\.yaml:3: 'training' is given twice \(first on line 1\)"):
        load_config(write(tmp_path, "training:\n  lr: 0.1\ntraining:\n  max_steps: 5\n"))
    with pytest.raises(ConfigError, match=r"c\.yaml:3: 'lr' is given twice"):
        load_config(write(tmp_path, "training:\n  lr: 0.1\n  lr: 0.2\n"))


@pytest.mark.parametrize("name", [".", "..", "", "a/b"])
def test_run_names_that_are_not_a_folder_of_their_own_are_refused(name: str) -> None:
    with pytest.raises(ConfigError, match=r"name=.*must be a folder name"):
        load_config(None, [f"name='{name}'"])


@pytest.mark.parametrize("key", ["training.device", "decoding.device"])
@pytest.mark.parametrize("value", ["gpu", "cuda:x", "meta"])
def test_a_device_s2s_cannot_run_on_is_refused_when_the_config_loads(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=rf"{key}={value}: not a device s2s runs on; use auto, cpu, cuda or cuda:N"):
        load_config(None, [f"{key}={value}"])


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="a GPU is visible")
def test_cuda_without_a_gpu_and_fp16_on_the_cpu_are_refused_when_the_config_loads() -> None:
    with pytest.raises(ConfigError, match=r"training\.device=cuda: no CUDA GPU is visible"):
        load_config(None, ["training.device=cuda"])
    with pytest.raises(ConfigError, match=r"training\.precision=fp16 needs a CUDA device \(training\.device=auto"):
        load_config(None, ["training.precision=fp16"])


def test_messages_write_values_as_yaml() -> None:
    from stages.errors import as_yaml

    assert [as_yaml(v) for v in (True, None, 0.5, [1, 2], "abc", "", "yes")] == \
        ["true", "null", "0.5", "[1, 2]", "abc", "''", "'yes'"]
    with pytest.raises(ConfigError, match="expected true or false, got null$"):
        load_config(None, ["model.decoder_self_attention=null"])
