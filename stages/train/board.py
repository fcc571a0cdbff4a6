"""TensorBoard event files of a training (`train/tensorboard/`), written with PyTorch's
own `torch.utils.tensorboard.SummaryWriter`, beside history.jsonl and `s2s plot`.

Every `training.log_every` steps: train/loss (mean of the last 50 steps), train/lr,
train/tokens_per_s. At each validation: dev/loss, dev/ppl, dev/bleu, train/window_loss
(the loss since the previous validation) and grad_norm/<layer> (per-layer gradient norms
before clipping). A resumed training drops the events written after the step it resumes
from (`purge_step`), as history.jsonl does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from stages import artifacts

_DEV = {"dev_loss": "dev/loss", "dev_ppl": "dev/ppl", "dev_bleu": "dev/bleu", "train_loss": "train/window_loss"}


class TrainingBoard:
    """Writes the scalars; a no-op when `enabled` is false. The event file is opened at
    the first scalar, so a resume that takes no step leaves the folder as it was."""

    def __init__(self, out_dir: Path, enabled: bool, resume_step: Optional[int] = None) -> None:
        self.folder = out_dir / artifacts.TENSORBOARD_DIR
        self.enabled, self.resume_step = enabled, resume_step
        self._writer: Any = None
        if enabled and resume_step is None and self.folder.exists():
            for old in self.folder.glob("events.out.tfevents.*"):  # a training started over
                old.unlink()

    def _open(self) -> Any:
        if self._writer is None:
            # needs the tensorboard package
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(log_dir=str(self.folder), purge_step=self.resume_step, flush_secs=30)
        return self._writer

    def step(self, step: int, loss: float, lr: float, tokens_per_s: float) -> None:
        if not self.enabled:
            return
        writer = self._open()
        writer.add_scalar("train/loss", loss, step)
        writer.add_scalar("train/lr", lr, step)
        writer.add_scalar("train/tokens_per_s", tokens_per_s, step)

    def validation(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        writer, step = self._open(), int(record["step"])
        for key, tag in _DEV.items():
            if key in record:
                writer.add_scalar(tag, float(record[key]), step)
        for layer, norm in record.get("grad_norms", {}).items():
            writer.add_scalar(f"grad_norm/{layer}", float(norm), step)
        writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
