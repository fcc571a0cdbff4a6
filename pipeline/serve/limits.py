"""What one `s2s serve` accepts: request sizes, the queue, time limits."""

from __future__ import annotations

from dataclasses import dataclass

from stages.checks import at_least_one, in_range


@dataclass(frozen=True, kw_only=True)
class ServeLimits:
    max_chars: int = 20000  # characters of text per /translate request (all of q)
    max_lines: int = 500  # strings in q per request
    max_file_bytes: int = 2_000_000  # bytes of an upload to /translate_file
    queue_size: int = 64  # requests waiting for the model; more get 503
    timeout_s: float = 60.0  # a /translate request not answered by then gets 503
    file_timeout_s: float = 600.0  # the same for /translate_file
    wait_ms: float = 10.0  # a batch takes requests arriving less than this apart ...
    max_wait_ms: float = 50.0  # ... for at most this long ...
    batch_lines: int = 128  # ... or until it holds this many lines
    max_alternatives: int = 5  # n-best alternatives per line (also capped at the beam size)

    def problems(self) -> list[str]:
        return (at_least_one("serve", self, ("max_chars", "max_lines", "max_file_bytes", "queue_size",
                                             "batch_lines"))
                + in_range("serve", self, "timeout_s", 0.0, False, float("inf"), False, "60")
                + in_range("serve", self, "file_timeout_s", 0.0, False, float("inf"), False, "600")
                + in_range("serve", self, "wait_ms", 0.0, True, 1000.0, True, "5")
                + in_range("serve", self, "max_wait_ms", 0.0, True, 10000.0, True, "50"))
