"""Atomic writes give files the mode a plain write would, and keep a replaced file's mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Iterator

import pytest

from stages.files import atomic_dir, atomic_path, umask, write_text_atomic


@pytest.fixture
def mask() -> Iterator[None]:
    before = os.umask(0o022)
    yield
    os.umask(before)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize("mask_value,expected", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_new_file_gets_what_the_umask_leaves(tmp_path: Path, mask: None, mask_value: int, expected: int) -> None:
    os.umask(mask_value)
    assert umask() == mask_value
    write_text_atomic(tmp_path / "out.txt", "x\n")
    plain = tmp_path / "plain.txt"
    plain.write_text("x\n")
    assert mode(tmp_path / "out.txt") == expected == mode(plain)


@pytest.mark.parametrize("existing", [0o644, 0o640, 0o755, 0o600])
def test_a_replaced_file_keeps_its_mode(tmp_path: Path, mask: None, existing: int) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old\n")
    target.chmod(existing)
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n" and mode(target) == existing


def test_a_new_folder_gets_what_the_umask_leaves(tmp_path: Path, mask: None) -> None:
    with atomic_dir(tmp_path / "ckpt") as tmp:
        (tmp / "a").write_text("x")
    assert mode(tmp_path / "ckpt") == 0o755


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "out.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("disk gone")
    assert list(tmp_path.iterdir()) == []


def test_files_a_library_writes_into_a_new_folder_get_the_plain_mode(tmp_path: Path, mask: None) -> None:
    import torch
    from safetensors.torch import save_file

    with atomic_dir(tmp_path / "ckpt") as tmp:
        save_file({"w": torch.zeros(2)}, str(tmp / "model.safetensors"))  # safetensors writes 600
        (tmp / "sub").mkdir(mode=0o700)
    assert mode(tmp_path / "ckpt" / "model.safetensors") == 0o644 and mode(tmp_path / "ckpt" / "sub") == 0o755


def kill_a_writer(writer: str, target: Path, write: str) -> None:
    """Run `with WRITER(target) as tmp: WRITE` in a process that kill -9s itself inside."""
    import subprocess
    import sys

    killed = subprocess.run([sys.executable, "-c", "import os, signal; from pathlib import Path\n"
                             f"from stages.files import {writer}\n"
                             f"with {writer}(Path({str(target)!r})) as tmp:\n"
                             f"    {write}\n    os.kill(os.getpid(), signal.SIGKILL)"],
                            cwd=Path(__file__).resolve().parents[1])
    assert killed.returncode == -9 and len(list(target.parent.glob(f".{target.name}.*.tmp"))) == 1


def test_a_killed_writers_temporary_file_is_removed_by_the_next_write(tmp_path: Path) -> None:
    kill_a_writer("atomic_path", tmp_path / "out.txt", "tmp.write_text('half')")
    mine = tmp_path / f".out.txt.{os.getpid()}.abc.tmp"  # a live writer's: kept
    mine.write_text("mine")
    write_text_atomic(tmp_path / "out.txt", "whole\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, "out.txt"]


def test_a_killed_writers_temporary_folder_is_removed_and_a_half_swap_undone_by_the_next_write(tmp_path: Path) -> None:
    kill_a_writer("atomic_dir", tmp_path / "ckpt", "(tmp / 'model').write_text('half')")
    mine = tmp_path / f".ckpt.{os.getpid()}.abc.tmp"  # a live writer's: kept
    mine.mkdir()
    # killed between the two renames of a swap: the previous folder is only `.ckpt.old`
    (tmp_path / ".ckpt.old").mkdir()
    (tmp_path / ".ckpt.old" / "model").write_text("previous")
    with atomic_dir(tmp_path / "ckpt") as tmp:
        assert (tmp_path / "ckpt" / "model").read_text() == "previous"  # put back before the write starts
        (tmp / "model").write_text("whole")
    assert (tmp_path / "ckpt" / "model").read_text() == "whole"
    assert sorted(p.name for p in tmp_path.iterdir()) == [mine.name, "ckpt"]


def test_lines_end_at_lf_crlf_or_a_lone_cr_and_what_is_not_utf8_text_is_named() -> None:
    import io

    from stages.errors import InputDataError
    from stages.files import iter_stream_lines

    def lines(data: bytes) -> list[str]:
        return list(iter_stream_lines(io.BytesIO(data), "in.txt"))

    assert lines(b"\xef\xbb\xbfa\rb\r\rc\r") == ["a", "b", "", "c"]  # a file without LF: lines end at CR
    assert lines(b"a\r\nb\rc\nd") == ["a", "b\rc", "d"]  # a stray CR stays in its line, as `wc -l` counts
    with pytest.raises(InputDataError, match=r"in.txt: UTF-16 text .* `iconv -f utf-16 -t utf-8`"):
        lines("a\nb\n".encode("utf-16"))
    with pytest.raises(InputDataError, match=r"in.txt:2: a NUL byte at byte 1 of the line"):
        lines(b"a\nb\x00c\n")
    with pytest.raises(InputDataError, match=r"in.txt:3: invalid UTF-8"):
        lines(b"a\r\nb\n\xe9\n")
