"""Token cross-entropy with label smoothing, fused: one pass over the logits.

`F.cross_entropy` over bf16 logits casts them to fp32 (a full copy), runs log-softmax
(another), gathers the NLL, and on the way back fills a zero tensor for the NLL
gradient, runs log-softmax's backward and casts the gradient back: five passes over a
(tokens, vocabulary) tensor that is the largest of the step. Here the forward pass,
a cache-sized block of rows at a time, casts the block once, takes its log-sum-exp
and, when a gradient is wanted, writes softmax minus the smoothed target straight into
the gradient; backward only scales that by the upstream gradient. The loss and
gradient are those of `F.cross_entropy(logits.float(), target, ignore_index=PAD,
label_smoothing=eps, reduction="sum")` (tests/fast/test_loss.py); on CPUs the C++
kernel (csrc/cross_entropy.cpp) does the same in one loop where it is built.
"""

from __future__ import annotations

from typing import Any

import torch

from stages.model.fast import cpu_kernels, record

ROWS = 128  # rows per block on CPUs: 128 x 8,000 fp32 values = 4 MB, within the caches


class _SmoothedCrossEntropy(torch.autograd.Function):
    """The forward pass also writes the gradient for an upstream gradient of 1, since
    it has the softmax of each block in hand; backward only scales it. Recomputing
    the softmax in backward cost a second cast and exponential over every logit."""

    @staticmethod
    def forward(
        ctx: Any, logits: torch.Tensor, target: torch.Tensor, smoothing: float, pad: int, block: int, want_grad: bool
    ) -> torch.Tensor:
        # logits (N, V) in any float dtype; target (N,)
        if cpu_kernels.cross_entropy_applies(logits, target):
            record.ran("cross_entropy.kernel")
            total, ctx.grad = cpu_kernels.smoothed_cross_entropy(logits, target, smoothing, pad, want_grad)
            ctx.dtype = logits.dtype
            return total
        record.ran("cross_entropy.operators")
        rows_total, classes = logits.shape
        keep = (target != pad).float()  # (N,)
        total = torch.zeros((), dtype=torch.float32, device=logits.device)
        # fp16 would lose the small probabilities before the gradient scaler can scale them
        grad = torch.empty_like(logits, dtype=_grad_dtype(logits.dtype)) if want_grad else None
        for start in range(0, rows_total, block):
            rows = slice(start, start + block)
            x = logits[rows].to(torch.float32, copy=True)  # (R, V)
            picked = x.gather(1, target[rows, None]).squeeze(1)
            mean = x.mean(dim=-1) if smoothing else None
            peak = x.amax(dim=-1, keepdim=True)
            e = x.sub_(peak).exp_()  # exp(x - max), in place
            norm = e.sum(dim=-1, keepdim=True)
            row_lse = (peak + norm.log()).squeeze(1)
            loss = (1.0 - smoothing) * (row_lse - picked)
            if mean is not None:
                loss = loss + smoothing * (row_lse - mean)  # mean over classes of -log p
            total += (loss * keep[rows]).sum()
            if grad is not None:  # softmax minus the smoothed target, zero on padding rows
                weight = keep[rows, None]  # (R, 1)
                p = e.mul_(weight / norm)
                if smoothing:
                    p.sub_(weight * (smoothing / classes))
                p.scatter_add_(1, target[rows, None], weight * -(1.0 - smoothing))
                grad[rows] = p
        ctx.grad, ctx.dtype = grad, logits.dtype
        return total

    @staticmethod
    def backward(ctx: Any, grad_total: torch.Tensor) -> tuple[torch.Tensor, None, None, None, None, None]:
        grad: torch.Tensor | None = ctx.grad
        if grad is None:
            raise RuntimeError("smoothed_cross_entropy: backward through the same loss twice is not supported")
        ctx.grad = None
        return grad.mul_(grad_total).to(ctx.dtype), None, None, None, None, None


def _grad_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float32 if dtype == torch.float16 else dtype


def smoothed_cross_entropy(logits: torch.Tensor, target: torch.Tensor, smoothing: float, pad: int) -> torch.Tensor:
    """Summed label-smoothed cross-entropy over the rows whose target is not `pad`.
    logits (N, V), target (N,). On CPUs the rows go in cache-sized blocks; on GPUs in one
    block, since a kernel launch per block would cost more than the cache saves."""
    block = block_rows(logits)
    want_grad = torch.is_grad_enabled() and logits.requires_grad
    loss: torch.Tensor = _SmoothedCrossEntropy.apply(logits, target, smoothing, pad, block, want_grad)
    return loss


def block_rows(logits: torch.Tensor) -> int:
    return ROWS if logits.device.type == "cpu" else max(1, logits.size(0))
