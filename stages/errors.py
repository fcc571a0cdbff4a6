"""The project's exception hierarchy.

Every message names the file and line or the config key, the bad value and the fix.
The command line turns these into exit code 1; any other exception is a bug.
"""

from __future__ import annotations

from typing import Any


class S2SError(Exception):
    """Base class of every error a user can cause and fix."""


class ConfigError(S2SError):
    """A config key is unknown, has the wrong type or an impossible value."""


class InputDataError(S2SError):
    """An input file is missing, unreadable, misaligned or empty."""


class OutputError(S2SError):
    """An output cannot be written: a missing or read-only folder, a full disk, a file-size limit."""


class ArtifactError(S2SError):
    """A run artifact (checkpoint, tokenizer, manifest) is missing or inconsistent."""


class TrainingInterrupted(S2SError):
    """Training stopped on SIGINT or SIGTERM after saving a state it can resume from."""


def as_yaml(value: Any) -> str:
    """A config value as a user writes it in YAML, for messages: true, null, 0.5, [1, 2],
    abc, '' (Python's True, None or quotes would not match the config file)."""
    import yaml  # a message only: not worth the import for every user of this module

    try:
        return yaml.safe_dump(value, default_flow_style=True, width=10**9).removesuffix("\n...\n").strip()
    except yaml.YAMLError:
        return repr(value)
