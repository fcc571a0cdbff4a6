"""Attention: each decoder output looks back over every encoder position.

Scores are computed for all target positions at once (Luong-style attention on the
decoder's outputs), so training without input feeding runs without a Python loop over
time steps; with input feeding the decoder calls it once per step, with T = 1.
"""

from __future__ import annotations

import torch
from torch import nn

from stages.model.config import AttentionKind

ADDITIVE = ("bahdanau", "luong_concat")
MULTIPLICATIVE = ("luong_dot", "luong_general")


class Attention(nn.Module):
    """Additive (Bahdanau, Luong concat) or multiplicative (Luong dot / general) attention.

    bahdanau: v^T tanh(W_q h_t + b + W_k h_s); luong_concat: v^T tanh(W [h_t; h_s]),
    the same without the bias (Luong et al. 2015, eq. 8); luong_dot: h_t^T h_s;
    luong_general: h_t^T W h_s. In every kind the keys (W_k h_s, W h_s) are projected
    once per sentence. `none` is the no-attention baseline: one fixed context vector
    per sentence, the mean of its encoder outputs, whatever the decoder is doing.
    """

    def __init__(self, kind: AttentionKind, query_size: int, key_size: int, attn_size: int = 0):
        super().__init__()
        self.kind = kind
        if kind == "luong_dot" and query_size != key_size:
            raise ValueError(f"luong_dot needs query size {query_size} == key size {key_size}")
        if kind == "luong_general":
            self.key_proj = nn.Linear(key_size, query_size, bias=False)
        elif kind in ADDITIVE:
            attn_size = attn_size or query_size
            self.key_proj = nn.Linear(key_size, attn_size, bias=False)
            self.query_proj = nn.Linear(query_size, attn_size, bias=kind == "bahdanau")
            self.energy = nn.Linear(attn_size, 1, bias=False)

    def precompute_keys(self, memory: torch.Tensor) -> torch.Tensor:
        """Project the encoder outputs once per sentence. (B, S, D) -> (B, S, A)."""
        if self.kind in ("luong_dot", "none"):
            return memory
        return self.key_proj(memory)

    def scores(self, query: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """query (B, T, H), keys (B, S, A) -> unnormalised scores (B, T, S)."""
        if self.kind == "none":
            return query.new_zeros(query.size(0), query.size(1), keys.size(1))  # uniform weights
        if self.kind in ADDITIVE:
            q = self.query_proj(query)  # (B, T, A)
            return self.energy(torch.tanh(q.unsqueeze(2) + keys.unsqueeze(1))).squeeze(-1)
        return torch.bmm(query, keys.transpose(1, 2))

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, memory: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (B, T, H); keys (B, S, A); memory (B, S, D); mask (B, S) True on real tokens.

        Returns context (B, T, D) and weights (B, T, S), which sum to one over the real
        source positions and are exactly zero on padding.
        """
        scores = self.scores(query, keys).float().masked_fill(~mask.unsqueeze(1), float("-inf"))
        weights = torch.softmax(scores, dim=-1)
        context = torch.bmm(weights.to(memory.dtype), memory)  # (B, T, D)
        return context, weights


def look_back(query: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
    """Decoder self-attention (`model.decoder_self_attention`; Werlen et al. 2018): the
    queries (R, T, E) of T steps, already projected, over `history` (R, t0 + T, E), the
    embeddings of every target token fed so far, these T steps' inputs last -> (R, T, E),
    for each step the mix of the embeddings fed up to and including its own input (a
    step never sees a later one). Scores are dot products, softmax in fp32."""
    steps, total = query.size(1), history.size(1)
    scores = torch.bmm(query, history.transpose(1, 2)).float()  # (R, T, t0 + T)
    positions = torch.arange(total, device=query.device)
    visible = positions.unsqueeze(0) <= positions[total - steps :].unsqueeze(1)  # (T, t0 + T)
    weights = torch.softmax(scores.masked_fill(~visible, float("-inf")), dim=-1)
    return torch.bmm(weights.to(history.dtype), history)
