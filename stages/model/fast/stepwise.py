"""A fused nn.RNN / nn.GRU / nn.LSTM run one time step at a time, for input feeding.

With input feeding, the decoder's input at step t includes its own output at step
t-1, so the fused kernels, which want the whole input sequence up front, cannot run
it. `StepwiseRNN` runs the same weights step by step: the part of layer 0's input
product that is known in advance (the target embeddings) is computed for every step
in one matmul, and each step does one small matmul per layer (two for a GRU) plus
the gate arithmetic. `StepProduct` takes a shared weight's gradient over all steps in
one product instead of one per step.

It must equal the module run over the same inputs (tests/fast/test_stepwise.py).
"""

from __future__ import annotations

from typing import Any, Optional

import torch
import torch.nn.functional as F
from torch import nn

from stages.model.dropout import dropout
from stages.model.fast.cells import gru_update, lstm_update, simple_update
from stages.model.state import Hidden


def applies(rnn: nn.Module) -> bool:
    """Whether `StepwiseRNN` can run `rnn`: a plain (not quantized) batch-first,
    one-directional recurrent module with biases."""
    return (isinstance(rnn, nn.RNNBase) and rnn.bias and rnn.batch_first and not rnn.bidirectional
            and not rnn.proj_size)


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


def _product(base: Optional[torch.Tensor], x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    if base is None:
        return torch.matmul(x, w)
    return torch.addmm(base, x, w) if x.dim() == 2 else torch.baddbmm(base, x, w)


class _Step(torch.autograd.Function):
    """base + x @ w for one step; the gradient for w is left to `_Gather`."""

    @staticmethod
    def forward(
        ctx: Any, base: Optional[torch.Tensor], x: torch.Tensor, w: torch.Tensor, owner: "StepProduct"
    ) -> torch.Tensor:
        ctx.save_for_backward(w)
        ctx.owner, ctx.index = owner, len(owner.inputs)
        ctx.base_shape = None if base is None else base.shape
        owner.inputs.append(x)
        owner.grads.append(None)
        return _product(base, x, w)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[Optional[torch.Tensor], ...]:
        (w,) = ctx.saved_tensors
        ctx.owner.grads[ctx.index] = grad
        grad_base = None
        if ctx.needs_input_grad[0]:  # base is per-step rows, or a bias broadcast over them
            grad_base = grad if grad.shape == ctx.base_shape else grad.sum(0)
        return grad_base, torch.matmul(grad, w.transpose(-2, -1)), None, None


class _Gather(torch.autograd.Function):
    """Passes w through; in backward, computes dL/dw = sum_t x_t^T g_t in one product.

    Autograd runs this node only after every step that used w, so all g_t are there.
    """

    @staticmethod
    def forward(ctx: Any, w: torch.Tensor, owner: "StepProduct") -> torch.Tensor:
        ctx.owner = owner
        ctx.set_materialize_grads(False)  # the steps pass None for w: no zero-filled w-sized tensor
        return w.view_as(w)

    @staticmethod
    def backward(ctx: Any, _: torch.Tensor) -> tuple[Optional[torch.Tensor], None]:
        owner: StepProduct = ctx.owner
        used = [(x, g) for x, g in zip(owner.inputs, owner.grads) if g is not None]
        owner.inputs, owner.grads = [], []
        if not used:
            return None, None
        xs = torch.cat([x for x, _ in used], dim=-2)  # (steps*B, K), or (B, steps, K) batched
        gs = torch.cat([g for _, g in used], dim=-2)  # (steps*B, N), or (B, steps, N)
        if owner.w.stride(-2) == 1 and owner.w.stride(-1) != 1:
            # w is the transpose of a row-major tensor (a weight's .t(), the keys'
            # transpose): a gradient in the same layout flows back to it without the
            # strided copy a row-major (K, N) gradient needs.
            return torch.matmul(gs.transpose(-2, -1), xs).transpose(-2, -1), None
        return torch.matmul(xs.transpose(-2, -1), gs), None


class StepProduct:
    """`base + x_t @ w` for the steps t of one sequence, w shared by all of them, with
    w's gradient computed once over all steps instead of once per step.

    w is a weight (K, N) with x_t (B, K), or a per-sentence tensor (B, K, N) with x_t
    (B, 1, K), such as the attention keys or the projected encoder memory. Per step,
    w's gradient would be a full-size tensor from an inner dimension of only B rows (or
    one row per sentence), plus a full-size addition: memory-bound work that dominated
    the input-feeding decoder's backward pass. Over all steps it is one product.
    """

    def __init__(self, w: torch.Tensor):
        self.w = w  # already in the compute dtype
        self.inputs: list[torch.Tensor] = []
        self.grads: list[Optional[torch.Tensor]] = []
        self.deferred = torch.is_grad_enabled() and w.requires_grad
        self.proxy = _Gather.apply(w, self) if self.deferred else w

    def __call__(self, base: Optional[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        """base (B, N), (N,), (B, 1, N) or None; x (B, K) or (B, 1, K) -> (B, N) or (B, 1, N)."""
        if not self.deferred:
            return _product(base, x, self.w)
        out: torch.Tensor = _Step.apply(base, x, self.proxy, self)
        return out


class StepwiseRNN:
    """Drive `rnn` (batch_first, any number of layers) one step at a time.

    Layer 0's input at step t is [x_t; feed_t]: x (B, T, X) is known up front, feed_t
    (B, F) only once step t-1 is done. `hidden` is the initial state, (layers, B, H)
    or an (h, c) pair of those for LSTMs. Under autocast, outputs come in the autocast
    dtype and an LSTM's cell state stays fp32.
    """

    def __init__(self, rnn: nn.RNNBase, x: torch.Tensor, hidden: Hidden):
        self.mode, self.layers, x_size = rnn.mode, rnn.num_layers, x.size(-1)
        self.dropout = rnn.dropout if rnn.training else 0.0
        cast = _autocast_dtype(x.device.type)
        self.dtype = cast or x.dtype
        h0, c0 = hidden if isinstance(hidden, tuple) else (hidden, None)
        self.h = [h.to(self.dtype) for h in h0.unbind(0)]  # per layer (B, H)
        wide = torch.promote_types(x.dtype, torch.float32)  # fp32 cell state under autocast
        self.c = [c.to(wide) for c in c0.unbind(0)] if c0 is not None else []
        # Weights are cast once per sequence here, not once per step inside autocast
        # (autocast caches casts of leaf parameters only, and these are slices).
        self.w_rec: list[StepProduct] = []  # applied to [input; h], or for a GRU to h alone
        self.w_in: list[StepProduct] = []  # GRU only: applied to the layer input
        self.bias: list[torch.Tensor] = []  # added to the w_rec product
        self.bias_in: list[torch.Tensor] = []  # GRU only: added to the input product
        for layer in range(self.layers):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
            w_ih_step = w_ih[:, x_size:] if layer == 0 else w_ih
            if self.mode == "GRU":  # the candidate gate needs the input and hidden products apart
                self.w_in.append(StepProduct(w_ih_step.t().to(self.dtype)))
                self.w_rec.append(StepProduct(w_hh.t().to(self.dtype)))
                self.bias_in.append(b_ih.to(self.dtype))
                self.bias.append(b_hh.to(self.dtype))
            else:
                self.w_rec.append(StepProduct(torch.cat([w_ih_step, w_hh], dim=1).t().to(self.dtype)))
                self.bias.append((b_ih + b_hh).to(self.dtype))
        bias0 = self.bias_in[0] if self.mode == "GRU" else self.bias[0]
        w_x = getattr(rnn, "weight_ih_l0")[:, :x_size]
        # One matmul for the known part of every step, unbound once: indexing it per step
        # would cost a zero-filled (T, B, G) gradient per step in backward.
        self.pre = F.linear(x.transpose(0, 1), w_x, bias0).to(self.dtype).unbind(0)  # T x (B, G)

    def step(self, t: int, feed: torch.Tensor) -> torch.Tensor:
        """feed (B, F) -> the top layer's output at step t (B, H)."""
        inp = feed.to(self.dtype)
        for layer in range(self.layers):
            if layer and self.dropout:
                inp = dropout(inp, self.dropout, True)  # between layers, as nn.LSTM's dropout=
            base = self.pre[t] if layer == 0 else None
            if self.mode == "GRU":
                self.h[layer] = self._gru(layer, self.bias_in[layer] if base is None else base, inp)
            else:
                base = self.bias[layer] if base is None else base
                gates = self.w_rec[layer](base, torch.cat([inp, self.h[layer]], dim=1))  # (B, G)
                self.h[layer] = self._lstm(layer, gates) if self.mode == "LSTM" else self._rnn(gates)
            inp = self.h[layer]
        return inp

    def _lstm(self, layer: int, gates: torch.Tensor) -> torch.Tensor:
        h, self.c[layer] = lstm_update(gates, self.c[layer])
        return h

    def _rnn(self, gates: torch.Tensor) -> torch.Tensor:
        return simple_update(self.mode, gates)

    def _gru(self, layer: int, base: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
        gi = self.w_in[layer](base, inp)  # (B, 3H)
        gh = self.w_rec[layer](self.bias[layer], self.h[layer])  # (B, 3H)
        return gru_update(gi, gh, self.h[layer])

    def final_hidden(self) -> Hidden:
        """The state after the last step taken, shaped like the initial one."""
        h = torch.stack(self.h)  # (layers, B, H)
        return (h, torch.stack(self.c)) if self.mode == "LSTM" else h
