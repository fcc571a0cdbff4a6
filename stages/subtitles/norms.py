"""Subtitle norms by target language: characters per line and reading speed (characters
per second) for adult programmes, from the Netflix Timed Text Style Guides (the English
template and the per-language guides, partnerhelp.netflixstudios.com), the most widely
followed public specification. Two lines per cue everywhere."""

from __future__ import annotations

# language code -> (characters per line, characters per second)
NORMS: dict[str, tuple[int, float]] = {
    "en": (42, 20.0),
    "ja": (13, 4.0),  # full-width characters
    "ko": (16, 12.0),
    "zh": (16, 9.0),  # Simplified and Traditional
}
DEFAULT = (42, 17.0)  # Spanish, French, German, Italian, Portuguese, Russian, Arabic, ... (Latin, Cyrillic and most other scripts)


def norms_for(language: str) -> tuple[int, float]:
    """(max characters per line, max characters per second) for a target language code
    such as `es` or `zh-Hant` (its first part decides)."""
    return NORMS.get(language.lower().replace("_", "-").split("-")[0], DEFAULT)
