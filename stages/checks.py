"""Range checks for config sections: each returns the problems it finds as messages
that name the key, the bad value and the allowed range (`section.key=0: must be at
least 1`). Every config dataclass's `problems()` is built from these."""

from __future__ import annotations

from typing import Any, Iterable


def at_least_one(section: str, cfg: Any, keys: Iterable[str]) -> list[str]:
    return [f"{section}.{k}={getattr(cfg, k)}: must be at least 1" for k in keys if getattr(cfg, k) < 1]


def not_negative(section: str, cfg: Any, keys: Iterable[str]) -> list[str]:
    """For keys where 0 means off, none or no limit."""
    return [f"{section}.{k}={getattr(cfg, k)}: must be 0 or more" for k in keys if getattr(cfg, k) < 0]


def in_range(section: str, cfg: Any, key: str, low: float, low_in: bool, high: float, high_in: bool,
             example: str) -> list[str]:
    """`low`/`high` bound the value, included when `low_in`/`high_in`."""
    value = getattr(cfg, key)
    if value < low or (value == low and not low_in) or value > high or (value == high and not high_in):
        bounds = f"{'[' if low_in else '('}{low:g}, {high:g}{']' if high_in else ')'}"
        return [f"{section}.{key}={value}: must be in {bounds}, e.g. {example}"]
    return []
