"""`s2s serve`: load the model once and run the app under uvicorn."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from pipeline.api import Translator
from pipeline.serve.app import create_app
from pipeline.serve.limits import ServeLimits
from stages.errors import ConfigError, InputDataError

log = logging.getLogger(__name__)


def read_api_keys(path: Optional[str]) -> frozenset[str]:
    """The keys in `path`, one per line (blank lines and # comments skipped)."""
    if path is None:
        return frozenset()
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputDataError(f"--api-key-file {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputDataError(f"--api-key-file {path}: cannot read it ({exc})") from None
    keys = frozenset(line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#"))
    if not keys:
        raise InputDataError(f"--api-key-file {path}: holds no key; write one key per line")
    return keys


def serve_run(run_dir: Path, *, host: str, port: int, api_key_file: Optional[str], threads: Optional[int],
              overrides: list[str], max_chars: int, max_lines: int, max_file_bytes: int, queue_size: int,
              timeout_s: float, wait_ms: float, **decoding: Any) -> None:
    """Serve `run_dir` until SIGINT/SIGTERM; uvicorn then lets running requests finish and
    the app drains its queue."""
    import torch
    import uvicorn

    keys = read_api_keys(api_key_file)
    limits = ServeLimits(max_chars=max_chars, max_lines=max_lines, max_file_bytes=max_file_bytes,
                         queue_size=queue_size, timeout_s=timeout_s, wait_ms=wait_ms)
    problems = limits.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    if threads:
        torch.set_num_threads(threads)
    translator = Translator.load(run_dir, overrides=overrides, **decoding)
    app = create_app(translator, limits, api_keys=keys)
    log.info("serving %s (%s -> %s) on http://%s:%d/%s", run_dir, *translator.languages, host, port,
             " (API key required)" if keys else "")
    uvicorn.run(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=int(timeout_s) + 5)
