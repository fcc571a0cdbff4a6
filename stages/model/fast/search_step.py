"""One decoder step for search, with the products that do not change between steps
taken once.

In search, the decoder RNN's input product W_ih e(y) + b depends only on the previous
token, so for every token of the target vocabulary it is one row of a table computed
once per model: a gather replaces a matrix product per step. The combine layer's
context half W_ctx (weights @ memory) equals weights @ (memory W_ctx^T), and the
projected memory is computed once per batch of sentences, so a step never forms a
context vector. For the default model (embeddings 256, LSTM decoder 512, encoder
output 512) that removes 0.78 of the 4.2 million multiply-adds of a hypothesis step.

With input feeding (Luong et al. 2015) the decoder RNN's input is [e(y); fed vector]:
the embedding half of its product comes from the same per-token table, the fed half is
one product with the previous step's attentional vector, which the state carries per
hypothesis. Beams of a sentence keep sharing one row of encoder memory, where the
reference loop copies the memory for every hypothesis at every step.

The step is the model's own arithmetic in another order: it must equal
`Seq2Seq.step`'s reference branch, one step of `Seq2Seq._decode`
(tests/fast/test_search_step.py), for every cell, attention kind and depth, with and
without input feeding, in fp32 and under bf16 autocast (the tables stay fp32; autocast
casts the step's products as it casts the reference's). It runs in inference only, on
the model's plain (not quantized) modules.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from stages.model.fast.cells import gru_update, lstm_update, simple_update
from stages.model.state import DecoderParts, DecoderState, Hidden

PLAIN_RNNS = (nn.RNN, nn.GRU, nn.LSTM)


@dataclass
class StepTables:
    """What a model's search steps share, for one version of its weights."""

    version: tuple[tuple[int, int], ...]  # (data pointer, version counter) of every parameter
    embedded: torch.Tensor  # (V, G): layer 0's input product (with the biases that add to it) per token
    w_feed: torch.Tensor | None  # (H, G): layer 0's product with the fed vector (input feeding only)
    w_ih: list[torch.Tensor]  # per layer above 0: (X, G)
    b_in: list[torch.Tensor]  # per layer: bias added to the input product (above layer 0)
    w_hh: list[torch.Tensor]  # per layer: (H, G)
    b_hh: list[torch.Tensor]  # per layer: bias added to the hidden product (zeros where folded)
    w_ctx: torch.Tensor  # (H, D): the combine layer's context half
    w_out: torch.Tensor  # (H, H): the combine layer's decoder-output half, transposed
    w_gen: torch.Tensor | None  # (V', H), (V',): the output layer's rows of the model's output pieces
    b_gen: torch.Tensor | None  # (both None when it scores the whole vocabulary)


def applies(model: DecoderParts) -> bool:
    """Whether `decode_step` can run this model in its current mode."""
    return (
        not model.training
        and not torch.is_grad_enabled()
        and type(model.decoder_rnn) in PLAIN_RNNS
        and type(model.combine) is nn.Linear
        and type(model.tgt_embed) is nn.Embedding
    )


def _weights_version(model: DecoderParts) -> tuple[tuple[int, int], ...]:
    # Inference tensors (made under inference_mode) keep no version counter: -1.
    pieces = model.output_pieces
    restricted = ((-1, 0) if pieces is None else (pieces.data_ptr(), len(pieces)),)
    return tuple((p.data_ptr(), -1 if p.is_inference() else p._version) for p in model.parameters()) + restricted


def step_tables(model: DecoderParts) -> StepTables:
    """The model's tables (fp32, whatever autocast is in force), rebuilt when any of its
    weights changed since the last call."""
    version = _weights_version(model)
    cached = getattr(model, "_step_tables", None)
    if cached is not None and cached.version == version:
        return cached
    with torch.autocast(model.combine.weight.device.type, enabled=False):
        tables = _build_tables(model, version)
    setattr(model, "_step_tables", tables)  # a cache on the model, not a parameter
    return tables


