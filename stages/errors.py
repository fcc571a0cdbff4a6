"""The project's exception hierarchy.

Every message names the file and line or the config key, the bad value and the fix.
The command line turns these into exit code 1; any other exception is a bug.
"""

from __future__ import annotations


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
