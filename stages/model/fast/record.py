"""Which optimised paths ran: every dispatch point between a fast path and the
reference notes its choice here, and the train and translate stages put the tally in
their summaries, so a run's manifest says which code produced its figures.

A leaf (no torch): a dictionary of counters, one per path name of `stages.model.fast.PATHS`.
"""

from __future__ import annotations

_tally: dict[str, int] = {}


def ran(path: str) -> None:
    """Count one use of `path` (a `FastPath.name` or its `fallback`)."""
    _tally[path] = _tally.get(path, 0) + 1


def reset() -> None:
    _tally.clear()


def tally() -> dict[str, int]:
    """Uses of each path since the last `reset`, by name."""
    return dict(sorted(_tally.items()))
