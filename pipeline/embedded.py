"""The files shipped with s2s: the embedded corpus (`data/`) and the example configs
(`configs/`).

An installed wheel holds them inside the pipeline package (`pipeline.embedded_data`,
`pipeline.embedded_configs`; see pyproject.toml), read through `importlib.resources`;
a source checkout (or an editable install) reads the project's own folders. So a config
that names `data/bible/train.tsv.gz` trains from any working directory.
"""

from __future__ import annotations

import importlib.resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Optional

from stages.errors import ConfigError

_PACKAGES = {"data": "pipeline.embedded_data", "configs": "pipeline.embedded_configs"}
_SOURCE_TREE = Path(__file__).resolve().parents[1]


def _shipped_root(top: str) -> Traversable:
    """The shipped `data` or `configs` folder: in the installed package, else (a source
    checkout) the project's own folder."""
    try:
        return importlib.resources.files(_PACKAGES[top])
    except ModuleNotFoundError:
        return _SOURCE_TREE / top


def shipped_file(top: str, *parts: str) -> Optional[Path]:
    """The shipped file `top/parts...` (`top`: data or configs), or None."""
    node = _shipped_root(top)
    for part in parts:
        node = node / part
    # Installed wheels are plain files (pip never runs a zipped one), so the node is a path.
    return Path(str(node)) if node.is_file() else None


def _shipped_names(top: str, suffix: str) -> list[str]:
    return sorted(p.name[: -len(suffix)] for p in _shipped_root(top).iterdir() if p.name.endswith(suffix) and p.is_file())


def resolve_path(spec: str) -> Path:
    """A config's path: absolute, else relative to the working directory, else (for
    `data/...` and `configs/...`) the copy shipped with s2s."""
    path = Path(spec).expanduser()
    if path.is_absolute() or path.exists() or len(path.parts) < 2 or path.parts[0] not in _PACKAGES:
        return path
    return shipped_file(*path.parts) or path


def example_configs() -> list[str]:
    """Names of the example configs (`default`, `tiny`, ...)."""
    return _shipped_names("configs", ".yaml")


def example_config(name: str) -> str:
    """The text of an example config, comments included; ConfigError for an unknown name."""
    names = example_configs()
    if name not in names:
        raise ConfigError(f"{name}: no example config of that name; choose one of {', '.join(names)}")
    path = shipped_file("configs", f"{name}.yaml")
    assert path is not None  # listed just now
    return path.read_text(encoding="utf-8")
