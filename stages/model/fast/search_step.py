"""One decoder step for search, with the products that do not change between steps
taken once.

In search, the decoder RNN's input product W_ih e(y) + b depends only on the previous
token, so for every token of the target vocabulary it is one row of a table computed
once per model: a gather replaces a matrix product per step. The combine layer's
context half W_ctx (weights @ memory) equals weights @ (memory W_ctx^T), and the
projected memory is computed once per batch of sentences, so a step never forms a
context vector. For the default model (embeddings 256, LSTM decoder 512, encoder
output 512) that removes 0.78 of the 4.2 million multiply-adds of a hypothesis step.

The step is the model's own arithmetic in another order: it must equal
`Seq2Seq.step`'s reference branch, one step of `Seq2Seq._decode`
(tests/fast/test_search_step.py). It runs in inference only, without autocast and
without input feeding, on the model's plain (not quantized) modules.
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
    w_ih: list[torch.Tensor]  # per layer above 0: (X, G)
    b_in: list[torch.Tensor]  # per layer: bias added to the input product (above layer 0)
    w_hh: list[torch.Tensor]  # per layer: (H, G)
    b_hh: list[torch.Tensor]  # per layer: bias added to the hidden product (zeros where folded)
    w_ctx: torch.Tensor  # (H, D): the combine layer's context half
    w_out: torch.Tensor  # (H, H): the combine layer's decoder-output half, transposed


def applies(model: DecoderParts) -> bool:
    """Whether `decode_step` can run this model in its current mode."""
    return (
        not model.training
        and not torch.is_grad_enabled()
        and not model.cfg.input_feeding
        and type(model.decoder_rnn) in PLAIN_RNNS
        and type(model.combine) is nn.Linear
        and type(model.tgt_embed) is nn.Embedding
        and not torch.is_autocast_enabled(model.combine.weight.device.type)
    )


def _weights_version(model: DecoderParts) -> tuple[tuple[int, int], ...]:
    # Inference tensors (made under inference_mode) keep no version counter: -1.
    return tuple((p.data_ptr(), -1 if p.is_inference() else p._version) for p in model.parameters())


def step_tables(model: DecoderParts) -> StepTables:
    """The model's tables, rebuilt when any of its weights changed since the last call."""
    version = _weights_version(model)
    cached = getattr(model, "_step_tables", None)
    if cached is not None and cached.version == version:
        return cached
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
    tables = StepTables(
        version=version,
        embedded=F.linear(model.tgt_embed.weight, getattr(rnn, "weight_ih_l0"), b_in[0]),
        w_ih=w_ih,
        b_in=b_in,
        w_hh=w_hh,
        b_hh=b_hh,
        w_ctx=model.combine.weight[:, :enc].contiguous(),
        w_out=model.combine.weight[:, enc:].t().contiguous(),
    )
    setattr(model, "_step_tables", tables)  # a cache on the model, not a parameter
    return tables


def _rnn_step(mode: str, gx: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None, w_hh: torch.Tensor,
              b_hh: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One cell step from the input product gx (R, G) and the previous h (R, H), c."""
    if mode == "GRU":
        return gru_update(gx, torch.addmm(b_hh, h, w_hh), h), None
    gates = torch.addmm(gx, h, w_hh)  # b_hh is folded into gx
    if c is not None:  # LSTM
        return lstm_update(gates, c)
    return simple_update(mode, gates), None


def _recur(model: DecoderParts, tables: StepTables, prev: torch.Tensor, hidden: Hidden) -> tuple[torch.Tensor, Hidden]:
    """prev (R,) -> the top layer's output (R, H) and the new hidden state."""
    mode = model.decoder_rnn.mode
    hs, cs = hidden if isinstance(hidden, tuple) else (hidden, None)
    new_h, new_c = [], []
    inp = prev
    for layer in range(model.decoder_rnn.num_layers):
        if layer == 0:
            gx = tables.embedded.index_select(0, prev)  # (R, G)
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
    `Seq2Seq.step` would give them."""
    # Looked up once per search: checking every weight's version is a loop over all
    # parameters, a visible share of a batch-1 greedy step, and weights do not change
    # within a search.
    tables = state.tables if state.tables is not None else step_tables(model)
    out, hidden = _recur(model, tables, prev, state.hidden)  # (R, H)
    memory_c = state.memory_c if state.memory_c is not None else F.linear(state.memory, tables.w_ctx)
    rows = out.size(0)
    query = out.view(rows // state.beam, state.beam, -1)  # a sentence's beams query together
    mixed, weights = model.attention(query, state.keys, memory_c, state.mask)  # (B, beam, H), (B, beam, S)
    attentional = torch.tanh(torch.addmm(mixed.view(rows, -1), out, tables.w_out))  # (R, H)
    log_probs = torch.log_softmax(model.generator(attentional).float(), dim=-1)
    new_state = replace(state, hidden=hidden, last_attention=weights.view(rows, -1), memory_c=memory_c, tables=tables)
    return log_probs, new_state
