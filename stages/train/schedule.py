"""Learning-rate schedules: warm-up, then constant, linear decay, inverse square root,
or reduce-on-plateau driven by the dev scores of the validations."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from stages.train.config import TrainConfig


def lr_factor(step: int, cfg: TrainConfig, total_steps: int) -> float:
    """The multiple of `training.lr` at `step` (0-based); `plateau` is warm-up then constant,
    its reductions come from `Plateau.scale`."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    if cfg.schedule in ("constant", "plateau"):
        return warm
    if cfg.schedule == "inverse_sqrt":
        return warm * math.sqrt(max(cfg.warmup_steps, 1) / max(step + 1, cfg.warmup_steps, 1))
    remaining = max(0.0, 1.0 - step / max(total_steps, 1))
    return warm * max(remaining, 0.02)


@dataclass
class Plateau:
    """Reduce-on-plateau: once `training.plateau_patience` validations in a row fail to
    beat the best dev score so far, multiply the learning rate by `training.plateau_factor`,
    never going below `training.min_lr`. The count starts again after each reduction."""

    best: float | None = None
    bad: int = 0  # validations in a row without a better score
    scale: float = 1.0  # the learning rate's multiple after the reductions so far

    def observe(self, score: float, higher_is_better: bool, cfg: TrainConfig) -> bool:
        """Take one validation's score; True when it reduced the learning rate."""
        better = self.best is None or (score > self.best if higher_is_better else score < self.best)
        if better:
            self.best, self.bad = score, 0
            return False
        self.bad += 1
        if self.bad < cfg.plateau_patience:
            return False
        self.bad = 0
        reduced = max(self.scale * cfg.plateau_factor, cfg.min_lr / cfg.lr)
        if reduced >= self.scale:
            return False  # already at training.min_lr
        self.scale = reduced
        return True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "Plateau":
        return cls(**data)


def current_lr(step: int, cfg: TrainConfig, total_steps: int, plateau: Plateau) -> float:
    """The learning rate of `step`: schedule times plateau reductions."""
    return cfg.lr * lr_factor(step, cfg, total_steps) * (plateau.scale if cfg.schedule == "plateau" else 1.0)
