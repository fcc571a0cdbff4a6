from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from stages.model.config import ModelConfig
from stages.model.fast import cells, cpu_kernels
from stages.model.seq2seq import Seq2Seq, sequence_loss

needs_compiler = pytest.mark.skipif(
    (shutil.which("g++") is None and shutil.which("c++") is None) or not cpu_kernels.enabled(),
    reason="no C++ compiler, or S2S_CPU_KERNELS=0")


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
    (tmp_path / "cpu_kernels-0000000000000000.so").write_bytes(b"an earlier source's build")
    assert cpu_kernels.library() is not None
    built = list(tmp_path.glob("cpu_kernels-*.so"))  # the earlier build is gone
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
    with caplog.at_level(logging.INFO, logger="stages.model.fast.cpu_kernels"):
        assert cpu_kernels.library() is None
    gen = torch.Generator().manual_seed(0)
    gates, c = torch.randn(3, 8, generator=gen), torch.randn(3, 2, generator=gen)
    h, c_new, _ = cells.lstm_cell_forward(gates, c)  # the operators' path still works
    i, f, g, o = gates.chunk(4, dim=1)
    # addcmul rounds once where the written-out sum rounds twice: equal to float32's precision
    torch.testing.assert_close(c_new, f.sigmoid() * c + i.sigmoid() * g.tanh(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(h, o.sigmoid() * c_new.tanh(), rtol=1e-5, atol=1e-6)


def _cell(gates: torch.Tensor, c: torch.Tensor, grad_h: torch.Tensor, grad_c: torch.Tensor,
          kernels: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[torch.Tensor, ...]:
    with monkeypatch.context() as m:
        if not kernels:
            m.setattr(cpu_kernels, "library", lambda: None)
        h, c_new, saved = cells.lstm_cell_forward(gates, c)
        grad_gates, grad_c_prev = cells.lstm_cell_backward(saved, grad_h, grad_c, gates.dtype)
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


def _fed_model(attention: str) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = ModelConfig(cell="lstm", attention=attention, embedding_size=16, encoder_hidden=12,  # type: ignore[arg-type]
                      decoder_hidden=24, dropout=0.3, input_feeding=True)
    return Seq2Seq(cfg, 50, 60).train()


def _loss_and_grads(model: Seq2Seq, kernels: bool, autocast: bool,
                    monkeypatch: pytest.MonkeyPatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    src = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0], [13, 14, 0, 0, 0]])
    lens = torch.tensor([5, 3, 2])
    tgt = torch.tensor([[2, 20, 21, 22], [2, 23, 24, 0], [2, 25, 0, 0]])
    model.zero_grad()
    with monkeypatch.context() as m:
        if not kernels:
            m.setattr(cpu_kernels, "library", lambda: None)
        torch.manual_seed(1)  # the same dropout masks on both paths
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(src, lens, tgt)
        loss = sequence_loss(logits, tgt, 0.1)
        loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _counted(fn: Callable[..., Any], calls: dict[str, int], name: str) -> Callable[..., Any]:
    def counting(*args: Any) -> Any:
        calls[name] += 1
        return fn(*args)
    return counting


@needs_compiler
@pytest.mark.parametrize("attention", ["luong_general", "luong_dot"])
@pytest.mark.parametrize("autocast", [False, True])
def test_fused_attention_step_trains_like_the_operators(
    attention: str, autocast: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _fed_model(attention)
    calls = {"forward": 0, "backward": 0}
    for name in calls:  # count the kernel calls, so that a path that never fuses cannot pass
        monkeypatch.setattr(cpu_kernels, f"attend_{name}", _counted(getattr(cpu_kernels, f"attend_{name}"), calls, name))
    fused_loss, fused = _loss_and_grads(model, True, autocast, monkeypatch)
    assert calls == {"forward": 4, "backward": 4}  # one per target position
    plain_loss, plain = _loss_and_grads(model, False, autocast, monkeypatch)
    assert fused.keys() == plain.keys() and len(fused) == len(list(model.parameters()))
    # fp32: the same arithmetic up to the exp; bf16: the kernel rounds only its outputs,
    # the operators also round the scores, the mixed vector and its tanh
    rtol = 1e-4 if not autocast else 3e-2
    assert torch.allclose(fused_loss, plain_loss, rtol=rtol)
    for name in plain:
        err = (fused[name] - plain[name]).norm() / plain[name].norm().clamp_min(1e-12)
        assert err < rtol * 3, name


@needs_compiler
def test_fused_attention_step_decodes_like_the_operators(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fed_model("luong_general").eval()
    src, lens = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]]), torch.tensor([3, 4])
    with torch.no_grad():
        state = model.encode(src, lens)
        fused, _ = model.step(torch.tensor([2, 2]), state)
        with monkeypatch.context() as m:
            m.setattr(cpu_kernels, "library", lambda: None)
            plain, _ = model.step(torch.tensor([2, 2]), state)
    assert torch.allclose(fused, plain, atol=1e-5)


