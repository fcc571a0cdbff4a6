"""The CPU dropout mask of stages/model/dropout.py: rate, scaling, gradient, determinism."""

from __future__ import annotations

import pytest
import torch

from stages.model.dropout import Dropout, dropout, keep_mask


@pytest.mark.parametrize("p", [0.1, 0.2, 0.5])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mask_drops_at_rate_p_and_keeps_the_expectation(p: float, dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    mask = keep_mask((301, 1001), p, dtype, torch.device("cpu"))  # an odd count: a partial last draw
    assert mask.shape == (301, 1001) and mask.dtype == dtype
    kept = mask != 0
    assert abs(1 - kept.float().mean().item() - p) < 0.005  # 301,301 samples: sd about 0.0009
    threshold = round(p * 32768)
    assert torch.all(mask[kept].float() == torch.tensor(32768 / (32768 - threshold), dtype=dtype).float())
    assert abs(mask.float().mean().item() - 1) < 0.01
    # the four quarters of a draw are independent: each position's rate is p
    quarter_rates = [1 - kept.flatten()[i::4].float().mean().item() for i in range(4)]
    assert max(abs(r - p) for r in quarter_rates) < 0.01


def test_dropout_is_identity_in_eval_and_at_p_zero_and_reproducible() -> None:
    x = torch.randn(64, 33)
    layer = Dropout(0.3).eval()
    assert layer(x) is x and dropout(x, 0.0, True) is x
    layer.train()
    torch.manual_seed(4)
    a = layer(x)
    torch.manual_seed(4)
    assert torch.equal(a, layer(x))
    assert not torch.equal(a, layer(x))  # a fresh mask each call


def test_gradient_is_the_mask() -> None:
    torch.manual_seed(2)
    x = torch.randn(40, 50, requires_grad=True)
    torch.manual_seed(3)
    out = dropout(x, 0.25, True)
    out.sum().backward()
    torch.manual_seed(3)
    mask = keep_mask(x.shape, 0.25, x.dtype, x.device)
    assert x.grad is not None and torch.equal(x.grad, mask)
    assert torch.equal(out, x.detach() * mask)
