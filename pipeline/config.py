"""Load YAML configs into the stages' frozen dataclasses, with helpful errors.

Unknown keys and wrong types are errors naming the key and the closest valid one;
`--set section.key=value` overrides any key.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import os
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

from stages import artifacts
from stages.corpus.config import DataConfig, TokenizerConfig
from stages.decode.config import DecodeConfig, ScoreConfig
from stages.errors import ConfigError, as_yaml
from stages.model.config import ModelConfig
from stages.train.config import TrainConfig


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    name: str = "default"
    seed: int = 1234
    runs_dir: str = "runs"
    num_proc: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainConfig = field(default_factory=TrainConfig)
    decoding: DecodeConfig = field(default_factory=DecodeConfig)
    scoring: ScoreConfig = field(default_factory=ScoreConfig)


SECTIONS: dict[str, type] = {
    f.name: f.default_factory  # type: ignore[misc]
    for f in dataclasses.fields(RunConfig)
    if f.default_factory is not dataclasses.MISSING
}


def _suggest(key: str, valid: list[str]) -> str:
    if not key:
        return f" (valid keys: {', '.join(valid)})"
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    if not close:  # `lr_rate` -> `lr`: a valid key that the typo starts with, or vice versa
        close = sorted((v for v in valid if key.startswith(v) or v.startswith(key)), key=len, reverse=True)
    if not close:
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.4)
    return f" (did you mean {close[0]!r}?)" if close else f" (valid keys: {', '.join(valid)})"


def _coerce(value: Any, kind: Any, where: str) -> Any:
    """Check `value` against the field type `kind`; return it (ints widen to float)."""
    if get_origin(kind) is Literal:
        choices = get_args(kind)
        if value not in choices:
            hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            extra = f" (did you mean {hint[0]!r}?)" if hint else ""
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(str, choices))}{extra}")
        return value
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {as_yaml(value)}")
        return value
    if kind is int:
        number = _number(value)
        if number is None or number != int(number):
            raise ConfigError(f"{where}: expected an integer, got {as_yaml(value)}")
        return int(number)
    if kind is float:
        number = _number(value)
        if number is None:
            raise ConfigError(f"{where}: expected a number, got {as_yaml(value)}")
        return float(number)
    if kind is str:
        if isinstance(value, bool):
            raise ConfigError(
                f"{where}: got the boolean {value!r}; YAML reads yes/no/on/off as booleans, "
                f"so quote the value (e.g. \"no\")"
            )
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}; quote it in the YAML")
        return value
    raise TypeError(f"unsupported config field type {kind!r} at {where}")


# A number as people write it. YAML 1.1 (PyYAML) reads `3e-3` and `1E5` as strings (its
# floats need a dot), so numeric keys also accept strings of this form.
_NUMBER = re.compile(r"[+-]?(\d[\d_]*(\.[\d_]*)?|\.\d[\d_]*)([eE][+-]?\d+)?")


def _number(value: Any) -> float | int | None:
    """`value` as a number (ints stay ints), or None: booleans, other strings and
    non-finite values are not numbers here."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()) and "__" not in value:
        text = value.strip().replace("_", "")
        value = int(text) if text.lstrip("+-").isdigit() else float(text)
    if isinstance(value, int) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return None


