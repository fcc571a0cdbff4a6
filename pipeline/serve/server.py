"""`s2s serve`: load the model once, run the HTTP app under uvicorn in a thread, and the
model's worker in the main thread (bench/bench_threads.py measures why)."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Optional, Sequence

from pipeline.api import Translator
from pipeline.serve.app import create_app, make_batcher
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


def serve_run(run_dir: Path | list[Path], *, host: str, port: int, api_key_file: Optional[str], threads: Optional[int],
              overrides: list[str], limits: ServeLimits, cors_origins: Sequence[str] = (), **decoding: Any) -> None:
    """Serve `run_dir` until SIGINT/SIGTERM: then uvicorn stops taking connections, lets
    the requests in flight finish, and the worker drains the queue before the process ends."""
    import torch
    import uvicorn

    keys = read_api_keys(api_key_file)
    problems = limits.problems()
    if problems:
        raise ConfigError("; ".join(problems))
    if threads:
        torch.set_num_threads(threads)
    translator = Translator.load(run_dir, overrides=overrides, **decoding)
    batcher = make_batcher(translator, limits)
    app = create_app(translator, limits, api_keys=keys, batcher=batcher, cors_origins=cors_origins)
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info",
                                           timeout_graceful_shutdown=int(max(limits.timeout_s, limits.file_timeout_s)) + 5))
    http = threading.Thread(target=server.run, name="s2s-http")

    def stop(signum: int, _: Optional[FrameType]) -> None:
        log.info("%s: finishing the requests in flight, then stopping", signal.Signals(signum).name)
        server.should_exit = True

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    log.info("serving %s (%s -> %s) on http://%s:%d/%s", run_dir, *translator.languages, host, port,
             " (API key required)" if keys else "")
    def close_after_http() -> None:  # uvicorn failing to start (a port in use) also ends the worker
        http.join()
        batcher.close()

    http.start()
    threading.Thread(target=close_after_http, daemon=True).start()
    batcher.serve_forever()
    http.join()
    if not server.started:
        raise ConfigError(f"could not listen on {host}:{port} (see the message above); check --host and --port")
