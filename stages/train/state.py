"""The resumable state of a training run, kept in the `last` checkpoint folder.

Besides the weights, `train/last/` holds `optimizer.safetensors` (the optimizer's
tensors), `rng.safetensors` (torch's CPU and CUDA generator states, dropout's included)
and `train_state.json`: the step, the place in the batch order (epoch, batches done,
the numpy generator's state at the epoch's start), python's random state, the fp16 grad
scaler, the plateau and best-checkpoint bookkeeping, and the config the run was trained
with. A resumed run restores all of it, so it ends with the weights an uninterrupted
run would have reached.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from stages import artifacts
from stages.errors import ArtifactError, ConfigError, as_yaml
from stages.later_keys import saved_or_earlier
from stages.model.checkpoint import read_tensors, save_weights
from stages.train.schedule import Plateau

STATE_VERSION = 1

# Sections a resume must find unchanged: the weights and the data only fit them.
FIXED_SECTIONS = ("seed", "data", "tokenizer", "model")
# Training keys a resume must find unchanged: the optimizer state and the batch order depend on them.
FIXED_TRAINING_KEYS = ("optimizer", "batch_type", "batch_tokens", "batch_sentences", "accumulate", "max_len",
                       "pad_multiple", "context_dropout", "coword_dropout")
# Training keys that set the coming learning rates: changing them needs `allow_lr_change`.
LR_KEYS = ("lr", "schedule", "warmup_steps", "plateau_metric", "plateau_factor", "plateau_patience", "min_lr")


@dataclass(frozen=True, kw_only=True)
class ResumeOptions:
    """How to resume: `allow_lr_change` accepts changed learning-rate keys (LR_KEYS)."""

    allow_lr_change: bool = False


@dataclass
class LoopState:
    """Where the training loop stands; everything in it is JSON."""

    step: int = 0
    epoch: int = 1
    batch_in_epoch: int = 0  # batches of this epoch already trained on
    epoch_rng: dict[str, Any] = field(default_factory=dict)  # numpy generator state at the epoch's start
    steps_per_epoch: int = 0  # batches in the first epoch (sets the step limit when max_steps is 0)
    plateau: Plateau = field(default_factory=Plateau)
    dev_scores: dict[str, list[float]] = field(default_factory=dict)  # dev_loss/dev_bleu of each validation
    keeper: dict[str, Any] = field(default_factory=dict)  # CheckpointKeeper.snapshot()
    progress: dict[str, Any] = field(default_factory=dict)  # the train-loss window since the last validation

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "plateau": self.plateau.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "LoopState":
        return cls(**{**data, "plateau": Plateau.from_json(data["plateau"])})


def save_train_state(
    folder: Path, optimizer: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
    loop: LoopState, config: dict[str, Any],
) -> None:
    """Write the optimizer, RNG and loop state into `folder` (a checkpoint being built)."""
    tensors, optimizer_meta = _split_optimizer(optimizer)
    save_weights(tensors, folder / artifacts.CKPT_OPTIMIZER)
    rng = {"torch_cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng.update({f"torch_cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    save_weights(rng, folder / artifacts.CKPT_RNG)
    version, internal, gauss = random.getstate()
    state = {
        "format_version": STATE_VERSION,
        "config": config,
        "loop": loop.to_json(),
        "optimizer": optimizer_meta,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "python_random": [version, list(internal), gauss],
    }
    (folder / artifacts.CKPT_TRAIN_STATE).write_text(json.dumps(state) + "\n", encoding="utf-8")


@dataclass
class SavedTraining:
    """A training state read back from a checkpoint folder."""

    folder: Path
    config: dict[str, Any]
    loop: LoopState
    optimizer: dict[str, Any]  # for Optimizer.load_state_dict
    scaler: dict[str, Any] | None
    rng: dict[str, torch.Tensor]
    python_random: list[Any]

    def restore_rngs(self) -> None:
        torch.set_rng_state(self.rng["torch_cpu"])
        cuda = [self.rng[k] for k in sorted(self.rng) if k.startswith("torch_cuda.")]
        if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda)
        version, internal, gauss = self.python_random
        random.setstate((version, tuple(internal), gauss))


def read_train_config(folder: Path) -> dict[str, Any]:
    """The config recorded with the training state in `folder` (raises when there is none)."""
    path = folder / artifacts.CKPT_TRAIN_STATE
    if not path.exists():
        best = folder.parent / artifacts.CKPT_BEST / artifacts.CKPT_META
        if best.exists() or (folder.parent / artifacts.HISTORY).exists():
            raise ArtifactError(f"{path}: missing, although the training validated ({best.parent} or the history "
                                f"is there): the last checkpoint was removed or damaged; train without --resume, "
                                f"or restore {folder} from a copy")
        raise ArtifactError(
            f"{path}: no training state to resume from (training never reached a validation "
            f"or an interruption in this run folder); train without --resume"
        )
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{path}: not valid JSON ({exc}); the training state is damaged: train without "
                            f"--resume, or restore the run folder from a copy") from exc
    if not isinstance(data, dict) or data.get("format_version") != STATE_VERSION:
        version = data.get("format_version") if isinstance(data, dict) else None
        raise ArtifactError(
            f"{path}: training state format {version!r}, this version reads "
            f"{STATE_VERSION}; train without --resume"
        )
    return data


def load_train_state(folder: Path) -> SavedTraining:
    data = read_train_config(folder)
    tensors = read_tensors(folder / artifacts.CKPT_OPTIMIZER)
    return SavedTraining(
        folder=folder, config=data["config"], loop=LoopState.from_json(data["loop"]),
        optimizer=_join_optimizer(tensors, data["optimizer"]), scaler=data["scaler"],
        rng=read_tensors(folder / artifacts.CKPT_RNG), python_random=data["python_random"],
    )


def config_changes(folder: Path, config: dict[str, Any]) -> list[str]:
    """`key: old -> new` for each key of `config` (seed, data, tokenizer, model,
    training) that differs from the one the training state in `folder` was saved
    with; [] when there is no readable training state there."""
    try:
        saved = read_train_config(folder)["config"]
    except (ArtifactError, KeyError, TypeError):
        return []
    return section_changes(saved, config, (*FIXED_SECTIONS, "training"))


def section_changes(saved: dict[str, Any], config: dict[str, Any], sections: tuple[str, ...]) -> list[str]:
    """`key: old -> new` (values as YAML) for each key of `config`'s `sections` (a
    section, or a top-level value such as the seed) that differs from `saved`; a later
    key that `saved` lacks holds its earlier value (`stages.later_keys`)."""
    return [f"{key}: {as_yaml(old)} -> {as_yaml(new)}"
            for section in sections for key, old, new in _changes(saved.get(section), config.get(section), section)]


def check_resume(folder: Path, config: dict[str, Any], options: ResumeOptions) -> None:
    """Refuse to resume the training saved in `folder` under a config that does not fit it.

    `config` holds `seed` and the `data`, `tokenizer`, `model` and `training` sections.
    """
    saved = read_train_config(folder)["config"]
    where = f"since the checkpoint in {folder}"
    for section in FIXED_SECTIONS:
        for key, old, new in _changes(saved.get(section) or {}, config.get(section) or {}, section):
            raise ConfigError(
                f"{key} changed from {as_yaml(old)} to {as_yaml(new)} {where}; resuming needs the run's own "
                f"{section} settings: set it back, or train from scratch without --resume"
            )
    old_train, new_train = saved["training"], config["training"]
    for name in FIXED_TRAINING_KEYS:
        before = saved_or_earlier("training", name, old_train)
        if before != new_train[name]:
            raise ConfigError(
                f"training.{name} changed from {as_yaml(before)} to {as_yaml(new_train[name])} {where}; "
                f"the optimizer state and the batch order depend on it: set it back, or train "
                f"from scratch without --resume"
            )
    if options.allow_lr_change:
        return
    for name in _lr_keys(old_train) | _lr_keys(new_train):
        if old_train.get(name) != new_train[name]:
            raise ConfigError(
                f"training.{name} changed from {as_yaml(old_train.get(name))} to {as_yaml(new_train[name])} {where}, "
                f"which changes the learning rate of the coming steps; pass --allow-lr-change to "
                f"resume with the new value, or set it back"
            )


def _lr_keys(training: dict[str, Any]) -> set[str]:
    """LR_KEYS, plus the keys that set the length of a linear schedule."""
    if training.get("schedule") != "linear":
        return set(LR_KEYS)
    return set(LR_KEYS) | ({"max_steps"} if training.get("max_steps") else {"max_steps", "epochs"})


def _changes(old: Any, new: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    if not isinstance(new, dict):
        return [] if old == new else [(prefix, old, new)]
    old = old if isinstance(old, dict) else {}
    return [(f"{prefix}.{k}", saved_or_earlier(prefix, k, old), v) for k, v in new.items()
            if saved_or_earlier(prefix, k, old) != v]


def _split_optimizer(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer state dict as safetensors tensors (`<param>.<name>`) plus JSON."""
    state_dict = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, values in state_dict["state"].items():
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state_dict["param_groups"], "scalars": scalars}


def _join_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *meta["scalars"].items()]:
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}
