"""The input-feeding decoder loop (Luong et al. 2015): the attentional vector of step
t-1 is part of the decoder RNN's input at step t, so decoding runs one step at a time.

Everything that does not depend on the previous step is done once per batch: the
embedding part of the RNN's input product (in `StepwiseRNN`), the padding mask as an
additive bias, the combine layer's context half applied to the encoder memory, and the
dropout mask of the fed vectors. The generator runs once after the loop, over all steps.
"""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Optional

import torch
import torch.nn.functional as F
from torch import nn

from stages.attention import MULTIPLICATIVE, Attention
from stages.dropout import keep_mask
from stages.recurrence import Hidden, StepProduct, stepper

if TYPE_CHECKING:
    from stages.model import DecoderState, Seq2Seq


class _Combine:
    """Attention weights (B, 1, S) and decoder output (B, H) -> tanh(W_c [context; h]) (B, H).

    W_c [context; h] = weights @ (memory W_ctx^T) + h W_out^T: with the memory projected
    once per batch, a step needs no context vector at all.
    """

    def __init__(self, combine: nn.Module, memory: torch.Tensor, dtype: torch.dtype):
        self.combine, self.memory = combine, memory
        self.fast = type(combine) is nn.Linear  # not for quantized modules
        if self.fast:
            enc = memory.size(-1)
            weight = typing.cast(nn.Linear, combine).weight
            self.dtype = dtype
            self.memory_c = StepProduct(F.linear(memory, weight[:, :enc]).to(dtype))  # (B, S, H)
            self.w_out = StepProduct(weight[:, enc:].t().to(dtype))  # (H, H)

    def __call__(self, weights: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        if self.fast:
            mixed = self.memory_c(self.w_out(None, out).unsqueeze(1), weights.to(self.dtype))  # (B, 1, H)
            return torch.tanh(mixed.squeeze(1))
        context = torch.bmm(weights.to(self.memory.dtype), self.memory).squeeze(1)  # (B, D)
        return torch.tanh(self.combine(torch.cat([context, out.to(context.dtype)], dim=-1)))


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


def decode_fed(model: Seq2Seq, emb: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, Hidden, torch.Tensor]:
    """emb (B, T, E) -> attentional vectors (B, T, H) after dropout, the final hidden
    state, attention weights (B, T, S)."""
    batch, steps, size = emb.size(0), emb.size(1), model.cfg.decoder_hidden
    rnn = stepper(model.decoder_rnn, emb, state.hidden)
    dtype = rnn.dtype  # the autocast dtype under autocast
    combine = _Combine(model.combine, state.memory, dtype)
    pad = torch.zeros(state.mask.shape, device=emb.device).masked_fill(~state.mask, float("-inf")).unsqueeze(1)  # (B, 1, S)
    keep: Optional[torch.Tensor] = None  # dropout of the fed vectors, drawn for all steps at once
    if model.training and model.cfg.dropout > 0:
        keep = keep_mask((steps, batch, size), model.cfg.dropout, dtype, emb.device)
    feed = state.feed if state.feed is not None else emb.new_zeros(batch, size)
    scores = _Scores(model.attention, state.keys, dtype)
    fed, weights = [], []
    for t in range(steps):
        out = rnn.step(t, feed)  # (B, H)
        w = torch.softmax(scores(out) + pad, dim=-1)  # (B, 1, S)
        feed = combine(w, out)
        if keep is not None:
            feed = feed * keep[t]
        fed.append(feed)
        weights.append(w)
    return torch.stack(fed, dim=1), rnn.final_hidden(), torch.cat(weights, dim=1)
