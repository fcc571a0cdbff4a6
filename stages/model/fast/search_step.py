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
the model's plain modules.

With decoder self-attention (`model.decoder_self_attention`) the step appends the
previous token to the state's history (ids: a beam's reorder copies R x t ids, not
embeddings), looks up their embeddings in one gather and mixes them as
`Seq2Seq._attend` does (`attention.look_back`); the combine layer's history part and
the query projection stay fp32.

With `Seq2Seq.int8_search` (decoding.quantize=int8) the same step multiplies the
decoder's weights in int8 (`fast.int8`: per-row weight scales, a fixed input range that
keeps every row's result independent of its batch); the embedding table, attention and
the encoder stay fp32. There, for LSTM and plain RNN cells, a layer's input and
recurrent products are one: [x; h] times [W_x | W_hh] (x the fed vector in layer 0,
the layer below's output above it), one int8 product and one sum instead of two each.
GRU cells keep them apart: the candidate gate scales the recurrent product alone.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from stages.model.attention import look_back
from stages.model.fast import int8
from stages.model.fast.cells import gru_update, lstm_update, simple_update
from stages.model.state import DecoderParts, DecoderState, Hidden

PLAIN_RNNS = (nn.RNN, nn.GRU, nn.LSTM)


@dataclass
class StepTables:
    """What a model's search steps share, for one version of its weights.

    The products' weights are fp32 matrices, transposed for `torch.addmm`, or, with
    `Seq2Seq.int8_search`, int8 weights packed for `fast.int8` (`quantized` True); `mm(acc,
    x, w)` is acc + x W^T either way.
    """

    version: tuple[tuple[int, int], ...]  # (data pointer, version counter) of every parameter
    quantized: bool
    embedded: torch.Tensor  # (V_t, G): layer 0's input product (with the biases that add to it) per token, fp32
    row_of: torch.Tensor | None  # (V,) vocabulary id -> row of `embedded` (-1: none); None: the row is the id
    w_feed: Any  # (H, G): layer 0's product with the fed vector (input feeding only, else None)
    w_ih: list[Any]  # per layer above 0: (X, G)
    b_in: list[torch.Tensor]  # per layer: bias added to the input product (above layer 0)
    w_hh: list[Any]  # per layer: (H, G)
    b_hh: list[torch.Tensor]  # per layer: bias added to the hidden product (zeros where folded)
    w_xh: list[Any]  # per layer, int8 LSTM/RNN only: [W_x | W_hh] packed (above layer 0 with b_in), else None;
    # where it is set, that layer's w_ih / w_hh (and in layer 0 w_feed) are None
    w_ctx: torch.Tensor  # (H, D): the combine layer's context half, fp32
    w_out: Any  # (H, H): the combine layer's decoder-output half
    # With decoder self-attention (else None), fp32: the combine layer's history part (H, E)
    # and the history query's projection (E, H)
    w_hist: torch.Tensor | None
    w_query: torch.Tensor | None
    # The output side, rebuilt when `model.output_pieces` changes (per batch with a shortlist):
    rows: torch.Tensor | None  # (V',) the output pieces (vocabulary ids) the step scores; None: all
    w_gen: Any  # (V', H), (V',): the output layer's rows of those pieces; int8: always, with b_gen in it
    b_gen: torch.Tensor | None  # (both None in fp32 when it scores the whole vocabulary)

    def mm(self, acc: torch.Tensor, x: torch.Tensor, w: Any) -> torch.Tensor:
        """acc + x W^T, with `w` as these tables hold it."""
        return int8.add_product(acc, x, w) if self.quantized else torch.addmm(acc, x, w)


def applies(model: DecoderParts) -> bool:
    """Whether `decode_logits` can run this model in its current mode."""
    return (
        not model.training
        and not torch.is_grad_enabled()
        and type(model.decoder_rnn) in PLAIN_RNNS
        and type(model.combine) is nn.Linear
        and type(model.tgt_embed) is nn.Embedding
    )


def _weights_version(model: DecoderParts) -> tuple[tuple[int, int], ...]:
    # Inference tensors (made under inference_mode) keep no version counter: -1.
    weights = tuple((p.data_ptr(), -1 if p.is_inference() else p._version) for p in model.parameters())
    return weights + ((int(model.int8_search), 0),)


def forget_tables(model: DecoderParts) -> None:
    """Drop the model's cached tables, so the next step builds them from the weights as
    they are. Needed after weights change without their version counter moving: the
    fused optimizers (`torch.optim.Adam(fused=True)`, which training uses) update
    parameters in place without bumping it, so `_weights_version` cannot see training."""
    if hasattr(model, "_step_tables"):
        delattr(model, "_step_tables")


def step_tables(model: DecoderParts, output_rows: bool = True) -> StepTables:
    """The model's tables (fp32, whatever autocast is in force): the weight tables
    rebuilt when any of its weights changed since the last call (as their version
    counters tell; after a fused optimizer's step, call `forget_tables`) or when they lack
    a row for one of `model.output_pieces`, the output rows when `model.output_pieces` is
    another tensor (with `output_rows` False, left as they are: for a caller that only
    wants the weight tables built over the pieces set now)."""
    version = _weights_version(model)
    cached = getattr(model, "_step_tables", None)
    with torch.autocast(model.combine.weight.device.type, enabled=False):
        if cached is None or cached.version != version or not _covers(cached, model.output_pieces):
            cached = _build_tables(model, version)
        if output_rows and cached.rows is not model.output_pieces:
            cached = replace(cached, **_output_rows(model, cached.quantized))
    setattr(model, "_step_tables", cached)  # a cache on the model, not a parameter
    return cached


def _covers(tables: StepTables, pieces: torch.Tensor | None) -> bool:
    """Whether the embedded table has a row for every piece the step may be fed."""
    if tables.row_of is None:
        return True
    return pieces is not None and bool((tables.row_of.index_select(0, pieces) >= 0).all())


def _output_rows(model: DecoderParts, quantized: bool) -> dict[str, Any]:
    """The output layer's rows of `model.output_pieces` (all when None), as the step multiplies them."""
    pieces, gen = model.output_pieces, model.generator
    weight = gen.weight if pieces is None else gen.weight.index_select(0, pieces)
    bias = None if gen.bias is None else gen.bias if pieces is None else gen.bias.index_select(0, pieces)
    if quantized:
        return {"rows": pieces, "w_gen": int8.pack(weight, bias), "b_gen": None}
    if pieces is None:  # the model's own output layer
        return {"rows": None, "w_gen": None, "b_gen": None}
    return {"rows": pieces, "w_gen": weight, "b_gen": bias}


def _build_tables(model: DecoderParts, version: tuple[tuple[int, int], ...]) -> StepTables:
    rnn, gru, quantized = model.decoder_rnn, model.decoder_rnn.mode == "GRU", model.int8_search

    def matrix(w: torch.Tensor, bias: torch.Tensor | None = None) -> Any:  # the weight of x W^T (+ b)
        return int8.pack(w, bias) if quantized else w.t().contiguous()

    b_in: list[torch.Tensor] = []
    b_hh: list[torch.Tensor] = []
    w_ih: list[Any] = []  # for the layers above 0
    w_hh: list[Any] = []
    w_xh: list[Any] = []
    enc = model.cfg.encoder_output
    ih0, size = getattr(rnn, "weight_ih_l0"), model.cfg.embedding_size
    for layer in range(rnn.num_layers):
        ih, hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
        bias_ih, bias_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
        if gru:  # the candidate gate needs the hidden product's bias inside r * (...)
            b_in.append(bias_ih)
            b_hh.append(bias_hh)
        else:
            b_in.append(bias_ih + bias_hh)
            b_hh.append(torch.zeros_like(bias_hh))
        x_weight: torch.Tensor | None = ih if layer else ih[:, size:] if model.cfg.input_feeding else None
        if quantized and not gru and x_weight is not None:  # one product of [x; h]: the two apart are never used
            w_xh.append(int8.pack(torch.cat([x_weight, hh], dim=1), b_in[layer] if layer else None))
            w_hh.append(None)
        else:
            w_xh.append(None)
            w_hh.append(matrix(hh))
        if layer:
            w_ih.append(None if w_xh[-1] is not None else matrix(ih))
    # Rows only for the pieces the model may output (a shortlist narrows them further):
    # previous tokens are always among them.
    history_query = getattr(model, "history_query", None)  # decoder self-attention's query projection
    pieces, embed, row_of = model.output_pieces, model.tgt_embed.weight, None
    if pieces is not None:
        embed = embed.index_select(0, pieces)
        row_of = torch.full((model.tgt_embed.num_embeddings,), -1, dtype=torch.long, device=pieces.device)
        row_of[pieces] = torch.arange(len(pieces), device=pieces.device)
    return StepTables(
        version=version,
        quantized=quantized,
        embedded=F.linear(embed, ih0[:, :size], b_in[0]),
        row_of=row_of,
        w_feed=matrix(ih0[:, size:]) if model.cfg.input_feeding and w_xh[0] is None else None,
        w_ih=w_ih,
        b_in=b_in,
        w_hh=w_hh,
        b_hh=b_hh,
        w_xh=w_xh,
        w_ctx=model.combine.weight[:, :enc].contiguous(),
        w_out=matrix(model.combine.weight[:, enc : enc + model.cfg.decoder_hidden]),
        w_hist=model.combine.weight[:, enc + model.cfg.decoder_hidden :].contiguous() if history_query else None,
        w_query=history_query.weight if history_query else None,
        **_output_rows(model, quantized),
    )


def _rnn_step(tables: StepTables, layer: int, mode: str, gx: torch.Tensor, h: torch.Tensor,
              c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One cell step from the input product gx (R, G) and the previous h (R, H), c."""
    if mode == "GRU":
        return gru_update(gx, tables.mm(tables.b_hh[layer], h, tables.w_hh[layer]), h), None
    return _cell(mode, tables.mm(gx, h, tables.w_hh[layer]), c)  # b_hh is folded into gx


def _cell(mode: str, gates: torch.Tensor, c: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """An LSTM (c given) or plain RNN cell's update from its summed gates (R, G)."""
    if c is not None:
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
        c_prev = None if cs is None else cs[layer]
        fused = tables.w_xh[layer]
        x = inp if layer else feed  # what layer's input product multiplies (None: no fed vector)
        if fused is not None and x is not None:  # int8 LSTM/RNN: one product of [x; h]
            acc = tables.embedded.index_select(0, _embedded_rows(tables, prev)) if layer == 0 else None
            xh = (x, hs[layer])  # side by side, written once into the product's input
            gates = int8.product(xh, fused) if acc is None else int8.add_product(acc, xh, fused)
            h, c = _cell(mode, gates, c_prev)
        elif layer == 0:
            gx = tables.embedded.index_select(0, _embedded_rows(tables, prev))  # (R, G)
            if tables.w_feed is not None and feed is not None:
                gx = tables.mm(gx, feed, tables.w_feed)
            elif torch.is_autocast_enabled(gx.device.type):  # as the reference's product would come out
                gx = gx.to(torch.get_autocast_dtype(gx.device.type))
            h, c = _rnn_step(tables, layer, mode, gx, hs[layer], c_prev)
        else:
            gx = tables.mm(tables.b_in[layer], inp, tables.w_ih[layer - 1])
            h, c = _rnn_step(tables, layer, mode, gx, hs[layer], c_prev)
        new_h.append(h)
        if c is not None:
            new_c.append(c)
        inp = h
    stacked = _layers(new_h)
    return inp, ((stacked, _layers(new_c)) if new_c else stacked)


def _layers(states: list[torch.Tensor]) -> torch.Tensor:
    """The layers' states (L, R, H); one layer's without a copy."""
    return states[0].unsqueeze(0) if len(states) == 1 else torch.stack(states)


def _vocabulary_ids(tables: StepTables, prev: torch.Tensor) -> torch.Tensor:
    """prev (R,) as the step's output indices -> their vocabulary ids."""
    return prev if tables.rows is None else tables.rows.index_select(0, prev)


def _embedded_rows(tables: StepTables, prev: torch.Tensor) -> torch.Tensor:
    """prev (R,) as the step's output indices -> their rows of `tables.embedded`."""
    tokens = _vocabulary_ids(tables, prev)
    return tokens if tables.row_of is None else tables.row_of.index_select(0, tokens)


def decode_logits(model: DecoderParts, prev: torch.Tensor, state: DecoderState) -> tuple[torch.Tensor, DecoderState]:
    """prev (R,) -> the output layer's scores (R, V) in fp32 for the next token and the
    new state: `Seq2Seq.step_logits` (before the log-softmax) as the reference gives them;
    with `Seq2Seq.restrict_output`, V' pieces, whose indices prev holds, and only their
    rows of the output layer are multiplied."""
    # Looked up once per search: checking every weight's version is a loop over all
    # parameters, a visible share of a batch-1 greedy step, and weights do not change
    # within a search.
    tables = state.tables if state.tables is not None else step_tables(model)
    out, hidden = _recur(model, tables, prev, state.hidden, state.feed)  # (R, H)
    memory_c = state.memory_c if state.memory_c is not None else F.linear(state.memory, tables.w_ctx)
    rows = out.size(0)
    query = out.view(rows // state.beam, state.beam, -1)  # a sentence's beams query together
    mixed, weights = model.attention(query, state.keys, memory_c, state.mask)  # (B, beam, H), (B, beam, S)
    history = state.history
    if tables.w_hist is not None and tables.w_query is not None:  # decoder self-attention, this step last
        fed = _vocabulary_ids(tables, prev).unsqueeze(1)  # (R, 1)
        history = fed if history is None else torch.cat([history, fed], dim=1)  # (R, t)
        embedded = model.tgt_embed.weight.index_select(0, history.view(-1)).view(rows, history.size(1), -1)
        query_h = F.linear(out, tables.w_query).unsqueeze(1)  # (R, 1, E)
        mixed = torch.addmm(mixed.view(rows, -1), look_back(query_h, embedded).squeeze(1), tables.w_hist.t())
    attentional = torch.tanh(tables.mm(mixed.view(rows, -1), out, tables.w_out))  # (R, H)
    if tables.quantized:
        logits = int8.product(attentional, tables.w_gen)
    elif tables.w_gen is None:
        logits = model.generator(attentional)
    else:
        logits = F.linear(attentional, tables.w_gen, tables.b_gen)
    feed = attentional if model.cfg.input_feeding else None
    # The step reads the encoder outputs only through memory_c: an empty slice in their
    # place spares copying them each time a finished sentence leaves the batch.
    new_state = replace(state, hidden=hidden, last_attention=weights.view(rows, -1), memory_c=memory_c, tables=tables,
                        feed=feed, memory=state.memory[:, :0], history=history)
    return logits.float(), new_state
