from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import stages.loss
from stages.loss import ROWS, smoothed_cross_entropy


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
@pytest.mark.parametrize("one_block", [False, True])  # True: the GPU path, all rows at once
def test_fused_loss_and_gradient_equal_cross_entropy(
    dtype: torch.dtype, smoothing: float, one_block: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if one_block:
        monkeypatch.setattr(stages.loss, "block_rows", lambda logits: logits.size(0))
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
    tolerance = 1e-6 if dtype == torch.float32 else 1e-2
    assert torch.allclose(fused_grad.float(), logits.grad.float(), atol=tolerance)  # type: ignore[union-attr]
    assert fused_grad.dtype == dtype
    assert torch.all(fused_grad[::5] == 0)  # padded rows get no gradient


def test_fused_loss_leaves_fp32_logits_untouched() -> None:
    logits = torch.randn(10, 7, requires_grad=True)
    before = logits.detach().clone()
    smoothed_cross_entropy(logits, torch.arange(10) % 7, 0.1, pad=0).backward()
    assert torch.equal(logits.detach(), before)
