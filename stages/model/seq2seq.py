"""The recurrent encoder-decoder with attention: the specification.

Every computation of the model is written here once, plainly: teacher-forced decoding
(`_decode`), the input-feeding loop (`_decode_fed_reference`), one search step
(`step`) and the loss (`sequence_loss`). Where an optimised path in `stages/model/fast/`
applies, it runs instead, and it must give what the code here gives: each one names
its reference and the test that holds them equal (`stages.model.fast.PATHS`), and
each dispatch is tallied in `fast.record` so a run's summary says which code ran.

Search talks to the model only through `encode` and
`step(prev_tokens, state) -> (log_probs, state)`; `DecoderState.reorder(index)` lets
beam search follow the surviving hypotheses.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Optional

import torch
from torch import nn

from stages.corpus.vocab import PAD_ID, SPECIAL_IDS
from stages.errors import ConfigError
from stages.model.attention import Attention, look_back
from stages.model.config import ModelConfig
from stages.model.dropout import Dropout
from stages.model.encoder import RNN_CLASSES, Encoder
from stages.model.fast import feeding, record, search_step
from stages.model.fast.loss import smoothed_cross_entropy
from stages.model.initialization import init_weights
from stages.model.state import DecoderState, Hidden


class Seq2Seq(nn.Module):
    """Bidirectional recurrent encoder, recurrent decoder with attention after the RNN.

    With `input_feeding` (Luong et al. 2015), the decoder RNN's input at step t is
    [embedding(y_{t-1}); attentional vector of step t-1] (zeros at t = 0).

    With `decoder_self_attention`, each step also attends over the embeddings of the
    target tokens fed so far (BOS, y_0 .. y_{t-1}): scores q_t . e_j with q_t = W_q h_t,
    and the weighted sum of those embeddings joins the combine layer's input,
    tanh(W_c [context; h_t; history_t]). This is the self-attentive residual decoder of
    Werlen et al. (2018), "Self-Attentive Residual Decoder for Neural Machine
    Translation" (NAACL), its summary taken into the attentional vector; it gives the
    decoder a direct look at the words it has written, such as the previous line's
    translation in front of a `data.target_context` target.
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
        history_size = cfg.embedding_size if cfg.decoder_self_attention else 0
        if cfg.decoder_self_attention:
            self.history_query = nn.Linear(cfg.decoder_hidden, cfg.embedding_size, bias=False)
        # its input: [context; decoder output] (; history mix with decoder self-attention)
        self.combine = nn.Linear(enc_out + cfg.decoder_hidden + history_size, cfg.decoder_hidden, bias=False)
        self.generator = nn.Linear(cfg.decoder_hidden, tgt_vocab)
        init_weights(self, cfg.init, cfg.init_range, cfg.recurrent_init)
        if cfg.tie_embeddings:
            self.generator.weight = self.tgt_embed.weight
        self.output_pieces: Optional[torch.Tensor] = None  # see restrict_output
        self.target_context = False  # trained with data.target_context (stages.decode.translation.separator_index)
        # search multiplies the decoder's weights in int8 (fast/int8.py); set by decoding.quantize=int8
        self.int8_search = False
        self.shortlist: Any = None  # a lexical shortlist (stages.decode.shortlist) that search applies per batch

    def restrict_output(self, pieces: Optional[torch.Tensor]) -> None:
        """Score only `pieces` (sorted target ids, the special tokens first) in `step`;
        None scores the whole vocabulary again.

        Restricted, `step` returns log-probabilities over the V' pieces, renormalised
        among them, and takes its previous tokens as indices into `pieces`: search runs
        in that smaller space, and its results map back through `pieces`. The special
        tokens keep their ids. Training (`forward`) always scores the whole vocabulary.
        """
        if pieces is not None:
            specials = torch.arange(len(SPECIAL_IDS))
            if pieces.dim() != 1 or len(pieces) < len(specials) or not torch.equal(pieces[: len(specials)].cpu(), specials) \
                    or bool((pieces[1:] <= pieces[:-1]).any()) or int(pieces[-1]) >= self.generator.out_features:
                raise ValueError("output pieces must be sorted, unique target ids below the vocabulary size, "
                                 "starting with the special tokens")
            pieces = pieces.to(self.generator.weight.device)
        self.output_pieces = pieces

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

    def _attend(self, out: torch.Tensor, state: DecoderState,
                history: Optional[torch.Tensor] = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Decoder outputs (B*beam, T, H) -> attentional vectors (B*beam, T, H), weights (B*beam, T, S).
        With decoder self-attention, `history` (B*beam, t0 + T, E) holds the embeddings of
        every target token fed so far, these T steps' inputs last.

        A sentence's beams query its memory together, as if they were time steps:
        (B*beam, T, H) -> (B, beam*T, H), so the memory is never copied per hypothesis.
        """
        rows, steps = out.size(0), out.size(1)
        query = out.reshape(rows // state.beam, state.beam * steps, -1)
        context, weights = self.attention(query, state.keys, state.memory, state.mask)  # (B, beam*T, D)
        context, weights = context.reshape(rows, steps, -1), weights.reshape(rows, steps, -1)
        mixed = [context, out] if history is None else [context, out, look_back(self.history_query(out), history)]
        return torch.tanh(self.combine(torch.cat(mixed, dim=-1))), weights

    def _decode(self, tgt_in: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """Teacher-forced decoding of tgt_in (B, T) from `state`: logits (B, T, V), the
        state after the last step, attention weights (B, T, S)."""
        attentional, state, weights = self._attentional(tgt_in, state)
        return self.generator(attentional), state, weights  # one matmul over all steps

    def _attentional(self, tgt_in: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState, torch.Tensor]:
        """Teacher-forced decoding up to the output layer: the attentional vectors
        (B, T, H) after dropout, the state after the last step, attention weights (B, T, S)."""
        emb = self.dropout(self.tgt_embed(tgt_in))  # (B, T, E)
        if self.cfg.input_feeding:
            state = state.flatten_beams()  # the fed loop wants a memory row per hypothesis (copied once)
            if feeding.applies(self):
                attentional, hidden, weights = feeding.decode_fed(self, emb, state)
            else:
                record.ran("input_feeding.reference")
                attentional, hidden, weights = self._decode_fed_reference(emb, state)
            feed: Optional[torch.Tensor] = attentional[:, -1]
            history = None
        else:  # one fused RNN call over all steps
            out, hidden = self.decoder_rnn(emb, state.hidden)  # (B, T, H)
            history, embedded = None, None
            if self.cfg.decoder_self_attention:  # the tokens fed so far, these steps' last
                history = tgt_in if state.history is None else torch.cat([state.history, tgt_in], dim=1)
                # From the start, the embeddings as fed (after dropout); after earlier steps
                # (search, in eval mode: no dropout), all of them looked up again.
                embedded = emb if state.history is None else self.tgt_embed(history)
            attentional, weights = self._attend(out, state, embedded)
            attentional, feed = self.dropout(attentional), None
        state = replace(state, hidden=hidden, last_attention=weights[:, -1], feed=feed, history=history)
        return attentional, state, weights

    def _decode_fed_reference(self, emb: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, Hidden, torch.Tensor]:
        """The input-feeding loop, one RNN call and one attention per step: emb (B, T, E)
        -> attentional vectors (B, T, H) after dropout, the final hidden state, attention
        weights (B, T, S). `state` has one memory row per hypothesis (beam 1)."""
        feed = state.feed if state.feed is not None else emb.new_zeros(emb.size(0), self.cfg.decoder_hidden)
        hidden, fed, weights = state.hidden, [], []
        for t in range(emb.size(1)):
            inp = torch.cat([emb[:, t], feed.to(emb.dtype)], dim=-1).unsqueeze(1)  # (B, 1, E + H)
            out, hidden = self.decoder_rnn(inp, hidden)  # (B, 1, H)
            attentional, w = self._attend(out, state)  # (B, 1, H), (B, 1, S)
            feed = self.dropout(attentional).squeeze(1)  # (B, H)
            fed.append(feed)
            weights.append(w)
        return torch.stack(fed, dim=1), hidden, torch.cat(weights, dim=1)

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor,
                tgt_out: Optional[torch.Tensor] = None, smoothing: float = 0.0, bucket: int = 128,
                loss_rows: Optional[int] = None) -> torch.Tensor:
        """Teacher-forced logits (B, T, V); given the targets tgt_out (B, T), the summed
        label-smoothed loss over their real (non-pad) tokens instead, as
        `sequence_loss(logits, tgt_out, smoothing)` would give it. With `loss_rows` n
        too, a (1 + B,) tensor: that loss over the first n targets only, then each
        target's log-probability in nats (the sum over its real tokens, as
        `sequence_log_probs` gives it, with gradients; training.context_margin).

        For the loss, the output layer multiplies only the rows whose target is real,
        padded with zero rows (pad targets) to a multiple of `bucket`: it skips the
        batch's padding, and the product takes one of a few shapes instead of a new one
        per batch, so that oneDNN's cache keeps a few primitives (each holding its own
        copy of the 4 MB bf16 output layer) rather than one per batch shape
        (bench/bench_memory.py).
        """
        state = self.encode(src, src_lens)
        if tgt_out is None:
            logits, _, _ = self._decode(tgt_in, state)
            return logits
        attentional, _, _ = self._attentional(tgt_in, state)
        real = tgt_out != PAD_ID
        rows, target = attentional[real], tgt_out[real]  # (N, H), (N,)
        extra = -rows.size(0) % bucket
        if extra:
            rows = torch.cat([rows, rows.new_zeros(extra, rows.size(1))])
            target = torch.cat([target, target.new_full((extra,), PAD_ID)])
        if loss_rows is None:
            return smoothed_cross_entropy(self.generator(rows), target, smoothing, PAD_ID)
        logits = self.generator(rows)
        counted = int(real[:loss_rows].sum())  # the rows are in (sentence, step) order
        loss = smoothed_cross_entropy(logits[:counted], target[:counted], smoothing, PAD_ID)
        kept = int(real.sum())
        picked = torch.log_softmax(logits[:kept].float(), dim=-1).gather(1, target[:kept, None]).squeeze(1)
        sentence = real.nonzero()[:, 0]
        sums = picked.new_zeros(real.size(0)).index_add(0, sentence, picked)
        return torch.cat([loss.float().view(1), sums])

    def sequence_log_probs(self, src: torch.Tensor, src_lens: torch.Tensor, tgt_in: torch.Tensor,
                           tgt_out: torch.Tensor, skip: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Teacher-forced log-probability of each given target (B,), in nats: the sum over
        its real (non-pad) tokens of log p(token | source, previous tokens), scored over
        the whole vocabulary. src (B, S), src_lens (B,), tgt_in (B, T) BOS + target,
        tgt_out (B, T) target + EOS, as `stages.corpus.batching.collate` builds them;
        `skip` (B,), when given, leaves each target's first tokens out of the sum (they
        still condition the rest: a previous line's translation in front of the target).
        Put the model in eval mode first (dropout)."""
        log_probs = torch.log_softmax(self.forward(src, src_lens, tgt_in).float(), dim=-1)
        picked = log_probs.gather(-1, tgt_out.unsqueeze(-1)).squeeze(-1)  # (B, T)
        ignored = tgt_out == PAD_ID
        if skip is not None:
            ignored |= torch.arange(tgt_out.size(1), device=tgt_out.device).unsqueeze(0) < skip.unsqueeze(1)
        return picked.masked_fill(ignored, 0.0).sum(dim=1)

    def step(self, prev_tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """prev_tokens (B,) -> log-probabilities (B, V) of the next token, and the new state
        (with `restrict_output`: V' pieces, and prev_tokens index them)."""
        logits, state = self.step_logits(prev_tokens, state)
        return torch.log_softmax(logits, dim=-1), state

    def step_logits(self, prev_tokens: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
        """`step` before the log-softmax: the output layer's scores (B, V) in fp32."""
        if search_step.applies(self):
            record.ran("search_step.int8" if self.int8_search else "search_step.tables")
            return search_step.decode_logits(self, prev_tokens, state)
        record.ran("search_step.reference")
        pieces = self.output_pieces
        if pieces is not None:
            prev_tokens = pieces.index_select(0, prev_tokens)
        logits, state, _ = self._decode(prev_tokens.unsqueeze(1), state)
        logits = logits.squeeze(1) if pieces is None else logits.squeeze(1).index_select(-1, pieces)
        return logits.float(), state


def sequence_loss(logits: torch.Tensor, target: torch.Tensor, smoothing: float) -> torch.Tensor:
    """Summed token cross-entropy over non-pad positions. logits (B, T, V), target (B, T)."""
    return smoothed_cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1), smoothing, PAD_ID)
