"""The recurrent encoder-decoder with attention, and its one-step decoding interface.

Search talks to the model only through `encode`, `init_state` and
`step(prev_tokens, state) -> (log_probs, state)`; `DecoderState.reorder(index)` lets
beam search follow the surviving hypotheses.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

import torch
from torch import nn

from stages.corpus.vocab import PAD_ID
from stages.errors import ConfigError
from stages.model.attention import Attention
from stages.model.config import ModelConfig
from stages.model.dropout import Dropout
from stages.model.encoder import RNN_CLASSES, Encoder
from stages.model.fast.feeding import decode_fed
from stages.model.fast.recurrence import Hidden
from stages.model.fast.search_step import StepTables, decode_step, fast_step_applies
from stages.model.initialization import init_weights
from stages.model.loss import smoothed_cross_entropy


@dataclass
class DecoderState:
    """Everything the decoder carries between steps; every tensor is batch-first."""

    hidden: Hidden  # (layers, B*beam, H), a pair for LSTMs
    memory: torch.Tensor  # (B, S, D) encoder outputs
    keys: torch.Tensor  # (B, S, A) attention keys, projected once
    mask: torch.Tensor  # (B, S) True on real source tokens
    last_attention: Optional[torch.Tensor] = None  # (B*beam, S)
    feed: Optional[torch.Tensor] = None  # (B*beam, H) previous attentional vector (input feeding only)
    beam: int = 1  # hypothesis rows per sentence sharing one row of memory, keys and mask
    memory_c: Optional[torch.Tensor] = None  # (B, S, H) memory times the combine layer's context half (search)
    tables: Optional[StepTables] = None  # the search step's weight tables, looked up at a search's first step

    def expand_beams(self, k: int) -> "DecoderState":
        """k hypothesis rows per sentence (rows b*k .. b*k+k-1), all sharing the
        sentence's encoder memory, keys and mask, which are not copied."""
        index = torch.arange(self.mask.size(0), device=self.mask.device).repeat_interleave(k)
        return replace(self._rows(index), beam=k)

    def flatten_beams(self) -> "DecoderState":
        """One row of memory per hypothesis row again (a copy), for code that needs it."""
        if self.beam == 1:
            return self
        index = torch.arange(self.mask.size(0), device=self.mask.device).repeat_interleave(self.beam)
        return replace(self._sentences(index), beam=1)

    def reorder_hypotheses(self, index: torch.Tensor) -> "DecoderState":
        """Reorder only what differs between hypotheses of one sentence.

        Beam search reorders within each sentence's beams, whose encoder memory, keys
        and mask are shared (or identical rows), so copying them every step would be
        wasted work.
        """
        return self._rows(index)

    def reorder(self, index: torch.Tensor) -> "DecoderState":
        """Reorder everything: for sentences leaving or entering the batch. With beams,
        `index` takes whole groups of `beam` rows, one sentence each."""
        sentences = index.view(-1, self.beam)[:, 0] // self.beam if self.beam > 1 else index
        return self._sentences(sentences)._rows(index)

    def _rows(self, index: torch.Tensor) -> "DecoderState":
        if isinstance(self.hidden, tuple):
            hidden: Hidden = (self.hidden[0].index_select(1, index), self.hidden[1].index_select(1, index))
        else:
            hidden = self.hidden.index_select(1, index)

        def rows(x: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if x is None else x.index_select(0, index)

        return replace(self, hidden=hidden, last_attention=rows(self.last_attention), feed=rows(self.feed))

    def _sentences(self, index: torch.Tensor) -> "DecoderState":
        return replace(
            self, memory=self.memory.index_select(0, index), keys=self.keys.index_select(0, index),
            mask=self.mask.index_select(0, index),
            memory_c=None if self.memory_c is None else self.memory_c.index_select(0, index),
        )


class Seq2Seq(nn.Module):
    """Bidirectional recurrent encoder, recurrent decoder with attention after the RNN.

    With `input_feeding` (Luong et al. 2015), the decoder RNN's input at step t is
    [embedding(y_{t-1}); attentional vector of step t-1] (zeros at t = 0).
    """

    def __init__(self, cfg: ModelConfig, src_vocab: int, tgt_vocab: int):
        super().__init__()
        if cfg.share_embeddings and src_vocab != tgt_vocab:
            raise ConfigError(
                f"model.share_embeddings=true needs one vocabulary for both languages, but the source "
                f"has {src_vocab} pieces and the target {tgt_vocab}; set tokenizer.joint: true or "
                f"model.share_embeddings: false"
            )
        self.cfg = cfg
        self.encoder = Encoder(cfg, src_vocab)
        dirs = 2 if cfg.bidirectional else 1
        enc_out = cfg.encoder_hidden * dirs
        if cfg.bridge == "learned":
            self.bridge_h = nn.Linear(cfg.encoder_hidden * dirs, cfg.decoder_hidden * cfg.decoder_layers)
        if cfg.bridge == "learned" and cfg.cell == "lstm":
            self.bridge_c = nn.Linear(cfg.encoder_hidden * dirs, cfg.decoder_hidden * cfg.decoder_layers)
        self.tgt_embed = (
            self.encoder.embed if cfg.share_embeddings
            else nn.Embedding(tgt_vocab, cfg.embedding_size, padding_idx=PAD_ID)
        )
        self.dropout = Dropout(cfg.dropout)
        self.decoder_rnn = RNN_CLASSES[cfg.cell](
            cfg.embedding_size + (cfg.decoder_hidden if cfg.input_feeding else 0),
            cfg.decoder_hidden,
            num_layers=cfg.decoder_layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.decoder_layers > 1 else 0.0,
        )
        self.attention = Attention(cfg.attention, cfg.decoder_hidden, enc_out)
        self.combine = nn.Linear(enc_out + cfg.decoder_hidden, cfg.decoder_hidden, bias=False)
        self.generator = nn.Linear(cfg.decoder_hidden, tgt_vocab)
        init_weights(self, cfg.init, cfg.init_range, cfg.recurrent_init)
        if cfg.tie_embeddings:
            self.generator.weight = self.tgt_embed.weight

    def tied_weights(self) -> dict[str, str]:
        """State-dict names that alias another parameter: alias -> the name saved."""
        ties = {}
        if self.cfg.share_embeddings:
            ties["tgt_embed.weight"] = "encoder.embed.weight"
        if self.cfg.tie_embeddings:
            ties["generator.weight"] = ties.get("tgt_embed.weight", "tgt_embed.weight")
        return ties

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
        memory, final = self.encoder(src, src_lens)  # (B, S, D), (B, D)
        mask = src != PAD_ID
        keys = self.attention.precompute_keys(memory)
        feed = memory.new_zeros(src.size(0), self.cfg.decoder_hidden) if self.cfg.input_feeding else None
        return DecoderState(self._bridge(final), memory, keys, mask, feed=feed)

    def _attend(self, out: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder outputs (B*beam, T, H) -> attentional vectors (B*beam, T, H), weights (B*beam, T, S).

        A sentence's beams query its memory together, as if they were time steps:
        (B*beam, T, H) -> (B, beam*T, H), so the memory is never copied per hypothesis.
        """
        rows, steps = out.size(0), out.size(1)
        query = out.reshape(rows // state.beam, state.beam * steps, -1)
        context, weights = self.attention(query, state.keys, state.memory, state.mask)  # (B, beam*T, D)
        context, weights = context.reshape(rows, steps, -1), weights.reshape(rows, steps, -1)
        return torch.tanh(self.combine(torch.cat([context, out], dim=-1))), weights

    def _decode(self, tgt_in: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """Teacher-forced decoding of tgt_in (B, T) from `state`: logits (B, T, V), the
        state after the last step, attention weights (B, T, S)."""
        emb = self.dropout(self.tgt_embed(tgt_in))  # (B, T, E)
        if self.cfg.input_feeding:
            state = state.flatten_beams()  # the fed loop wants a memory row per hypothesis (copied once)
            attentional, hidden, weights = decode_fed(self, emb, state)
            feed: Optional[torch.Tensor] = attentional[:, -1]
        else:  # one fused RNN call over all steps
            out, hidden = self.decoder_rnn(emb, state.hidden)  # (B, T, H)
            attentional, weights = self._attend(out, state)
            attentional, feed = self.dropout(attentional), None
        logits = self.generator(attentional)  # (B, T, V), one matmul over all steps
        return logits, replace(state, hidden=hidden, last_attention=weights[:, -1], feed=feed), weights

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, T, V)."""
        state = self.encode(src, src_lens)
        logits, _, _ = self._decode(tgt_in, state)
        return logits

    def step(self, prev_tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """prev_tokens (B,) -> log-probabilities (B, V) of the next token, and the new state."""
        if fast_step_applies(self):
            return decode_step(self, prev_tokens, state)
        logits, state, _ = self._decode(prev_tokens.unsqueeze(1), state)
        return torch.log_softmax(logits.squeeze(1).float(), dim=-1), state


def sequence_loss(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Summed token cross-entropy over non-pad positions. logits (B, T, V), target (B, T)."""
    return smoothed_cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), smoothing, PAD_ID)
