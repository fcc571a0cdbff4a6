"""Parallel corpora as memory-mapped `datasets` Arrow tables: load, map in parallel, save.

Prepare and tokenize never hold a corpus in Python lists: every table here lives in
an Arrow file on disk and is memory-mapped, and every pass over it is a `datasets`
`map`/`filter` that reads and writes it in batches, in `num_proc` processes when the
corpus is large. Their peak memory therefore does not grow with the corpus.

A pair table has two string columns, `src` and `tgt`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from stages.errors import ArtifactError, InputDataError
from stages.files import atomic_dir, atomic_path, iter_lines_strict, sha256_file

# Below this many rows, worker processes cost more to start than they save
# (bench/bench_data_scaling.py, bench/results/data_scaling.json), so `num_proc: 0`
# (auto) uses one process.
AUTO_PARALLEL_ROWS = 100_000
BATCH_ROWS = 2_000  # rows per map batch: small enough to keep memory flat

def workers(num_proc: int, rows: int) -> int | None:
    """Processes for a pass over `rows` rows: `num_proc`, or with 0 one per core for
    large corpora; None means the calling process alone."""
    if num_proc == 0:
        num_proc = (os.cpu_count() or 1) if rows >= AUTO_PARALLEL_ROWS else 1
    num_proc = min(num_proc, max(1, rows // BATCH_ROWS))
    return num_proc if num_proc > 1 else None


@contextmanager
def scratch(folder: Path) -> Iterator[Path]:
    """A hidden work folder inside a stage's folder for `datasets`' cache files,
    removed afterwards (hidden files are not among a stage's hashed outputs)."""
    work = folder / ".work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


def quiet() -> None:
    import datasets

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()


def _pass_options(table: Any, work: Path, name: str, num_proc: int) -> dict[str, Any]:
    """What every pass shares: batches of BATCH_ROWS rows, `num_proc` workers, its result
    written to a fresh Arrow file under `work`."""
    quiet()
    return {
        "batched": True, "batch_size": BATCH_ROWS, "num_proc": workers(num_proc, len(table)),
        "cache_file_name": str(work / f"{name}.arrow"), "load_from_cache_file": False,
    }


def apply(
    table: Any, fn: Callable[..., dict[str, list[Any]]], work: Path, name: str, num_proc: int, **kwargs: Any
) -> Any:
    """`table.map(fn)` over batches of rows."""
    return table.map(
        fn, writer_batch_size=BATCH_ROWS, new_fingerprint=uuid.uuid4().hex,
        **_pass_options(table, work, name, num_proc), **kwargs,
    )


def keep_rows(
    table: Any, predicate: Callable[..., list[bool]], work: Path, name: str, num_proc: int, **kwargs: Any
) -> Any:
    """`table.filter(predicate)` over batches of rows."""
    return table.filter(predicate, **_pass_options(table, work, name, num_proc), **kwargs)


def aligned_text_table(src_path: Path, tgt_path: Path, work: Path) -> Any:
    """Two line-aligned UTF-8 text files as one pair table (checked line by line first,
    so that a bad byte or a missing line is reported with its file and line)."""
    import datasets

    counts = [sum(1 for _ in iter_lines_strict(path)) for path in (src_path, tgt_path)]
    if counts[0] != counts[1]:
        raise InputDataError(
            f"{tgt_path} has {counts[1]} lines but {src_path} has {counts[0]}; "
            f"the two files must be line-aligned"
        )
    if counts[0] == 0:
        return empty_pairs()
    quiet()  # no "Generating train split" bar in the middle of prepare's own output
    return datasets.Dataset.from_generator(
        _aligned_rows, features=_pair_features(), cache_dir=str(work / "text"),
        gen_kwargs={"src_path": str(src_path), "tgt_path": str(tgt_path)},
    )


def _pair_features() -> Any:
    import datasets

    return datasets.Features({"src": datasets.Value("string"), "tgt": datasets.Value("string")})


def empty_pairs() -> Any:
    """A pair table without rows (a split whose file holds a header only)."""
    import datasets

    return datasets.Dataset.from_dict({"src": [], "tgt": []}, features=_pair_features())


def _aligned_rows(src_path: str, tgt_path: str) -> Iterator[dict[str, str]]:
    for src, tgt in zip(iter_lines_strict(Path(src_path)), iter_lines_strict(Path(tgt_path))):
        yield {"src": src, "tgt": tgt}


def save_table(table: Any, target: Path) -> Any:
    """Write `table` to the folder `target` (atomically) and return it memory-mapped from there."""
    import datasets

    quiet()
    with atomic_dir(target) as tmp:
        # An empty table needs its one (empty) shard spelled out, or it cannot be loaded back.
        table.save_to_disk(str(tmp), num_shards=1 if len(table) == 0 else None)
        _fingerprint_by_content(tmp)
    return datasets.load_from_disk(str(target))


def _fingerprint_by_content(folder: Path) -> None:
    """Give a saved table the fingerprint of its data files. `datasets` writes a random
    one for tables made by a function it cannot hash, so the same rows saved twice
    differed, and every stage after them counted as out of date (the manifest hashes
    each output file)."""
    state = folder / "state.json"
    if not state.is_file():
        return
    digest = hashlib.sha256()
    for data in sorted(folder.glob("*.arrow")):
        digest.update(sha256_file(data).encode())
    content = json.loads(state.read_text(encoding="utf-8"))
    content["_fingerprint"] = digest.hexdigest()[:16]
    state.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def load_table(folder: Path, what: str) -> Any:
    import datasets

    if not folder.is_dir():
        raise ArtifactError(f"{folder}: {what} not found; rerun the prepare stage (s2s prepare)")
    return datasets.load_from_disk(str(folder))


def _column_batches(table: Any, column: str) -> Iterator[list[str]]:
    for batch in table.select_columns([column]).iter(batch_size=10_000):
        yield batch[column]


def write_column(table: Any, column: str, target: Path) -> None:
    """Stream one string column into a text file, one row per line (atomically)."""
    with atomic_path(target) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as handle:
            for lines in _column_batches(table, column):
                handle.write("".join(line + "\n" for line in lines))


def column_lines(table: Any, columns: tuple[str, ...], sample: int = 0, seed: int = 0) -> Iterator[str]:
    """The non-empty strings of `columns`, column after column, streamed. With `sample`
    below the number of strings, only a random `sample` of them (drawn by position from
    a generator seeded with `seed`, so the same table and seed give the same lines)."""
    total = len(table) * len(columns)
    keep = None
    if 0 < sample < total:
        keep = np.zeros(total, dtype=bool)
        keep[np.random.default_rng(seed).choice(total, size=sample, replace=False)] = True
    position = 0
    for column in columns:
        for lines in _column_batches(table, column):
            if keep is None:
                yield from (line for line in lines if line)
            else:
                yield from (line for line, kept in zip(lines, keep[position : position + len(lines)]) if kept and line)
            position += len(lines)
