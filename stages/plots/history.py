"""PNG plots of a training history: losses, dev BLEU, learning rate, gradient norms."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from stages.errors import ArtifactError, ConfigError
from stages.files import atomic_path, read_records, write_error


def read_history(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise ArtifactError(f"{path}: no training history; train the run first")
    rows = read_records(path)
    if not rows:
        raise ArtifactError(f"{path}: the training history is empty")
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("step"), int):
            raise ArtifactError(f"{path}: record {number} has no step number; the history is damaged: remove or "
                                f"mend that line")
    return rows


def plot_history(history: list[dict[str, Any]], out_dir: Path) -> list[Path]:
    """Write loss.png, dev_bleu.png, lr.png and grad_norms.png; return their paths."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("s2s plot needs matplotlib: pip install 's2s[plot]' (or matplotlib)") from exc
    steps = [row["step"] for row in history]
    figures: dict[str, dict[str, list[float]]] = {
        "loss": {
            "train loss (label-smoothed)": [row.get("train_loss", math.nan) for row in history],
            "dev loss": [row.get("dev_loss", math.nan) for row in history],
        },
        "lr": {"learning rate": [row.get("lr", math.nan) for row in history]},
    }
    if all("dev_bleu" in row for row in history):
        figures["dev_bleu"] = {"dev BLEU (greedy)": [row["dev_bleu"] for row in history]}
    layers = sorted({layer for row in history for layer in row.get("grad_norms", {})})
    if layers:
        figures["grad_norms"] = {
            layer: [row.get("grad_norms", {}).get(layer, float("nan")) for row in history] for layer in layers
        }
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(out_dir, exc) from exc
    written = []
    for name, series in figures.items():
        fig, ax = plt.subplots(figsize=(7, 4))
        try:
            for label, values in series.items():
                ax.plot(steps, values, marker="o", markersize=3, label=label)
            ax.set_xlabel("step")
            if name == "grad_norms":
                ax.set_yscale("log")
                ax.set_ylabel("gradient norm before clipping")
            ax.legend(fontsize=7)
            ax.grid(alpha=0.3)
            fig.tight_layout()
            target = out_dir / f"{name}.png"
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format="png", dpi=100)
            written.append(target)
        finally:
            plt.close(fig)
    return written
