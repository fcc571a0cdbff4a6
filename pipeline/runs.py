"""Where a run lives, in one place: every command that takes a run goes through `find_run`."""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Iterator, Optional

from pipeline.config import RunConfig, load_config
from stages import artifacts
from stages.errors import ArtifactError
from stages.files import write_error

DEFAULT_RUNS_DIR = "runs"  # RunConfig.runs_dir's default
LOCK = ".lock"  # in the run folder: held (flock) by the one command writing the run


def run_dir_of(cfg: RunConfig) -> Path:
    """`runs_dir/name` of a config: where its run writes."""
    return Path(cfg.runs_dir) / cfg.name


def config_file(ref: str) -> Optional[Path]:
    """`ref` as a run's YAML config file, None when it names a folder or a run."""
    path = Path(ref)
    return path if path.suffix.lower() in (".yaml", ".yml") and path.is_file() else None


def find_run(ref: str, runs_dir: Optional[str] = None, needs: str = artifacts.TRAIN_DIR) -> Path:
    """The run folder that `ref` names, holding `needs` (a stage folder or the manifest).

    `ref` is a run folder, a run name under `runs_dir` (default `runs`), or the YAML
    config the run was made with (its `runs_dir`, or `runs_dir` when given, and its
    `name` say where the run is).
    """
    path = Path(ref)
    if config_file(ref):
        cfg = load_config(path)
        candidates = [Path(runs_dir) / cfg.name] if runs_dir else [run_dir_of(cfg)]
    elif path.suffix.lower() in (".yaml", ".yml") and not path.exists():
        raise ArtifactError(f"{ref}: no such config file; give a run folder, a run name or the run's config file")
    else:
        candidates = [path, Path(runs_dir or DEFAULT_RUNS_DIR) / ref]
    for candidate in candidates:
        if (candidate / needs).exists():
            return candidate
    looked = " and ".join(os.path.abspath(c / needs) for c in dict.fromkeys(candidates))
    what = "no trained run" if needs == artifacts.TRAIN_DIR else f"no {needs}"
    raise ArtifactError(f"{ref}: {what} there (looked for {looked}); give a run folder, a run name "
                        f"with --runs-dir, or the run's config file, and train it with `s2s run CONFIG` first")


@contextmanager
def run_lock(run_dir: Path, command: str) -> Iterator[None]:
    """Hold the run folder's lock while `command` writes it; a second writer fails at
    once, naming the holder. The OS releases the lock when the process ends, even by
    kill -9, so a lock is never stale."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        handle = open(run_dir / LOCK, "a+", encoding="utf-8")
    except OSError as exc:
        raise write_error(run_dir, exc) from exc
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ArtifactError(f"{run_dir} is in use: {_describe(_holder(handle))}; wait for it to finish, "
                                f"or give this run another name (name: or --set name=...)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"pid": os.getpid(), "command": command,
                                 "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}) + "\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock


def lock_holder(run_dir: Path) -> Optional[dict[str, Any]]:
    """Who holds the run's lock ({pid, command, started}), or None when nobody does."""
    path = run_dir / LOCK
    if not path.exists():
        return None
    try:
        handle = open(path, encoding="utf-8")  # read only: a run on a read-only disk can still be asked
    except OSError:
        return None  # unreadable: nobody can be seen holding it
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _holder(handle) or {}
        return None


def _holder(handle: IO[str]) -> dict[str, Any]:
    handle.seek(0)
    try:
        return dict(json.loads(handle.read() or "{}"))
    except ValueError:
        return {}


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "another process holds its lock"
    return f"pid {holder.get('pid')} runs `{holder.get('command')}` there since {holder.get('started')}"


def checkpoint_folder(run_dir: Path, checkpoint: str) -> Path:
    """The folder `decoding.checkpoint` (or `--checkpoint`) names: `best` or `last` of the
    run, or a checkpoint folder (from `s2s average`, say; a relative path is read from
    the working folder)."""
    if checkpoint in artifacts.RUN_CHECKPOINTS:
        return run_dir / artifacts.TRAIN_DIR / checkpoint
    return Path(checkpoint).expanduser()