def build_section(cls: type, raw: Any, prefix: str) -> Any:
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{prefix}: expected a mapping of keys, got {raw!r}")
    hints = typing.get_type_hints(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    values = {}
    for key, value in raw.items():
        if key not in valid:
            home = next((name for name, section in SECTIONS.items() if name != prefix and
                         key in {f.name for f in dataclasses.fields(section)}), None)
            if home is not None:
                raise ConfigError(f"{prefix}.{key}: unknown key; {key} is a {home} key: {home}.{key}")
            raise ConfigError(f"{prefix}.{key}: unknown key{_suggest(str(key), valid)}")
        values[key] = _coerce(value, hints[key], f"{prefix}.{key}")
    return cls(**values)


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings; values are parsed as YAML scalars."""
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. decoding.beam_size=10")
        dotted, text = item.split("=", 1)
        parts = dotted.strip().split(".")
        top = [f.name for f in dataclasses.fields(RunConfig)]
        if not parts[0]:
            raise ConfigError(f"--set {item!r}: no key before '='; expected section.key=value, e.g. "
                              f"decoding.beam_size=10")
        if parts[0] not in top:
            raise ConfigError(f"--set {item!r}: {parts[0]}: unknown key{_suggest(parts[0], top)}")
        try:
            value = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(f"--set {item!r}: value is not valid YAML ({exc})") from exc
        if len(parts) == 1:
            if parts[0] in SECTIONS:
                raise ConfigError(f"--set {item!r}: {parts[0]} is a section, and setting it whole would drop the "
                                  f"config file's other {parts[0]} keys; set one key at a time: "
                                  f"--set {parts[0]}.KEY=VALUE")
            raw[parts[0]] = value
        elif len(parts) == 2:
            section = raw.setdefault(parts[0], {})
            if not isinstance(section, dict):
                raise ConfigError(f"--set {item!r}: {parts[0]} is not a section")
            section[parts[1]] = value
        else:
            raise ConfigError(f"--set {item!r}: expected section.key=value (one dot)")
    return raw


def _named_loader(path: Path) -> type[yaml.SafeLoader]:
    return type("_Loader", (_UniqueKeyLoader,), {"name_of_file": str(path)})


class _UniqueKeyLoader(yaml.SafeLoader):
    """yaml.safe_load, but a key given twice in one mapping is an error naming its line
    (PyYAML alone keeps the last, so a repeated section silently drops the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            where = getattr(self, "name_of_file", self.name)
            if isinstance(key, (list, dict, set)):
                raise ConfigError(f"{where}:{key_node.start_mark.line + 1}: a key must be a name, not a "
                                  f"{ {dict: 'mapping', set: 'set'}.get(type(key), 'list')}; write `key: value`")
            if key in seen:
                raise ConfigError(f"{where}:{key_node.start_mark.line + 1}: {key!r} is given twice (first on "
                                  f"line {seen[key]}); give each key once")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load_config(path: Path | None = None, overrides: list[str] | None = None) -> RunConfig:
    """Read a YAML config (or the built-in defaults when `path` is None)."""
    raw: Any = {}
    where = "config"
    if path is not None:
        where = str(path)
        if not path.exists():
            raise ConfigError(f"{path}: config file not found")
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_named_loader(path))  # noqa: S506
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f":{mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"{path}{line}: not valid YAML ({getattr(exc, 'problem', exc)})") from exc
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc})") from exc
        if raw is None:
            raise ConfigError(f"{path}: the config file is empty (or only comments); give it at least a "
                              f"`name:`, or run without CONFIG for the built-in default")
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: expected a mapping of sections at the top level")
    raw = apply_overrides(dict(raw), overrides or [])
    hints = typing.get_type_hints(RunConfig)
    valid = [f.name for f in dataclasses.fields(RunConfig)]
    values: dict[str, Any] = {}
    for key, value in raw.items():
        if key not in valid:
            raise ConfigError(f"{where}: {key}: unknown key{_suggest(str(key), valid)}")
        if key in SECTIONS:
            values[key] = build_section(SECTIONS[key], value, key)
        else:
            values[key] = _coerce(value, hints[key], key)
    cfg = RunConfig(**values)
    checkpoint = cfg.decoding.checkpoint
    if checkpoint and checkpoint not in artifacts.RUN_CHECKPOINTS:  # a folder: one spelling, kept with the run
        folder = str(Path(checkpoint).expanduser().absolute())
        cfg = dataclasses.replace(cfg, decoding=dataclasses.replace(cfg.decoding, checkpoint=os.path.normpath(folder)))
    if cfg.training.init_from and not cfg.tokenizer.from_run:  # fine-tuning keeps the parent's tokenizer
        cfg = dataclasses.replace(cfg, tokenizer=dataclasses.replace(cfg.tokenizer, from_run=cfg.training.init_from))
    problems = validate(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
    return cfg


def validate(cfg: RunConfig) -> list[str]:
    """Every section's own range checks, then the checks that span sections."""
    problems = [p for name in SECTIONS for p in getattr(cfg, name).problems()]
    if cfg.model.share_embeddings and not cfg.tokenizer.joint:
        problems.append(
            "model.share_embeddings=true shares one embedding matrix between the languages, which needs "
            "one vocabulary: set tokenizer.joint: true or model.share_embeddings: false"
        )
    acts_on = {"context_dropout": "the previous lines a context model reads",
               "coword_dropout": "the sentence behind a context model's separator",
               "context_margin": "how much a context model's previous lines must matter"}
    if cfg.training.context_margin > 0 and cfg.training.context_dropout >= 1:
        problems.append(f"training.context_margin={cfg.training.context_margin} compares each pair's own context "
                        f"with another's, but training.context_dropout=1 drops every context; lower "
                        f"training.context_dropout or set training.context_margin: 0")
    for key, what in acts_on.items():
        if getattr(cfg.training, key) > 0 and cfg.data.context == 0:
            problems.append(f"training.{key}={getattr(cfg.training, key)} acts on {what}, but data.context is 0; "
                            f"set data.context: 1 or training.{key}: 0")
    if cfg.data.target_context:
        problems += _dev_loss_problems(cfg)
        if cfg.training.context_margin > 0:
            problems.append(f"training.context_margin={cfg.training.context_margin} swaps the previous source lines "
                            f"between pairs, but with data.target_context each target holds its own previous "
                            f"lines' translation; set data.target_context: false or training.context_margin: 0")
    if not 0 <= cfg.seed < 2**32:
        problems.append(f"seed={cfg.seed}: must be a whole number from 0 to {2**32 - 1} (the tokenizer's and "
                        f"training's random generators take 32 bits), e.g. 1234")
    if cfg.num_proc < 0:
        problems.append(f"num_proc={cfg.num_proc}: must be 0 (one process per core for large corpora) or more")
    if not cfg.name or "/" in cfg.name or "\\" in cfg.name or cfg.name in (".", ".."):
        problems.append(f"name={cfg.name!r}: must be a folder name (not empty, '.' or '..', no '/')")
    return problems


def _dev_loss_problems(cfg: RunConfig) -> list[str]:
    """A run with data.target_context scores its dev loss on the plain dev references,
    without the previous lines' translation the model writes first, so the loss does not
    follow the model's quality: nothing may be chosen by it."""
    t = cfg.training
    uses = []
    if not t.valid_bleu:
        uses.append("training.valid_bleu=false (the best checkpoint is then chosen by dev loss)")
    for key, active in (("plateau_metric", t.schedule == "plateau"), ("early_stopping_metric", t.patience > 0)):
        metric = getattr(t, key)
        if active and (metric == "loss" or (metric == "auto" and not t.valid_bleu)):
            uses.append(f"training.{key}={metric} (dev loss)")
    return [f"data.target_context=true: {use} cannot work, as such a run's dev loss is measured on plain dev "
            f"targets without the previous lines' translation; set training.valid_bleu: true and leave "
            f"training.plateau_metric/early_stopping_metric at bleu or auto" for use in uses]


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def section_hash(data: Any) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode("utf-8")).hexdigest()


def dump_yaml(cfg: RunConfig) -> str:
    return yaml.safe_dump(to_dict(cfg), sort_keys=False, allow_unicode=True)
