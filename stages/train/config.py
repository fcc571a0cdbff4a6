"""The `training` config section, with its range checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stages.checks import at_least_one, not_negative

Metric = Literal["auto", "bleu", "loss"]


@dataclass(frozen=True, kw_only=True)
class TrainConfig:
    batch_type: Literal["tokens", "sentences"] = "tokens"
    batch_tokens: int = 2048
    batch_sentences: int = 64
    pad_multiple: int = 8
    accumulate: int = 1
    epochs: int = 20
    max_steps: int = 2400
    max_minutes: float = 15.0
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = 0.003
    schedule: Literal["constant", "linear", "inverse_sqrt", "plateau"] = "linear"
    warmup_steps: int = 200
    plateau_metric: Metric = "auto"
    plateau_factor: float = 0.5
    plateau_patience: int = 2
    min_lr: float = 1e-5
    clip_norm: float = 1.0
    clip_value: float = 0.0
    label_smoothing: float = 0.1
    valid_every: int = 600
    patience: int = 0
    early_stopping_metric: Metric = "auto"
    keep_best: int = 1
    valid_bleu: bool = True
    max_len: int = 150
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    device: str = "auto"
    threads: int = 0
    tensorboard: bool = True  # TensorBoard event files in train/tensorboard/
    init_from: str = ""  # a run or checkpoint folder whose weights training starts from (fine-tuning)
    log_every: int = 50  # steps between training scalars in those files
    context_dropout: float = 0.0  # chance that a pair's context (data.context) is left out for an epoch
    coword_dropout: float = 0.0  # chance that a piece of a context model's sentence (not its context) is masked
    context_margin: float = 0.0  # nats per target piece a pair must gain from its own context over another's

    def problems(self) -> list[str]:
        """Problems with ranges and combinations of training keys, each naming the keys."""
        return _problems(self)


def _problems(cfg: TrainConfig) -> list[str]:
    problems = at_least_one("training", cfg, ("batch_tokens", "epochs", "max_len", "pad_multiple"))
    if 0 < cfg.batch_tokens < cfg.pad_multiple <= cfg.max_len:
        problems.append(f"training.batch_tokens={cfg.batch_tokens}: must be at least training.pad_multiple "
                        f"({cfg.pad_multiple}); a batch holds thousands of tokens, e.g. 2048")
    elif cfg.pad_multiple > min(cfg.max_len, cfg.batch_tokens) > 0:
        problems.append(f"training.pad_multiple={cfg.pad_multiple}: must be at most training.max_len "
                        f"({cfg.max_len}) and training.batch_tokens ({cfg.batch_tokens}); 8 is the default")
    if cfg.lr <= 0:
        problems.append(f"training.lr={cfg.lr}: must be positive")
    for key in ("plateau_metric", "early_stopping_metric"):
        if getattr(cfg, key) == "bleu" and not cfg.valid_bleu:
            problems.append(
                f"training.{key}=bleu needs dev BLEU, but training.valid_bleu is false; "
                f"set {key}: loss, or valid_bleu: true"
            )
    if not 0 < cfg.plateau_factor < 1:
        problems.append(f"training.plateau_factor={cfg.plateau_factor}: must be between 0 and 1, e.g. 0.5")
    problems += at_least_one("training", cfg, ("plateau_patience", "keep_best", "batch_sentences", "log_every"))
    problems += not_negative("training", cfg, ("min_lr", "max_steps", "max_minutes", "warmup_steps", "clip_norm",
                                               "clip_value", "valid_every", "patience", "threads"))
    if not 0 <= cfg.context_dropout <= 1:
        problems.append(f"training.context_dropout={cfg.context_dropout}: must be in [0, 1], e.g. 0.5 "
                        f"(the chance that a pair's previous lines are left out in an epoch)")
    if not 0 <= cfg.coword_dropout < 1:
        problems.append(f"training.coword_dropout={cfg.coword_dropout}: must be in [0, 1), e.g. 0.1 "
                        f"(the chance that a piece of the sentence after the context is masked)")
    if cfg.context_margin < 0:
        problems.append(f"training.context_margin={cfg.context_margin}: must be 0 (off) or more, e.g. 0.05 "
                        f"(nats per target piece)")
    if not 0 <= cfg.label_smoothing < 1:
        problems.append(f"training.label_smoothing={cfg.label_smoothing}: must be in [0, 1), e.g. 0.1")
    if cfg.accumulate < 1:
        problems.append(f"training.accumulate={cfg.accumulate}: must be at least 1 (batches per optimizer step)")
    from stages.devices import (  # torch: only when the config is checked
        device_problem,
        pick_device,
    )

    device = device_problem("training.device", cfg.device)
    if device:
        problems.append(device)
    elif cfg.precision == "fp16" and pick_device(cfg.device) == "cpu":
        problems.append(f"training.precision=fp16 needs a CUDA device (training.device={cfg.device} runs on the "
                        f"cpu here); use bf16 or fp32")
    return problems
