"""Small file helpers shared by the stages: atomic writes, hashing, strict reading."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from stages.errors import InputDataError


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` on success.

    A crash or an error leaves `target` untouched, so a rerun never mistakes a
    half-written file for a finished one.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Like `atomic_path` for a whole directory: build it aside, then swap it in."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.exists():
            old = target.with_name(f".{target.name}.old")
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_lines_atomic(target: Path, lines: list[str]) -> None:
    write_text_atomic(target, "".join(line + "\n" for line in lines))


def write_json_atomic(target: Path, data: Any) -> None:
    write_text_atomic(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_lines_strict(path: Path) -> list[str]:
    """Read a UTF-8 text file (optionally .gz) as lines; invalid UTF-8 names the line."""
    return list(iter_lines_strict(path))


def iter_lines_strict(path: Path) -> Iterator[str]:
    """Stream a UTF-8 text file (optionally .gz) line by line; bad UTF-8 names the line."""
    if not path.exists():
        raise InputDataError(f"{path}: file not found")
    if path.is_dir():
        raise InputDataError(f"{path}: is a directory, expected a file")
    opener = gzip.open if path.suffix == ".gz" else open
    number = 0
    try:
        with opener(path, "rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                    raw = raw[3:]
                yield _decode_line(raw, path, number)
    except (gzip.BadGzipFile, EOFError) as exc:
        raise InputDataError(f"{path}: not a valid gzip file after line {number} ({exc})") from exc


def _decode_line(raw: bytes, path: Path, number: int) -> str:
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise InputDataError(
            f"{path}:{number}: invalid UTF-8 at byte {exc.start} of the line "
            f"({raw[max(0, exc.start - 10):exc.end + 10]!r}); convert the file to UTF-8, "
            f"e.g. `iconv -f latin1 -t utf-8`"
        ) from exc


def check_utf8(path: Path) -> int:
    """Stream `path` (optionally .gz); raise InputDataError naming its first line that is
    not valid UTF-8, else return how many non-empty lines it has."""
    return sum(1 for line in iter_lines_strict(path) if line.strip())
