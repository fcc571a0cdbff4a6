from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator

import pytest
import torch

from stages import cpu_kernels, recurrence

needs_compiler = pytest.mark.skipif(shutil.which("g++") is None and shutil.which("c++") is None,
                                    reason="no C++ compiler")


@pytest.fixture
def fresh_library(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """library() rebuilt into tmp_path, and the process's own library restored after."""
    monkeypatch.setenv("S2S_CACHE_DIR", str(tmp_path))
    cpu_kernels.library.cache_clear()
    yield
    monkeypatch.undo()
    cpu_kernels.library.cache_clear()


@needs_compiler
def test_library_builds_once_into_the_cache(tmp_path, fresh_library: None) -> None:
    assert cpu_kernels.library() is not None
    built = list(tmp_path.glob("cpu_kernels-*.so"))
    assert len(built) == 1 and not list(tmp_path.glob(".cpu_kernels-*"))  # no temporary left behind
    stamp = built[0].stat().st_mtime_ns
    cpu_kernels.library.cache_clear()
    assert cpu_kernels.library() is not None
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


def test_disabled_or_unbuildable_means_pytorch_operators(
    tmp_path, fresh_library: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("S2S_CPU_KERNELS", "0")
    assert cpu_kernels.library() is None
    monkeypatch.delenv("S2S_CPU_KERNELS")
    cpu_kernels.library.cache_clear()
    monkeypatch.setenv("CXX", shutil.which("false") or "/bin/false")  # a "compiler" that always fails
    monkeypatch.setattr(shutil, "which", lambda name: "/bin/false" if name in ("/bin/false", "false") else None)
    with caplog.at_level(logging.INFO, logger="stages.cpu_kernels"):
        assert cpu_kernels.library() is None
    gates, c = torch.randn(3, 8), torch.randn(3, 2)
    h, c_new, _ = recurrence.lstm_cell_forward(gates, c)  # the operators' path still works
    i, f, g, o = gates.chunk(4, dim=1)
    assert torch.allclose(c_new, f.sigmoid() * c + i.sigmoid() * g.tanh())
    assert torch.allclose(h, o.sigmoid() * c_new.tanh())


def _cell(gates: torch.Tensor, c: torch.Tensor, grad_h: torch.Tensor, grad_c: torch.Tensor,
          kernels: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[torch.Tensor, ...]:
    with monkeypatch.context() as m:
        if not kernels:
            m.setattr(cpu_kernels, "library", lambda: None)
        h, c_new, saved = recurrence.lstm_cell_forward(gates, c)
        grad_gates, grad_c_prev = recurrence.lstm_cell_backward(saved, grad_h, grad_c, gates.dtype)
    return h, c_new, grad_gates, grad_c_prev


@needs_compiler
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_lstm_kernel_equals_the_operators(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    batch, size = 7, 48
    wide = (4 * torch.randn(batch, 4 * size + 5)).to(dtype)
    gates = wide[:, 3 : 3 + 4 * size]  # rows further apart than their length, as a slice of a product
    c = 2 * torch.randn(batch, size)
    grad_h, grad_c = torch.randn(batch, size).to(dtype), torch.randn(batch, size)
    assert cpu_kernels.lstm_applies(gates, c)
    fused = _cell(gates, c, grad_h, grad_c, True, monkeypatch)
    plain = _cell(gates, c, grad_h, grad_c, False, monkeypatch)
    for got, want in zip(fused, plain):
        assert got.dtype == want.dtype and got.shape == want.shape
        # fp32: a few ulp apart (a different exp); bf16: one rounding step of the output
        atol, rtol = (1e-5, 1e-5) if got.dtype == torch.float32 else (1e-2, 2**-7)
        assert torch.allclose(got.float(), want.float(), atol=atol, rtol=rtol)


@needs_compiler
def test_lstm_kernel_extremes_saturate_without_nan() -> None:
    gates = torch.tensor([[-1e4, 1e4, 200.0, -200.0, 0.0, -0.0, 1e-30, 88.0]]).repeat(1, 1)
    gates = torch.cat([gates, gates], dim=1)  # (1, 16): size 4
    c = torch.tensor([[1e4, -3.0, 0.0, 1e-20]])
    h, c_new, _ = cpu_kernels.lstm_forward(gates, c)
    i, f, g, o = gates.chunk(4, dim=1)
    want_c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    assert torch.isfinite(h).all() and torch.allclose(c_new, want_c, atol=1e-6)
    assert torch.allclose(h, o.sigmoid() * want_c.tanh(), atol=1e-6)
