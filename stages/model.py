"""The recurrent encoder-decoder with attention, and its one-step decoding interface.

Search talks to the model only through `encode`, `init_state` and
`step(prev_tokens, state) -> (log_probs, state)`; `DecoderState.reorder(index)` lets
beam search follow the surviving hypotheses.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from typing import Literal, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from stages.attention import Attention, AttentionKind
from stages.tokenization import PAD_ID

Cell = Literal["rnn", "gru", "lstm"]
_RNN = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}
Hidden = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    cell: Cell = "lstm"
    embedding_size: int = 256
    encoder_hidden: int = 256
    encoder_layers: int = 1
    bidirectional: bool = True
    decoder_hidden: int = 512
    decoder_layers: int = 1
    attention: AttentionKind = "luong_general"
    bridge: Literal["learned", "last", "zeros"] = "learned"
    dropout: float = 0.2
    tie_embeddings: bool = False
    init_range: float = 0.1


def check_model_config(cfg: ModelConfig) -> list[str]:
    """Problems with combinations of keys, each message naming the keys involved."""
    problems = []
    enc_out = cfg.encoder_hidden * (2 if cfg.bidirectional else 1)
    if cfg.attention == "luong_dot" and enc_out != cfg.decoder_hidden:
        problems.append(
            f"model.attention=luong_dot needs the encoder output size ({enc_out} = "
            f"model.encoder_hidden x directions) to equal model.decoder_hidden "
            f"({cfg.decoder_hidden}); use luong_general or change one of them"
        )
    if cfg.bridge == "last" and enc_out != cfg.decoder_hidden:
        problems.append(
            f"model.bridge=last copies the encoder's final state ({enc_out} = model.encoder_hidden x "
            f"directions) into the decoder, so it must equal model.decoder_hidden ({cfg.decoder_hidden}); "
            f"use bridge: learned or change one of them"
        )
    if cfg.tie_embeddings and cfg.embedding_size != cfg.decoder_hidden:
        problems.append(
            f"model.tie_embeddings=true needs model.embedding_size ({cfg.embedding_size}) == "
            f"model.decoder_hidden ({cfg.decoder_hidden})"
        )
    for key in ("embedding_size", "encoder_hidden", "encoder_layers", "decoder_hidden", "decoder_layers"):
        if getattr(cfg, key) < 1:
            problems.append(f"model.{key}={getattr(cfg, key)}: must be at least 1")
    if not 0 <= cfg.dropout < 1:
        problems.append(f"model.dropout={cfg.dropout}: must be in [0, 1)")
    return problems


@dataclass
class DecoderState:
    """Everything the decoder carries between steps; every tensor is batch-first."""

    hidden: Hidden  # (layers, B, H), a pair for LSTMs
    memory: torch.Tensor  # (B, S, D) encoder outputs
    keys: torch.Tensor  # (B, S, A) attention keys, projected once
    mask: torch.Tensor  # (B, S) True on real source tokens
    last_attention: Optional[torch.Tensor] = None  # (B, S)

    def reorder_hypotheses(self, index: torch.Tensor) -> "DecoderState":
        """Reorder only what differs between hypotheses of one sentence.

        Beam search reorders within each sentence's beams, whose encoder memory, keys
        and mask are identical rows, so copying them every step would be wasted work.
        """
        if isinstance(self.hidden, tuple):
            hidden: Hidden = (self.hidden[0].index_select(1, index), self.hidden[1].index_select(1, index))
        else:
            hidden = self.hidden.index_select(1, index)
        attn = None if self.last_attention is None else self.last_attention.index_select(0, index)
        return DecoderState(hidden, self.memory, self.keys, self.mask, attn)

    def reorder(self, index: torch.Tensor) -> "DecoderState":
        if isinstance(self.hidden, tuple):
            hidden: Hidden = (self.hidden[0].index_select(1, index), self.hidden[1].index_select(1, index))
        else:
            hidden = self.hidden.index_select(1, index)
        attn = None if self.last_attention is None else self.last_attention.index_select(0, index)
        return DecoderState(
            hidden,
            self.memory.index_select(0, index),
            self.keys.index_select(0, index),
            self.mask.index_select(0, index),
            attn,
        )


def reverse_padded(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of x (B, S, ...) within its own length; padding stays put."""
    positions = torch.arange(x.size(1), device=x.device).unsqueeze(0)  # (1, S)
    index = (lens.unsqueeze(1) - 1 - positions).clamp(min=0)
    index = torch.where(positions < lens.unsqueeze(1), index, positions)  # (B, S)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class Encoder(nn.Module):
    """Embedding + (bi)directional RNN, one fused RNN call per direction and layer.

    The backward direction runs over each sentence reversed within its own length, so
    right padding never reaches a real position: no packed sequences are needed, and
    the fused (oneDNN / cuDNN) kernels run forward and backward.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, cfg.embedding_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(cfg.dropout)
        dirs = 2 if cfg.bidirectional else 1
        self.layers = nn.ModuleList()
        for layer in range(cfg.encoder_layers):
            size_in = cfg.embedding_size if layer == 0 else cfg.encoder_hidden * dirs
            self.layers.append(
                nn.ModuleList(_RNN[cfg.cell](size_in, cfg.encoder_hidden, batch_first=True) for _ in range(dirs))
            )

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S), src_lens (B,) -> outputs (B, S, dirs*H), final top-layer state (B, dirs*H)."""
        x = self.dropout(self.embed(src))  # (B, S, E)
        last = (src_lens - 1).clamp(min=0).view(-1, 1, 1)
        finals: list[torch.Tensor] = []
        for depth, directions in enumerate(self.layers):
            if depth:
                x = self.dropout(x)
            outs: list[torch.Tensor] = []
            finals = []
            for d, rnn in enumerate(typing.cast(nn.ModuleList, directions)):
                inp = reverse_padded(x, src_lens) if d else x
                out, _ = rnn(inp)  # (B, S, H)
                finals.append(out.gather(1, last.expand(-1, 1, out.size(2))).squeeze(1))
                outs.append(reverse_padded(out, src_lens) if d else out)
            x = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        return x, torch.cat(finals, dim=-1)


