"""Dropout whose mask costs a quarter of a random draw per element on the CPU.

PyTorch's CPU dropout draws one Bernoulli sample per element (`bernoulli_`), a
noticeable share of a CPU training step. Here one 64-bit draw gives four 15-bit uniform
numbers (the low 15 bits of each 16-bit quarter; the top bit of a draw is always 0), and
an element is kept when its number is at least round(p * 32768). So the drop
probability is that threshold over 32,768 (0.2 -> 0.200012), and kept elements are
scaled by the exact inverse of the keep probability, which keeps every activation's
expectation unchanged. On GPUs `F.dropout`'s fused kernel is used as is.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_BITS = 15
_LEVELS = 1 << _BITS


def keep_mask(shape: torch.Size | tuple[int, ...], p: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A dropout mask of `shape` in `dtype`: 0 for dropped elements, 1 / keep-probability
    for kept ones, drawn from the default generator of `device`."""
    if device.type != "cpu":
        return F.dropout(torch.ones(shape, dtype=dtype, device=device), p)
    threshold = round(p * _LEVELS)
    count = math.prod(shape)
    draws = torch.empty((count + 3) // 4, dtype=torch.int64).random_()  # 63 random bits each
    quarters = draws.view(torch.int16)[:count].view(shape)
    keep = quarters.bitwise_and_(_LEVELS - 1) >= threshold
    return keep.to(dtype).mul_(_LEVELS / (_LEVELS - threshold))


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """`F.dropout(x, p, training)` with the mask of `keep_mask` on the CPU."""
    if not training or p == 0:
        return x
    if x.device.type != "cpu":
        return F.dropout(x, p, training)
    return x * keep_mask(x.shape, p, x.dtype, x.device)


class Dropout(nn.Dropout):
    """nn.Dropout with the mask of `keep_mask` on the CPU (no parameters, so checkpoints
    are unaffected)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
