"""Training progress: the step's losses and throughput, and stop requests by signal."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType, TracebackType
from typing import Any, Callable


class TrainProgress:
    """Target tokens and losses of this invocation, and the train-loss window that each
    validation record reports (carried over a resume)."""

    def __init__(self) -> None:
        self.start, self.tokens = time.perf_counter(), 0
        self.losses: list[float] = []
        self.window_loss, self.window_tokens = 0.0, 0

    def record(self, loss: float, tokens: int) -> None:
        self.tokens += tokens
        self.losses.append(loss)
        self.window_loss += loss * tokens
        self.window_tokens += tokens

    def recent_loss(self) -> float:
        return sum(self.losses[-50:]) / max(1, len(self.losses[-50:]))

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def tokens_per_s(self) -> float:
        return self.tokens / max(self.elapsed(), 1e-9)

    def summary(self) -> dict[str, float]:
        """The record of a validation; starts a new train-loss window."""
        out = {
            "train_loss": round(self.window_loss / max(self.window_tokens, 1), 4),
            "tokens_per_s": round(self.tokens_per_s(), 1),
            "elapsed_s": round(self.elapsed(), 1),
        }
        self.window_loss, self.window_tokens = 0.0, 0
        return out

    def snapshot(self) -> dict[str, Any]:
        return {"window_loss": self.window_loss, "window_tokens": self.window_tokens}

    def restore(self, snapshot: dict[str, Any]) -> None:
        self.window_loss, self.window_tokens = snapshot["window_loss"], snapshot["window_tokens"]


class StopRequest:
    """While active, SIGINT (Ctrl-C) and SIGTERM only set `signal_name`, so that the
    training loop can finish its step, save a resumable state and stop; a second signal
    interrupts at once. Outside the main thread, signals are left alone."""

    def __init__(self) -> None:
        self.signal_name: str | None = None
        self._previous: dict[int, Callable[[int, FrameType | None], Any] | int | None] = {}

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signal_name is not None:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