@needs_compiler
def test_fused_attention_step_with_a_frozen_encoder(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keys without a gradient (the encoder ran without one) and a combine layer with one."""
    model = _fed_model("luong_general").eval()
    src, lens, tgt = torch.tensor([[5, 6, 7, 0], [8, 9, 10, 11]]), torch.tensor([3, 4]), torch.tensor([[2, 7, 8]] * 2)
    grads = []
    for kernels in (True, False):
        model.zero_grad()
        with monkeypatch.context() as m:
            if not kernels:
                m.setattr(cpu_kernels, "library", lambda: None)
            with torch.no_grad():
                state = model.encode(src, lens)
            logits, _, _ = model._decode(tgt, state)
            logits.sum().backward()
        grads.append(model.combine.weight.grad.clone())  # type: ignore[union-attr]
    assert torch.allclose(grads[0], grads[1], atol=1e-5)


@needs_compiler
@pytest.mark.parametrize("shape, k", [((7, 37), 4), ((160, 5226), 10), ((3, 16), 16), ((5, 40), 1)])
def test_top_log_probs_kernel_equals_log_softmax_and_topk(shape: tuple[int, int], k: int,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    gen = torch.Generator().manual_seed(len(shape) + k)
    wide = torch.randn(shape[0], shape[1] + 3, generator=gen) * 4
    logits = wide[:, 2 : 2 + shape[1]]  # rows a stride apart, as a slice of a wider product
    values, indices = cpu_kernels.top_log_probs(logits, k)
    expected_values, expected_indices = torch.log_softmax(logits, dim=-1).topk(k, dim=-1)
    assert torch.equal(indices, expected_indices)
    torch.testing.assert_close(values, expected_values, rtol=0, atol=5e-6)
    with monkeypatch.context() as m:  # without the kernels: PyTorch's operators, the same values exactly
        m.setattr(cpu_kernels, "library", lambda: None)
        fallback = cpu_kernels.top_log_probs(logits, k)
    assert torch.equal(fallback[0], expected_values) and torch.equal(fallback[1], expected_indices)


@needs_compiler
def test_top_log_probs_kernel_keeps_ties_in_index_order_and_handles_minus_infinity() -> None:
    logits = torch.tensor([[1.0, 3.0, 3.0, 0.5, 3.0, -float("inf")] * 4, [-float("inf")] * 23 + [0.0]])
    values, indices = cpu_kernels.top_log_probs(logits, 4)
    assert indices[0].tolist() == [1, 2, 4, 7]  # the four 3.0s, lowest index first
    assert indices[1, 0] == 23 and values[1, 0] == 0.0 and bool(torch.isinf(values[1, 1:]).all())
    torch.testing.assert_close(values[0], torch.log_softmax(logits[0], -1)[[1, 2, 4, 7]], rtol=0, atol=5e-6)
