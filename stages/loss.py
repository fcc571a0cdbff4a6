"""Token cross-entropy with label smoothing, fused: one pass forward, one pass backward.

`F.cross_entropy` over bf16 logits casts them to fp32 (a full copy), runs log-softmax
(another), gathers the NLL, and on the way back fills a zero tensor for the NLL
gradient, runs log-softmax's backward and casts the gradient back: five passes over a
(tokens, vocabulary) tensor that is the largest of the step. Here the forward keeps
only the log-sum-exp per row, and the backward writes softmax minus the smoothed
target straight into the gradient, a cache-sized block of rows at a time. The loss
and gradient are those of `F.cross_entropy(logits.float(), target, ignore_index=PAD,
label_smoothing=eps, reduction="sum")` (tests/test_loss.py); for a 2-core CPU
training step of the 8k-vocabulary benchmark model this made training 26-39 % faster
(bench/bench_train_speed.py, README).
"""

from __future__ import annotations

from typing import Any

import torch

ROWS = 128  # rows per block on CPUs: 128 x 8,000 fp32 values = 4 MB, within the caches


class _SmoothedCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, target: torch.Tensor, smoothing: float, pad: int, block: int
    ) -> torch.Tensor:
        # logits (N, V) in any float dtype; target (N,)
        keep = target != pad
        lse = torch.empty(logits.size(0), dtype=torch.float32, device=logits.device)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        for start in range(0, logits.size(0), block):
            rows = slice(start, start + block)
            x = logits[rows].float()  # (R, V)
            row_lse = torch.logsumexp(x, dim=-1)
            lse[rows] = row_lse
            loss = (1.0 - smoothing) * (row_lse - x.gather(1, target[rows, None]).squeeze(1))
            if smoothing:
                loss = loss + smoothing * (row_lse - x.mean(dim=-1))  # mean over classes of -log p
            total += (loss * keep[rows]).sum()
        ctx.save_for_backward(logits, target, lse, keep)
        ctx.smoothing, ctx.block = smoothing, block
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None]:
        logits, target, lse, keep = ctx.saved_tensors
        smoothing: float = ctx.smoothing
        block: int = ctx.block
        scale = keep.float() * grad_total  # (N,)
        grad = torch.empty_like(logits)
        hit = torch.full((min(block, logits.size(0)), 1), -(1.0 - smoothing), device=logits.device)
        for start in range(0, logits.size(0), block):
            rows = slice(start, start + block)
            p = logits[rows].to(torch.float32, copy=True).sub_(lse[rows, None]).exp_()  # softmax (R, V)
            if smoothing:
                p.sub_(smoothing / logits.size(1))
            p.scatter_add_(1, target[rows, None], hit[: p.size(0)])
            grad[rows] = p.mul_(scale[rows, None])
        return grad, None, None, None, None


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float, pad: int) -> torch.Tensor:
    """Summed label-smoothed cross-entropy over the rows whose target is not `pad`.
    logits (N, V), target (N,). On CPUs the rows go in cache-sized blocks; on GPUs in one
    block, since a kernel launch per block would cost more than the cache saves."""
    block = block_rows(logits)
    loss: torch.Tensor = _SmoothedCrossEntropy.apply(logits, target, smoothing, pad, block)
    return loss


def block_rows(logits: torch.Tensor) -> int:
    return ROWS if logits.device.type == "cpu" else max(1, logits.size(0))