class Seq2Seq(nn.Module):
    """Bidirectional recurrent encoder, recurrent decoder with attention after the RNN."""

    def __init__(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int):
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg, src_vocab)
        dirs = 2 if cfg.bidirectional else 1
        enc_out = cfg.encoder_hidden * dirs
        if cfg.bridge == "learned":
            self.bridge_h = nn.Linear(cfg.encoder_hidden * dirs, cfg.decoder_hidden * cfg.decoder_layers)
        if cfg.bridge == "learned" and cfg.cell == "lstm":
            self.bridge_c = nn.Linear(cfg.encoder_hidden * dirs, cfg.decoder_hidden * cfg.decoder_layers)
        self.tgt_embed = nn.Embedding(tgt_vocab, cfg.embedding_size, padding_idx=PAD_ID)
        self.dropout = nn.Dropout(cfg.dropout)
        self.decoder_rnn = _RNN[cfg.cell](
            cfg.embedding_size,
            cfg.decoder_hidden,
            num_layers=cfg.decoder_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.decoder_layers > 1 else 0.0,
        )
        self.attention = Attention(cfg.attention, cfg.decoder_hidden, enc_out)
        self.combine = nn.Linear(enc_out + cfg.decoder_hidden, cfg.decoder_hidden, bias=False)
        self.generator = nn.Linear(cfg.decoder_hidden, tgt_vocab)
        self._init_weights(cfg.init_range)
        if cfg.tie_embeddings:
            self.generator.weight = self.tgt_embed.weight

    def _init_weights(self, scale: float) -> None:
        for name, param in self.named_parameters():
            nn.init.uniform_(param, -scale, scale)
            if "bias_hh" in name and self.cfg.cell == "lstm":
                # Forget-gate bias 1: gradients flow through the cell state from the start.
                size = param.numel() // 4
                with torch.no_grad():
                    param[size : 2 * size].fill_(1.0)
        for embed in (self.encoder.embed, self.tgt_embed):
            with torch.no_grad():
                embed.weight[PAD_ID].zero_()

    def _bridge(self, final: torch.Tensor) -> Hidden:
        """final (B, dirs*H) -> the decoder's initial hidden state (layers, B, H).

        learned: tanh of a linear map; last: the encoder's final state itself (LSTM cell
        state zero); zeros: no information from the encoder but through attention.
        """
        cfg, batch = self.cfg, final.size(0)
        if cfg.bridge != "learned":
            zeros = final.new_zeros(cfg.decoder_layers, batch, cfg.decoder_hidden)
            h = zeros if cfg.bridge == "zeros" else final.unsqueeze(0).expand(cfg.decoder_layers, -1, -1).contiguous()
            return (h, zeros) if cfg.cell == "lstm" else h

        def spread(x: torch.Tensor) -> torch.Tensor:  # (B, L*H) -> (L, B, H)
            return torch.tanh(x).view(batch, cfg.decoder_layers, cfg.decoder_hidden).transpose(0, 1).contiguous()

        if cfg.cell == "lstm":
            return spread(self.bridge_h(final)), spread(self.bridge_c(final))
        return spread(self.bridge_h(final))

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> DecoderState:
        """src (B, S) -> the decoder's initial state."""
        memory, final = self.encoder(src, src_lens)
        mask = src != PAD_ID
        keys = self.attention.precompute_keys(memory)
        return DecoderState(self._bridge(final), memory, keys, mask)

    def _decode(self, tgt_in: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, Hidden, torch.Tensor]:
        emb = self.dropout(self.tgt_embed(tgt_in))
        out, hidden = self.decoder_rnn(emb, state.hidden)  # (B, T, H)
        context, weights = self.attention(out, state.keys, state.memory, state.mask)
        attentional = torch.tanh(self.combine(torch.cat([context, out], dim=-1)))
        logits = self.generator(self.dropout(attentional))  # (B, T, V)
        return logits, hidden, weights

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V) for the whole target in one fused RNN call."""
        state = self.encode(src, src_lens)
        logits, _, _ = self._decode(tgt_in, state)
        return logits

    def step(self, prev_tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """prev_tokens (B,) -> log-probabilities (B, V) of the next token, and the new state."""
        logits, hidden, weights = self._decode(prev_tokens.unsqueeze(1), state)
        log_probs = torch.log_softmax(logits.squeeze(1).float(), dim=-1)
        return log_probs, DecoderState(hidden, state.memory, state.keys, state.mask, weights.squeeze(1))


def sequence_loss(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Summed token cross-entropy over non-pad positions. logits (B, T, V), target (B, T)."""
    return F.cross_entropy(
        logits.float().reshape(-1, logits.size(-1)), target.reshape(-1),
        ignore_index=PAD_ID, label_smoothing=smoothing, reduction="sum",
    )
