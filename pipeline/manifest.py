"""The run manifest: one JSON file per run that records what each stage did.

For each stage: status, fingerprint (its config section + upstream fingerprints +
input hashes), output hashes, timings and a summary. A stage whose fingerprint and
outputs are unchanged is skipped.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stages import artifacts
from stages.errors import ArtifactError
from stages.files import sha256_file, write_json_atomic


def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("torch", "sentencepiece", "datasets", "sacrebleu", "click", "safetensors", "numpy"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


def hash_outputs(run_dir: Path, folder: str) -> dict[str, str]:
    """sha256 of every file under `run_dir/folder`, keyed by path relative to run_dir."""
    root = run_dir / folder
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts):
            out[str(path.relative_to(run_dir))] = sha256_file(path)
    return out


@dataclass
class Manifest:
    path: Path
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, run_dir: Path) -> "Manifest":
        path = run_dir / artifacts.MANIFEST
        if not path.exists():
            return cls(path, {"stages": {}})
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise ArtifactError(
                f"{path}: damaged manifest ({exc}); delete it to rerun every stage"
            ) from exc
        data.setdefault("stages", {})
        return cls(path, data)

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def stage(self, name: str) -> dict[str, Any]:
        entry: dict[str, Any] = self.data["stages"].get(name, {})
        return entry

    def is_current(self, name: str, fingerprints: list[str], run_dir: Path, folder: str) -> bool:
        """Done, under one of `fingerprints` (the stage's own and the forms older runs
        recorded), with its outputs as they were written."""
        entry = self.stage(name)
        if entry.get("status") != "done" or entry.get("fingerprint") not in fingerprints:
            return False
        return bool(entry.get("outputs")) and hash_outputs(run_dir, folder) == entry["outputs"]

    def start(self, name: str, fingerprint: str) -> None:
        """Record a stage as running; `order` counts the stages started in this run
        folder, so that one started after another is known even within a second."""
        order = max((int(e.get("order", 0)) for e in self.data["stages"].values()), default=0) + 1
        self.data["stages"][name] = {
            "status": "running", "fingerprint": fingerprint, "pid": os.getpid(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "order": order,
        }
        self.save()

    def finish(self, name: str, outputs: dict[str, str], seconds: float, summary: dict[str, Any]) -> None:
        entry = self.data["stages"][name]
        entry.update(status="done", outputs=outputs, seconds=round(seconds, 2), summary=summary)
        self.save()

    def fail(self, name: str, error: str, seconds: float, status: str = "failed") -> None:
        """Record a stage that stopped without finishing: `failed`, or `interrupted` (Ctrl-C,
        SIGTERM: a training stopped so can resume)."""
        entry = self.data["stages"].setdefault(name, {})
        entry.update(status=status, error=error, seconds=round(seconds, 2))
        entry.pop("outputs", None)
        self.save()
