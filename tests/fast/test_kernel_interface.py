"""The C interface of the CPU kernels is declared once, in csrc/kernels.h: the C++
definitions, the built library's exports and the Python calls are all held to it."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from stages.model.fast import cpu_kernels

CSRC = cpu_kernels.SOURCES
DEFINITION = re.compile(r"^(\w+)\s+(s2s_\w+)\s*\(([^)]*)\)\s*\{", re.M)


def _normal(params: str) -> list[str]:
    return [" ".join(p.split()) for p in params.split(",")]


def test_the_header_declares_every_kernel_with_known_types() -> None:
    declared = cpu_kernels.interface()
    assert set(declared) == {"s2s_lstm_forward", "s2s_lstm_backward", "s2s_attend_forward", "s2s_attend_backward",
                             "s2s_smoothed_ce", "s2s_log_softmax_topk"}
    assert all(argtypes and None not in argtypes for _, argtypes in declared.values())


def test_every_definition_matches_its_declaration() -> None:
    header = {name: (ret, _normal(params)) for ret, name, params in cpu_kernels._DECLARATION.findall(
        cpu_kernels.HEADER.read_text())}
    defined = {}
    for source in sorted(CSRC.glob("*.cpp")):
        text = source.read_text()
        assert '#include "kernels.h"' in text, f"{source.name} must include kernels.h"
        for ret, name, params in DEFINITION.findall(text):
            defined[name] = (ret, _normal(params))
    assert defined == header


@pytest.mark.skipif(shutil.which("g++") is None, reason="no C++ compiler")
def test_the_compiler_refuses_a_definition_that_differs(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.cpp"
    wrong.write_text('#include "kernels.h"\nextern "C" void s2s_lstm_forward(int dtype, int64_t batch) {}\n')
    result = subprocess.run(["g++", "-fsyntax-only", "-I", str(CSRC), str(wrong)], capture_output=True, text=True)
    assert result.returncode != 0 and "s2s_lstm_forward" in result.stderr


@pytest.mark.skipif(cpu_kernels.library() is None, reason="the CPU kernels are not built")
def test_the_library_exports_exactly_the_declared_functions() -> None:
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm")
    built = cpu_kernels.library()._name  # type: ignore[union-attr]
    symbols = subprocess.run([nm, "-D", "--defined-only", str(built)], capture_output=True, text=True, check=True)
    exported = {line.split()[-1] for line in symbols.stdout.splitlines() if line.split()[-1].startswith("s2s_")}
    assert exported == set(cpu_kernels.interface())


@pytest.mark.skipif(cpu_kernels.library() is None, reason="the CPU kernels are not built")
def test_a_call_with_the_wrong_argument_count_raises() -> None:
    with pytest.raises(TypeError, match="kernels.h"):
        cpu_kernels._call("s2s_lstm_forward", 0, 1, 2)
    with pytest.raises(TypeError, match="kernels.h"):  # ctypes alone would pass surplus arguments on
        cpu_kernels._call("s2s_smoothed_ce", *([0] * 11))
