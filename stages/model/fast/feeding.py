"""The input-feeding decoder loop (Luong et al. 2015), optimised: the attentional vector
of step t-1 is part of the decoder RNN's input at step t, so decoding runs one step at a
time.

Everything that does not depend on the previous step is done once per batch: the
embedding part of the RNN's input product (in `StepwiseRNN`), the padding mask as an
additive bias, the combine layer's context half applied to the encoder memory, and the
dropout mask of the fed vectors. Multiplicative attention with a linear combine layer
runs as one C++ kernel call per step on CPUs (csrc/attention.cpp).

It must equal `Seq2Seq._decode_fed_reference`, forward and gradients
(tests/fast/test_feeding.py); the kernel must equal this loop on PyTorch operators
(tests/fast/test_cpu_kernels.py).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from stages.model.attention import MULTIPLICATIVE, Attention
from stages.model.dropout import keep_mask
from stages.model.fast import cpu_kernels, record, stepwise
from stages.model.fast.stepwise import StepProduct, StepwiseRNN
from stages.model.state import DecoderParts, DecoderState, Hidden


class _Combine:
    """Attention weights (B, 1, S) and decoder output (B, H) -> tanh(W_c [context; h]) (B, H).

    W_c [context; h] = weights @ (memory W_ctx^T) + h W_out^T: with the memory projected
    once per batch, a step needs no context vector at all.
    """

    def __init__(self, combine: nn.Linear, memory: torch.Tensor, dtype: torch.dtype):
        enc = memory.size(-1)
        self.dtype = dtype
        self.memory_c = StepProduct(F.linear(memory, combine.weight[:, :enc]).to(dtype))  # (B, S, H)
        self.w_out = StepProduct(combine.weight[:, enc:].t().to(dtype))  # (H, H)

    def __call__(self, weights: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        mixed = self.memory_c(self.w_out(None, out).unsqueeze(1), weights.to(self.dtype))  # (B, 1, H)
        return torch.tanh(mixed.squeeze(1))


class _Scores:
    """Decoder output (B, H) -> attention scores (B, 1, S); the keys' gradient for
    multiplicative attention is taken over all steps at once."""

    def __init__(self, attention: Attention, keys: torch.Tensor, dtype: torch.dtype):
        self.attention, self.keys = attention, keys
        self.product = StepProduct(keys.transpose(1, 2).to(dtype)) if attention.kind in MULTIPLICATIVE else None

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        if self.product is not None:
            return self.product(None, out.unsqueeze(1))
        return self.attention.scores(out.unsqueeze(1), self.keys)


class _AttendStep(torch.autograd.Function):
    """`_FusedAttention`'s step as one autograd node; the gradients of the keys and the
    projected memory are left to their `StepProduct`s, which take them over all steps.
    The attention weights it returns carry no gradient: training uses them only as the
    returned alignments."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, out: torch.Tensor, proj: torch.Tensor, keys_proxy: torch.Tensor, memc_proxy: torch.Tensor,
        fused: "_FusedAttention", keep: Optional[torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        weights, weights_low, tanh_out, feed = cpu_kernels.attend_forward(
            out, fused.keys, fused.bias, fused.memc, proj, keep)
        ctx.fused, ctx.index = fused, fused.record(out, weights_low)
        ctx.save_for_backward(tanh_out, weights, keep)
        ctx.mark_non_differentiable(weights)
        return feed, weights

    @staticmethod
    def backward(ctx: Any, grad_feed: torch.Tensor, _: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        tanh_out, weights, keep = ctx.saved_tensors
        fused: _FusedAttention = ctx.fused
        grad_proj, grad_scores, grad_out = cpu_kernels.attend_backward(
            grad_feed, keep, tanh_out, weights, fused.keys, fused.memc)
        fused.gradients(ctx.index, grad_scores, grad_proj)
        return grad_out, grad_proj, None, None, None, None


class _FusedAttention:
    """Scores, softmax, combine and the feed's dropout of one step in one CPU kernel
    call (stages/model/fast/csrc/), for multiplicative attention with a linear combine
    layer: about a dozen operators forward and as many backward per target position,
    each with its own dispatch and pass over memory, in `_Scores` and `_Combine`."""

    def __init__(self, scores: _Scores, combine: _Combine, pad: torch.Tensor):
        assert scores.product is not None
        self.keys_owner, self.memc_owner, self.w_out = scores.product, combine.memory_c, combine.w_out
        self.keys = self.keys_owner.w.transpose(1, 2)  # (B, S, H)
        self.memc = self.memc_owner.w  # (B, S, H)
        self.bias = pad.squeeze(1)  # (B, S)

    @staticmethod
    def of(scores: _Scores, combine: _Combine, pad: torch.Tensor, dtype: torch.dtype) -> Optional[_FusedAttention]:
        """The fused step where it applies (CPU, kernels built, fp32 or bf16), else None."""
        if scores.product is None:
            return None
        fused = _FusedAttention(scores, combine, pad)
        applies = (cpu_kernels.attend_applies(fused.keys, fused.memc) and fused.keys.dtype == dtype
                   and cpu_kernels.attend_applies(fused.bias) and fused.bias.dtype == torch.float32)
        return fused if applies else None

    def __call__(self, out: torch.Tensor, keep: Optional[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """out (B, H) -> the fed vector (B, H) after dropout, attention weights (B, 1, S)."""
        proj = self.w_out(None, out)  # (B, H): the combine layer's half for the decoder output
        out = out.contiguous()
        if not torch.is_grad_enabled():
            weights, _, _, feed = cpu_kernels.attend_forward(out, self.keys, self.bias, self.memc, proj, keep)
            return feed, weights.unsqueeze(1)
        feed, weights = _AttendStep.apply(out, proj, self.keys_owner.proxy, self.memc_owner.proxy, self, keep)
        return feed, weights.unsqueeze(1)

    def record(self, out: torch.Tensor, weights: torch.Tensor) -> tuple[Optional[int], Optional[int]]:
        """Note a step's inputs to the keys' and memory's gathered gradients (where they
        want one); where in each owner's list the step's gradients go."""
        index: list[Optional[int]] = []
        for owner, x in ((self.keys_owner, out), (self.memc_owner, weights)):  # (B, H), (B, S)
            index.append(len(owner.inputs) if owner.deferred else None)
            if owner.deferred:
                owner.inputs.append(x.unsqueeze(1))
                owner.grads.append(None)
        return index[0], index[1]

    def gradients(self, index: tuple[Optional[int], Optional[int]], grad_scores: torch.Tensor,
                  grad_mixed: torch.Tensor) -> None:
        for owner, at, g in ((self.keys_owner, index[0], grad_scores), (self.memc_owner, index[1], grad_mixed)):
            if at is not None:
                owner.grads[at] = g.unsqueeze(1)  # (B, 1, S), (B, 1, H)


def applies(model: DecoderParts) -> bool:
    """Whether `decode_fed` can run the model: plain recurrent and combine modules (a
    quantized model runs the reference loop)."""
    return stepwise.applies(model.decoder_rnn) and type(model.combine) is nn.Linear


def decode_fed(model: DecoderParts, emb: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, Hidden, torch.Tensor]:
    """emb (B, T, E) -> attentional vectors (B, T, H) after dropout, the final hidden
    state, attention weights (B, T, S); for a model where `applies` holds."""
    batch, steps, size = emb.size(0), emb.size(1), model.cfg.decoder_hidden
    rnn = StepwiseRNN(model.decoder_rnn, emb, state.hidden)
    dtype = rnn.dtype  # the autocast dtype under autocast
    combine = _Combine(model.combine, state.memory, dtype)
    pad = torch.zeros(state.mask.shape, device=emb.device).masked_fill(~state.mask, float("-inf")).unsqueeze(1)  # (B, 1, S)
    keep: Optional[torch.Tensor] = None  # dropout of the fed vectors, drawn for all steps at once
    if model.training and model.cfg.dropout > 0:
        keep = keep_mask((steps, batch, size), model.cfg.dropout, dtype, emb.device)
    feed = state.feed if state.feed is not None else emb.new_zeros(batch, size)
    scores = _Scores(model.attention, state.keys, dtype)
    fused = _FusedAttention.of(scores, combine, pad, dtype)
    record.ran("input_feeding.stepwise")
    if fused is not None:
        record.ran("input_feeding.attention_kernel")
    fed, weights = [], []
    for t in range(steps):
        out = rnn.step(t, feed)  # (B, H)
        if fused is not None:
            feed, w = fused(out, None if keep is None else keep[t])
        else:
            w = torch.softmax(scores(out) + pad, dim=-1)  # (B, 1, S)
            feed = combine(w, out)
            if keep is not None:
                feed = feed * keep[t]
        fed.append(feed)
        weights.append(w)
    return torch.stack(fed, dim=1), rnn.final_hidden(), torch.cat(weights, dim=1)
