from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import stages.model.fast.loss
from stages.model.fast import cpu_kernels
from stages.model.fast.loss import ROWS, smoothed_cross_entropy


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("path", ["kernel", "blocks", "one_block"])  # one_block: the GPU path, all rows at once
def test_fused_loss_and_gradient_equal_cross_entropy(
    dtype: torch.dtype, smoothing: float, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if path == "kernel" and cpu_kernels.library() is None:
        pytest.skip("no C++ compiler for the CPU kernels")
    if path != "kernel":
        monkeypatch.setattr(cpu_kernels, "library", lambda: None)
    if path == "one_block":
        monkeypatch.setattr(stages.model.fast.loss, "block_rows", lambda logits: logits.size(0))
    torch.manual_seed(0)
    rows, vocab = 2 * ROWS + 37, 301  # several blocks of rows, the last one short
    logits = (3 * torch.randn(rows, vocab)).to(dtype).requires_grad_()
    target = torch.randint(1, vocab, (rows,))
    target[::5] = 0  # padding
    fused = smoothed_cross_entropy(logits, target, smoothing, pad=0)
    (2.5 * fused).backward()
    fused_grad = logits.grad.clone()  # type: ignore[union-attr]
    logits.grad = None
    plain = F.cross_entropy(logits.float(), target, ignore_index=0, label_smoothing=smoothing, reduction="sum")
    (2.5 * plain).backward()
    assert torch.allclose(fused.detach(), plain.detach(), rtol=1e-5)
    # bf16: the gradient is rounded once when written and once when scaled, so within one ulp
    atol, rtol = (1e-6, 1e-5) if dtype == torch.float32 else (1e-2, 2**-7)
    assert torch.allclose(fused_grad.float(), logits.grad.float(), atol=atol, rtol=rtol)  # type: ignore[union-attr]
    assert fused_grad.dtype == dtype
    assert torch.all(fused_grad[::5] == 0)  # padded rows get no gradient


def test_fused_loss_leaves_fp32_logits_untouched() -> None:
    logits = torch.randn(10, 7, requires_grad=True)
    before = logits.detach().clone()
    smoothed_cross_entropy(logits, torch.arange(10) % 7, 0.1, pad=0).backward()
    assert torch.equal(logits.detach(), before)


def test_fused_loss_without_gradient_and_with_fp16_logits() -> None:
    torch.manual_seed(1)
    logits = 3 * torch.randn(ROWS + 9, 50)
    target = torch.randint(1, 50, (ROWS + 9,))
    plain = F.cross_entropy(logits, target, ignore_index=0, label_smoothing=0.1, reduction="sum")
    with torch.no_grad():  # validation: no gradient is written
        assert torch.allclose(smoothed_cross_entropy(logits, target, 0.1, pad=0), plain, rtol=1e-5)
    half = logits.half().requires_grad_()  # the gradient is kept in fp32 until scaled, then cast
    loss = smoothed_cross_entropy(half, target, 0.1, pad=0)
    (loss * 1024.0).backward()
    expected = torch.softmax(half.detach().float(), -1) - F.one_hot(target, 50) * 0.9 - 0.1 / 50
    assert half.grad is not None and half.grad.dtype == torch.float16
    assert torch.allclose(half.grad.float(), (1024.0 * expected).half().float(), atol=0.5)
    with pytest.raises(RuntimeError, match="backward through the same loss twice"):
        loss2 = smoothed_cross_entropy(logits.clone().requires_grad_(), target, 0.1, pad=0)
        loss2.backward(retain_graph=True)
        loss2.backward()


def test_kernel_refuses_targets_outside_the_vocabulary() -> None:
    if cpu_kernels.library() is None:
        pytest.skip("no C++ compiler for the CPU kernels")
    with pytest.raises(IndexError, match="out of range"):
        smoothed_cross_entropy(torch.randn(4, 7), torch.tensor([1, 2, 7, 0]), 0.1, pad=0)
