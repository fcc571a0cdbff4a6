"""Attention: each decoder output looks back over every encoder position.

Scores are computed for all target positions at once (Luong-style attention on the
decoder's outputs), so training runs without a Python loop over time steps.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

AttentionKind = Literal["none", "bahdanau", "luong_dot", "luong_general"]


class Attention(nn.Module):
    """Additive (Bahdanau) or multiplicative (Luong dot / general) attention.

    `none` is the no-attention baseline: one fixed context vector per sentence, the mean
    of its encoder outputs, whatever the decoder is doing.
    """

    def __init__(self, kind: AttentionKind, query_size: int, key_size: int, attn_size: int = 0):
        super().__init__()
        self.kind = kind
        if kind == "luong_dot" and query_size != key_size:
            raise ValueError(f"luong_dot needs query size {query_size} == key size {key_size}")
        if kind == "luong_general":
            self.key_proj = nn.Linear(key_size, query_size, bias=False)
        elif kind == "bahdanau":
            attn_size = attn_size or query_size
            self.key_proj = nn.Linear(key_size, attn_size, bias=False)
            self.query_proj = nn.Linear(query_size, attn_size, bias=True)
            self.energy = nn.Linear(attn_size, 1, bias=False)

    def precompute_keys(self, memory: torch.Tensor) -> torch.Tensor:
        """Project the encoder outputs once per sentence. (B, S, D) -> (B, S, A)."""
        if self.kind in ("luong_dot", "none"):
            return memory
        return self.key_proj(memory)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, T, H); keys (B, S, A); memory (B, S, D); mask (B, S) True on real tokens.

        Returns context (B, T, D) and weights (B, T, S), which sum to one over the real
        source positions and are exactly zero on padding.
        """
        if self.kind == "none":
            scores = query.new_zeros(query.size(0), query.size(1), memory.size(1))  # uniform weights
        elif self.kind == "bahdanau":
            q = self.query_proj(query)  # (B, T, A)
            scores = self.energy(torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)
        else:
            scores = torch.bmm(query, keys.transpose(1, 2))  # (B, T, S)
        scores = scores.float().masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights.to(memory.dtype), memory)  # (B, T, D)
        return context, weights
