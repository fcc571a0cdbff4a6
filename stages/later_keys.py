"""Config keys added after runs were made with s2s, and the value of each that
reproduces how s2s ran before the key existed.

A run folder records its config in stage fingerprints (the manifest) and in its training
state (resume). A run made before a key existed has neither the key nor its value there;
with the key at this value the run is the same as it was, so it stays current and can be
resumed. A leaf: it imports nothing.
"""

from __future__ import annotations

from typing import Any

# (section, key, value before the key existed), the newest first.
LATER_KEYS: tuple[tuple[str, str, Any], ...] = (
    ("model", "decoder_self_attention", False),
    ("data", "context_halves", False),
    ("decoding", "stopping", "bound"),
    ("data", "target_context", False),
    ("training", "coword_dropout", 0.0),
    ("training", "context_dropout", 0.0),
)


def earlier_forms(sections: dict[str, dict[str, Any]]) -> list[dict[str, dict[str, Any]]]:
    """`sections` (config sections by name) as runs made before each later key recorded
    them: without the newest key, then without the two newest, ... for as long as those
    keys hold their earlier value. The first is `sections` itself."""
    forms = [sections]
    for section, key, before in LATER_KEYS:
        last = forms[-1]
        if section not in last:
            continue
        if last[section].get(key, before) != before:
            break
        forms.append({**last, section: {k: v for k, v in last[section].items() if k != key}})
    return forms


def saved_or_earlier(section: str, key: str, saved: dict[str, Any]) -> Any:
    """The value a saved config section holds for `key`; for a later key that it lacks,
    the value it had in effect (None for any other missing key)."""
    if key in saved:
        return saved[key]
    return next((before for s, k, before in LATER_KEYS if (s, k) == (section, key)), None)
