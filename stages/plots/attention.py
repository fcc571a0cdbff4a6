"""Heat-map PNGs of attention: source pieces on one axis, output pieces on the other."""

from __future__ import annotations

from pathlib import Path

from stages.errors import ConfigError
from stages.files import atomic_path


def plot_attention(
    target: Path, source_pieces: list[str], target_pieces: list[str], attention: list[list[float]], title: str = ""
) -> None:
    """Write one heat map; rows are output pieces, columns source pieces."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigError("--plot-attention needs matplotlib: pip install 's2s[plot]' (or matplotlib)") from exc
    width = max(4.0, 0.35 * len(source_pieces) + 1.5)
    height = max(3.0, 0.3 * len(target_pieces) + 1.5)
    fig, ax = plt.subplots(figsize=(width, height))
    try:
        ax.imshow(attention or [[0.0] * len(source_pieces)], cmap="Greys", vmin=0.0, vmax=1.0, aspect="auto")
        ax.set_xticks(range(len(source_pieces)), source_pieces, rotation=90, fontsize=8)
        ax.set_yticks(range(len(target_pieces)), target_pieces, fontsize=8)
        ax.set_xlabel("source pieces")
        ax.set_ylabel("output pieces")
        if title:
            ax.set_title(title, fontsize=9)
        fig.tight_layout()
        with atomic_path(target) as tmp:
            fig.savefig(tmp, format="png", dpi=100)
    finally:
        plt.close(fig)
