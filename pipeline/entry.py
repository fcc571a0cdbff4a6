"""The `s2s` command's entry point. Importing the CLI loads PyTorch, seconds on a busy
machine; a Ctrl-C in that time ends as one during a command does (`Aborted!`, exit 1),
not with the import's traceback."""

from __future__ import annotations

import sys


def main() -> None:
    try:
        from pipeline.cli import main as cli
    except KeyboardInterrupt:
        sys.stderr.write("Aborted!\n")
        raise SystemExit(1) from None
    cli()
