"""Small file helpers shared by the stages: atomic writes, hashing, strict reading."""

from __future__ import annotations

import errno
import glob
import gzip
import hashlib
import json
import logging
import os
import shutil
import stat
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterable, Iterator

from stages.errors import ArtifactError, InputDataError, OutputError

log = logging.getLogger(__name__)

# Errors that only writing raises: whatever the operation, the output is at fault.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS})


def write_error(target: Path, exc: OSError) -> OutputError:
    """The error for an output that could not be written, naming it and the OS's reason."""
    reason = exc.strerror or str(exc)
    return OutputError(f"{target}: could not be written ({reason}); check that its folder exists and is "
                       f"writable and that the disk has room (quota, `ulimit -f`); nothing was written there")


def write_failure(exc: BaseException, *paths: Path) -> OSError | None:
    """The OS error of writing that `exc` is or wraps (any error on one of `paths`
    counts), or None when it is something else."""
    names = {str(p) for p in paths}
    inner: BaseException | None = exc
    while inner is not None:
        if isinstance(inner, OSError) and (inner.errno in WRITE_ERRNOS or str(inner.filename) in names):
            return inner
        inner = inner.__cause__ or inner.__context__
    return None


def check_output_file(given: str | Path, option: str) -> None:
    """Refuse, before any work, an output file that cannot be written where asked: a path
    that names a folder (as typed, `out/`, or on disk), or whose folder cannot be made or
    written."""
    path = Path(given)
    if str(given).endswith(("/", os.sep)) or path.is_dir():
        raise OutputError(f"{option} {given}: is a folder; give the path of a file")
    _check_folder_writable(path.parent, option, path)


def check_output_folder(path: Path, option: str) -> None:
    """Refuse, before any work, an output folder that is a file or cannot be made or written."""
    if path.exists() and not path.is_dir():
        raise OutputError(f"{option} {path}: is a file; give the path of a folder")
    _check_folder_writable(path, option, path)


def _check_folder_writable(folder: Path, option: str, asked: Path) -> None:
    existing = folder if str(folder) else Path(".")
    while not existing.exists():  # the nearest folder that exists must let us create the rest
        existing = existing.parent
    if not existing.is_dir():
        raise OutputError(f"{option} {asked}: {existing} is a file, so no folder can be made there")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {asked}: cannot write into {existing} (permission denied)")


def umask() -> int:
    """The process's file-creation mask, read without changing it where Linux tells it
    (changing it to read it would race with other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _remove_orphans(target: Path) -> None:
    """Remove temporary files or folders of `target` that a killed process left (kill -9
    skips the cleanup); those of a process still running are its own."""
    for leftover in target.parent.glob(f".{glob.escape(target.name)}.*.tmp"):
        pid = leftover.name[len(target.name) + 2 :].split(".", 1)[0]
        if not pid.isdigit() or _alive(int(pid)) or leftover.is_symlink():
            continue
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        elif leftover.is_file():
            leftover.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _plain_mode(directory: bool) -> int:
    """What the umask leaves of 666 (777 for a directory): the mode of a plain new file."""
    return (0o777 if directory else 0o666) & ~umask()


def _mode_for(target: Path, directory: bool) -> int:
    """The mode a plain write would give `target`: that of the file it replaces, else
    the plain new file's."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except OSError:
        return _plain_mode(directory)


@contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it onto `target` on success, with
    the mode a plain write would have given it (a temporary file is private: 600).

    A crash or an error leaves `target` untouched, so a rerun never mistakes a
    half-written file for a finished one. A symbolic link stays a link: the file it
    points to is replaced. A device or a pipe (`/dev/null`, `/dev/stdout`, a FIFO)
    cannot be replaced: the output is written into it once complete (`is_special`).
    """
    special = is_special(target)
    if not special and target.is_symlink():
        target = Path(os.path.realpath(target))
    try:
        if special:  # written into once complete: its folder (/dev) is no place for a temporary file
            fd, tmp_name = tempfile.mkstemp(prefix=".s2s-output.", suffix=".tmp")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            _remove_orphans(target)
            fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp",
                                            dir=target.parent)
    except OSError as exc:
        raise write_error(target, exc) from exc
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if special:
            with open(tmp, "rb") as source, _open_special(target) as sink:
                shutil.copyfileobj(source, sink)
        else:
            os.chmod(tmp, _mode_for(target, directory=False))
            os.replace(tmp, target)
    except OSError as exc:
        if write_failure(exc, tmp, target):
            raise write_error(target, exc) from exc
        raise
    finally:
        tmp.unlink(missing_ok=True)


_STREAMS = ("/dev/stdout", "/dev/stderr", "/dev/fd/", "/proc/self/fd/")


def _open_special(target: Path) -> Any:
    """`target` (`is_special`) open for writing without truncating it: a name of one of
    this process's descriptors (`/dev/stdout`, `/dev/fd/N`, `/proc/self/fd/N`) writes
    through that descriptor at its own offset, as the shell's `>` or `>>` set it; other
    devices and pipes are opened to append."""
    name = _stream_name(target) or str(target)
    fd = {"/dev/stdout": 1, "/dev/stderr": 2}.get(name)
    for prefix in ("/dev/fd/", "/proc/self/fd/"):
        if name.startswith(prefix) and name[len(prefix):].isdigit():
            fd = int(name[len(prefix):])
    if fd is not None:
        for stream in (sys.stdout, sys.stderr):  # what this process printed comes first
            stream.flush()
        return open(os.dup(fd), "wb")
    return open(target, "ab")


def _stream_name(target: Path) -> str | None:
    """The stream `target` names (`/dev/stdout`, `/dev/fd/N` ...), itself or through a
    link; None for any other path."""
    if str(target).startswith(_STREAMS):
        return str(target)
    if target.is_symlink() and os.readlink(target).startswith(_STREAMS):
        return os.readlink(target)
    return None


def is_special(target: Path) -> bool:
    """A path written into, never replaced: a device or a pipe, or a name of a stream
    (`/dev/stdout` leads, through /proc/self/fd, to whatever standard output is, a
    regular file behind `>`)."""
    if _stream_name(target):
        return True
    real = os.path.realpath(target)
    return os.path.exists(real) and not (os.path.isfile(real) or os.path.isdir(real))


@contextmanager
def atomic_dir(target: Path) -> Iterator[Path]:
    """Like `atomic_path` for a whole directory: build it aside, then swap it in.

    The swap is two renames (`target` to `.NAME.old`, the new folder to `target`); a
    process killed between them leaves the previous folder as `.NAME.old`, which the
    next write of `target` puts back before it starts, as it removes the temporary
    folders of killed writers."""
    old = target.with_name(f".{target.name}.old")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        if old.is_dir() and not target.exists():
            os.replace(old, target)
        _remove_orphans(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp", dir=target.parent))
    except OSError as exc:
        raise write_error(target, exc) from exc
    try:
        yield tmp
        for inner in tmp.rglob("*"):  # what libraries wrote in it (safetensors writes 600) as a plain write would
            os.chmod(inner, _plain_mode(inner.is_dir()))
        os.chmod(tmp, _mode_for(target, directory=True))
        if target.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old)
        else:
            os.replace(tmp, target)
    except OSError as exc:
        if write_failure(exc, tmp, target):
            raise write_error(target, exc) from exc
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_text_atomic(target: Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_lines_atomic(target: Path, lines: list[str]) -> None:
    write_text_atomic(target, "".join(line + "\n" for line in lines))


def write_json_atomic(target: Path, data: Any) -> None:
    write_text_atomic(target, json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def line_end_of(data: bytes) -> str:
    """The line end of a text that starts with `data`: its first line's ("\r\n" for a
    Windows file), a lone "\r" for a text without LF that has CR, else "\n". What a
    translation of the text is written with."""
    first = data.find(b"\n")
    if first < 0:
        return "\r" if b"\r" in data else "\n"
    return "\r\n" if data[first - 1 : first] == b"\r" else "\n"


def read_records(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a JSON-lines file (a training history), one per non-blank
    line. A last line without its line end that does not parse is a record cut short
    by a writer killed mid-line: it is left out, with a warning. Any other line that is
    not a JSON object raises ArtifactError naming the file and line."""
    try:
        lines = path.read_text(encoding="utf-8").split("\n")
    except UnicodeDecodeError as exc:
        raise ArtifactError(f"{path}: not UTF-8 text ({exc}); the file is damaged: restore it from a copy") from exc
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError as exc:
            if number == len(lines):  # no line end after it: cut short
                log.warning("%s:%d: a last line cut short, left out (%s)", path, number, exc)
                continue
            raise ArtifactError(f"{path}:{number}: not a JSON record ({exc}); the file is damaged: remove or mend "
                                f"that line") from exc
        if not isinstance(record, dict):
            raise ArtifactError(f"{path}:{number}: {line[:60]!r} is not a JSON object; the file is damaged: remove "
                                f"or mend that line")
        records.append(record)
    return records


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
    with opener(path, "rb") as handle:
        yield from iter_stream_lines(handle, str(path))


def iter_stream_lines(handle: Iterable[bytes], name: str) -> Iterator[str]:
    """Lines of a binary stream of UTF-8 text (a file, or standard input named
    `<stdin>`), checked as `iter_lines_strict` checks a file: a BOM is dropped, a line
    ends at LF or CRLF (at a lone CR in a file without LF), and bad UTF-8, a NUL byte or
    UTF-16 text is an InputDataError naming the line."""
    number = 0
    try:
        for raw in handle:
            if number == 0 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            elif number == 0 and raw.startswith((b"\xff\xfe", b"\xfe\xff")):
                raise InputDataError(f"{name}: UTF-16 text (it starts with a UTF-16 byte-order mark); convert the "
                                     f"file to UTF-8, e.g. `iconv -f utf-16 -t utf-8`")
            text = raw.rstrip(b"\r\n")
            # A file without one LF, whose lines end at a lone CR (old Mac files), comes as one chunk:
            # split it there. In a file of LF lines a stray CR stays inside its line, as `wc -l` counts.
            old_mac = number == 0 and not raw.endswith(b"\n") and b"\r" in text
            for part in text.split(b"\r") if old_mac else (text,):
                number += 1
                yield _decode_line(part, name, number)
    except (gzip.BadGzipFile, EOFError) as exc:
        raise InputDataError(f"{name}: not a valid gzip file after line {number} ({exc})") from exc


def _decode_line(raw: bytes, path: Path | str, number: int) -> str:
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise InputDataError(f"{path}:{number}: a NUL byte at byte {nul} of the line; this is not UTF-8 text "
                             f"(a binary file, or UTF-16 without its byte-order mark)")
    try:
        return raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise InputDataError(
            f"{path}:{number}: invalid UTF-8 at byte {exc.start} of the line "
            f"({raw[max(0, exc.start - 10):exc.end + 10]!r}); convert the file to UTF-8, "
            f"e.g. `iconv -f latin1 -t utf-8`"
        ) from exc
