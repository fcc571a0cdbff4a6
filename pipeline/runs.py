"""Where a run lives, in one place: every command that takes a run goes through `find_run`."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

from pipeline.config import RunConfig, load_config
from stages import artifacts
from stages.errors import ArtifactError

DEFAULT_RUNS_DIR = "runs"  # RunConfig.runs_dir's default


def run_dir_of(cfg: RunConfig) -> Path:
    """`runs_dir/name` of a config: where its run writes."""
    return Path(cfg.runs_dir) / cfg.name


def find_run(ref: str, runs_dir: Optional[str] = None, needs: str = artifacts.TRAIN_DIR) -> Path:
    """The run folder that `ref` names, holding `needs` (a stage folder or the manifest).

    `ref` is a run folder, a run name under `runs_dir` (default `runs`), or the YAML
    config the run was made with (its `runs_dir` and `name` say where the run is).
    """
    path = Path(ref)
    if path.suffix.lower() in (".yaml", ".yml") and path.is_file():
        candidates = [run_dir_of(load_config(path))]
    else:
        candidates = [path, Path(runs_dir or DEFAULT_RUNS_DIR) / ref]
    for candidate in candidates:
        if (candidate / needs).exists():
            return candidate
    looked = " and ".join(str(c / needs) for c in dict.fromkeys(candidates))
    what = "no trained run" if needs == artifacts.TRAIN_DIR else f"no {needs}"
    raise ArtifactError(f"{ref}: {what} there (looked for {looked}); give a run folder, a run name "
                        f"with --runs-dir, or the run's config file, and train it with `s2s run CONFIG` first")