def _build_tables(model: DecoderParts, version: tuple[tuple[int, int], ...]) -> StepTables:
    rnn, gru = model.decoder_rnn, model.decoder_rnn.mode == "GRU"
    w_ih, b_in, w_hh, b_hh = [], [], [], []  # w_ih for the layers above 0
    for layer in range(rnn.num_layers):
        ih, hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        bias_ih, bias_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
        if gru:  # the candidate gate needs the hidden product's bias inside r * (...)
            b_in.append(bias_ih)
            b_hh.append(bias_hh)
        else:
            b_in.append(bias_ih + bias_hh)
            b_hh.append(torch.zeros_like(bias_hh))
        if layer:
            w_ih.append(ih.t().contiguous())
        w_hh.append(hh.t().contiguous())
    enc = model.combine.weight.size(1) - model.cfg.decoder_hidden
    ih0, size = getattr(rnn, "weight_ih_l0"), model.cfg.embedding_size
    pieces, gen = model.output_pieces, model.generator
    embed = model.tgt_embed.weight if pieces is None else model.tgt_embed.weight.index_select(0, pieces)
    return StepTables(
        version=version,
        embedded=F.linear(embed, ih0[:, :size], b_in[0]),  # rows: the output pieces (all, unrestricted)
        w_feed=ih0[:, size:].t().contiguous() if model.cfg.input_feeding else None,
        w_ih=w_ih,
        b_in=b_in,
        w_hh=w_hh,
        b_hh=b_hh,
        w_ctx=model.combine.weight[:, :enc].contiguous(),
        w_out=model.combine.weight[:, enc:].t().contiguous(),
        w_gen=None if pieces is None else gen.weight.index_select(0, pieces),
        b_gen=None if pieces is None or gen.bias is None else gen.bias.index_select(0, pieces),
    )


def _rnn_step(mode: str, gx: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, w_hh: torch.Tensor,
              b_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One cell step from the input product gx (R, G) and the previous h (R, H), c."""
    if mode == "GRU":
        return gru_update(gx, torch.addmm(b_hh, h, w_hh), h), None
    gates = torch.addmm(gx, h, w_hh)  # b_hh is folded into gx
    if c is not None:  # LSTM
        return lstm_update(gates, c)
    return simple_update(mode, gates), None


def _recur(model: DecoderParts, tables: StepTables, prev: torch.Tensor, hidden: Hidden,
           feed: torch.Tensor | None) -> tuple[torch.Tensor, Hidden]:
    """prev (R,), the fed vectors (R, H) or None -> the top layer's output (R, H) and
    the new hidden state."""
    mode = model.decoder_rnn.mode
    hs, cs = hidden if isinstance(hidden, tuple) else (hidden, None)
    new_h, new_c = [], []
    inp = prev
    for layer in range(model.decoder_rnn.num_layers):
        if layer == 0:
            gx = tables.embedded.index_select(0, prev)  # (R, G)
            if tables.w_feed is not None and feed is not None:
                gx = torch.addmm(gx, feed, tables.w_feed)
            elif torch.is_autocast_enabled(gx.device.type):  # as the reference's product would come out
                gx = gx.to(torch.get_autocast_dtype(gx.device.type))
        else:
            gx = torch.addmm(tables.b_in[layer], inp, tables.w_ih[layer - 1])
        h, c = _rnn_step(mode, gx, hs[layer], None if cs is None else cs[layer], tables.w_hh[layer],
                         tables.b_hh[layer])
        new_h.append(h)
        if c is not None:
            new_c.append(c)
        inp = h
    stacked = torch.stack(new_h)
    return inp, ((stacked, torch.stack(new_c)) if new_c else stacked)


def decode_step(model: DecoderParts, prev: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
    """prev (R,) -> log-probabilities (R, V) of the next token and the new state, as
    `Seq2Seq.step` would give them; with `Seq2Seq.restrict_output`, V' pieces, whose
    indices prev holds, and only their rows of the output layer are multiplied."""
    # Looked up once per search: checking every weight's version is a loop over all
    # parameters, a visible share of a batch-1 greedy step, and weights do not change
    # within a search.
    tables = state.tables if state.tables is not None else step_tables(model)
    out, hidden = _recur(model, tables, prev, state.hidden, state.feed)  # (R, H)
    memory_c = state.memory_c if state.memory_c is not None else F.linear(state.memory, tables.w_ctx)
    rows = out.size(0)
    query = out.view(rows // state.beam, state.beam, -1)  # a sentence's beams query together
    mixed, weights = model.attention(query, state.keys, memory_c, state.mask)  # (B, beam, H), (B, beam, S)
    attentional = torch.tanh(torch.addmm(mixed.view(rows, -1), out, tables.w_out))  # (R, H)
    logits = model.generator(attentional) if tables.w_gen is None else F.linear(attentional, tables.w_gen, tables.b_gen)
    log_probs = torch.log_softmax(logits.float(), dim=-1)
    feed = attentional if model.cfg.input_feeding else None
    new_state = replace(state, hidden=hidden, last_attention=weights.view(rows, -1), memory_c=memory_c, tables=tables,
                        feed=feed)
    return log_probs, new_state
