"""Token ids of a split, read straight from the memory-mapped Arrow table tokenize wrote.

A `datasets` table stores a column of id lists as chunks of Arrow list arrays: one
flat int32 buffer of ids plus offsets per chunk. `IdColumn` keeps numpy views of those
buffers (no copy, so nothing is read into memory until a batch needs it) and hands out
one sentence's ids as a numpy array.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from stages.corpus.vocab import SEP_ID, SPECIAL_IDS
from stages.errors import ArtifactError


class IdColumn:
    """A column of token-id sequences: `column[i]` is sentence i's ids (int32)."""

    def __init__(self, values: list[np.ndarray], offsets: list[np.ndarray]):
        self._values, self._offsets = values, offsets  # per chunk: flat ids, row offsets into them
        lengths = [np.diff(off) for off in offsets]
        self.lengths = np.concatenate(lengths) if lengths else np.zeros(0, dtype=np.int64)
        self._starts = np.cumsum([0] + [len(n) for n in lengths])  # first row of each chunk

    @classmethod
    def of(cls, table: Any, column: str) -> "IdColumn":
        """The column `column` of a `datasets` or pyarrow table, as zero-copy views of its
        Arrow buffers."""
        values, offsets = [], []
        for chunk in getattr(table, "data", table).column(column).chunks:
            values.append(chunk.values.to_numpy(zero_copy_only=True))
            offsets.append(chunk.offsets.to_numpy(zero_copy_only=True))
        return cls(values, offsets)

    @classmethod
    def from_arrays(cls, rows: Sequence[np.ndarray]) -> "IdColumn":
        """A column held in memory (tests, small inputs)."""
        lengths = np.array([len(r) for r in rows], dtype=np.int64)
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        flat = np.concatenate([np.asarray(r, dtype=np.int32) for r in rows]) if rows else np.zeros(0, np.int32)
        return cls([flat], [offsets])

    def __len__(self) -> int:
        return len(self.lengths)

    def vocabulary(self) -> np.ndarray:
        """The ids that occur in the column, sorted (int64)."""
        seen = [np.unique(values[offsets[0] : offsets[-1]]) for values, offsets in zip(self._values, self._offsets)
                if len(offsets)]
        return np.unique(np.concatenate(seen)).astype(np.int64) if seen else np.zeros(0, dtype=np.int64)

    def prefix_lengths(self, token: int) -> np.ndarray:
        """Per row, how many ids come before the row's first `token` (0 where the row has
        none), int64: for a context model's sources, the context's length before `SEP_ID`."""
        found = []
        for values, offsets in zip(self._values, self._offsets):
            prefix = np.zeros(len(offsets) - 1, dtype=np.int64)
            at = np.flatnonzero(values[offsets[0] : offsets[-1]] == token) + offsets[0]
            rows = np.searchsorted(offsets, at, side="right") - 1
            rows, first = np.unique(rows, return_index=True)
            prefix[rows] = at[first] - offsets[rows]
            found.append(prefix)
        return np.concatenate(found) if found else np.zeros(0, dtype=np.int64)

    def __getitem__(self, row: int) -> np.ndarray:
        chunk = int(np.searchsorted(self._starts, row, side="right")) - 1
        local = row - int(self._starts[chunk])
        offsets = self._offsets[chunk]
        return self._values[chunk][offsets[local] : offsets[local + 1]]


def output_pieces(tgt: IdColumn) -> list[int]:
    """The target pieces a model trained on `tgt` can produce: the special tokens and
    every id of the column, sorted (`Seq2Seq.restrict_output`)."""
    return sorted(set(SPECIAL_IDS) | set(tgt.vocabulary().tolist()))


def writes_separator(pieces: Sequence[int] | None) -> bool:
    """Whether a model with these output pieces (`output_pieces`) was trained with
    `data.target_context`: only then do its training targets hold the context separator."""
    return pieces is not None and SEP_ID in pieces


def load_id_columns(folder: Path) -> tuple[IdColumn, IdColumn]:
    """A split's (source, target) ids from `tokenize/ids/{split}/`, memory-mapped.

    The folder is a `datasets` table saved with `save_to_disk` (tokenize writes it):
    Arrow stream files listed in its state.json. They are read with pyarrow alone,
    which keeps `datasets` (about 70 MB of resident memory once imported) out of
    training and translation.
    """
    import pyarrow as pa

    if not folder.is_dir():
        raise ArtifactError(f"{folder}: token ids not found; rerun the tokenize stage")
    try:
        state = json.loads((folder / "state.json").read_text(encoding="utf-8"))
        if state.get("_indices_data_files"):
            raise ValueError("an indices mapping, which tokenize never writes")
        tables = [pa.ipc.open_stream(pa.memory_map(str(folder / f["filename"]))).read_all()
                  for f in state["_data_files"]]
        table = pa.concat_tables(tables) if len(tables) != 1 else tables[0]
        return IdColumn.of(table, "src_ids"), IdColumn.of(table, "tgt_ids")
    except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as exc:
        raise ArtifactError(f"{folder}: not readable token ids ({type(exc).__name__}: {exc}); "
                            f"rerun the tokenize stage") from exc
