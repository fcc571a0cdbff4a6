"""A fused nn.RNN / nn.GRU / nn.LSTM run one time step at a time, for input feeding.

With input feeding, the decoder's input at step t includes its own output at step
t-1, so the fused kernels, which want the whole input sequence up front, cannot run
it. `StepwiseRNN` runs the same weights step by step: the part of layer 0's input
product that is known in advance (the target embeddings) is computed for every step
in one matmul, and each step does one small matmul per layer (two for a GRU) plus
the gate arithmetic. `ModuleStepper` calls the module itself once per step, for
modules whose weights are not plain tensors (dynamically quantized ones).
"""

from __future__ import annotations

from typing import Optional, Protocol, Union

import torch
import torch.nn.functional as F
from torch import nn

Hidden = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]


class Stepper(Protocol):
    def step(self, t: int, feed: torch.Tensor) -> torch.Tensor: ...

    def final_hidden(self) -> Hidden: ...


def _autocast_dtype(device_type: str) -> Optional[torch.dtype]:
    return torch.get_autocast_dtype(device_type) if torch.is_autocast_enabled(device_type) else None


class StepwiseRNN:
    """Drive `rnn` (batch_first, any number of layers) one step at a time.

    Layer 0's input at step t is [x_t; feed_t]: x (B, T, X) is known up front, feed_t
    (B, F) only once step t-1 is done. `hidden` is the initial state, (layers, B, H)
    or an (h, c) pair of those for LSTMs.
    """

    def __init__(self, rnn: nn.RNNBase, x: torch.Tensor, hidden: Hidden):
        self.mode, self.layers, self.x_size = rnn.mode, rnn.num_layers, x.size(-1)
        self.dropout = rnn.dropout if rnn.training else 0.0
        # Weights are cast once per sequence here, not once per step inside autocast
        # (autocast caches casts of leaf parameters only, and these are slices).
        self.cast = _autocast_dtype(x.device.type)
        lstm = self.mode == "LSTM"
        h0, c0 = hidden if isinstance(hidden, tuple) else (hidden, None)
        self.h = list(h0.unbind(0))  # per layer (B, H)
        self.c = list(c0.float().unbind(0)) if c0 is not None else []  # fp32 cell state
        self.w_rec: list[torch.Tensor] = []  # per layer: applied to [input; h] (or to h for a GRU)
        self.w_in: list[torch.Tensor] = []  # GRU only: applied to the layer input
        self.bias: list[torch.Tensor] = []  # added to the [input; h] product (to the h product for a GRU)
        self.bias_in: list[torch.Tensor] = []  # GRU only: added to the input product
        for layer in range(self.layers):
            w_ih, w_hh = getattr(rnn, f"weight_ih_l{layer}"), getattr(rnn, f"weight_hh_l{layer}")
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{layer}"), getattr(rnn, f"bias_hh_l{layer}")
            w_ih_step = w_ih[:, self.x_size :] if layer == 0 else w_ih
            if self.mode == "GRU":  # the candidate gate needs the input and hidden products apart
                self.w_in.append(self._ready(w_ih_step.t()))
                self.w_rec.append(self._ready(w_hh.t()))
                self.bias.append(b_hh)
                self.bias_in.append(b_ih)
            else:
                self.w_rec.append(self._ready(torch.cat([w_ih_step, w_hh], dim=1).t()))
                self.bias.append(b_ih + b_hh)
        self.lstm = lstm
        bias0 = self.bias_in[0] if self.mode == "GRU" else self.bias[0]
        self.pre = F.linear(x, getattr(rnn, "weight_ih_l0")[:, : self.x_size], bias0)  # (B, T, G)

    def _ready(self, w: torch.Tensor) -> torch.Tensor:
        return w.to(self.cast) if self.cast is not None else w

    def step(self, t: int, feed: torch.Tensor) -> torch.Tensor:
        """feed (B, F) -> the top layer's output at step t (B, H)."""
        inp = feed
        for layer in range(self.layers):
            if layer:
                inp = F.dropout(inp, self.dropout, training=self.dropout > 0)
            if self.mode == "GRU":
                self.h[layer] = self._gru(layer, self.pre[:, t] if layer == 0 else self.bias_in[layer], inp)
            else:
                base = self.pre[:, t] if layer == 0 else self.bias[layer]
                gates = torch.addmm(base, torch.cat([inp, self.h[layer]], dim=1), self.w_rec[layer])  # (B, G)
                self.h[layer] = self._lstm(layer, gates) if self.lstm else self._rnn(gates)
            inp = self.h[layer]
        return inp

    def _lstm(self, layer: int, gates: torch.Tensor) -> torch.Tensor:
        i, f, g, o = gates.chunk(4, dim=1)
        c = torch.sigmoid(f) * self.c[layer] + torch.sigmoid(i) * torch.tanh(g)
        self.c[layer] = c
        return torch.sigmoid(o) * torch.tanh(c)

    def _rnn(self, gates: torch.Tensor) -> torch.Tensor:
        return torch.tanh(gates) if self.mode == "RNN_TANH" else torch.relu(gates)

    def _gru(self, layer: int, base: torch.Tensor, inp: torch.Tensor) -> torch.Tensor:
        h = self.h[layer]
        gi = torch.addmm(base, inp, self.w_in[layer])  # (B, 3H)
        gh = torch.addmm(self.bias[layer], h, self.w_rec[layer])  # (B, 3H)
        i_r, i_z, i_n = gi.chunk(3, dim=1)
        h_r, h_z, h_n = gh.chunk(3, dim=1)
        r, z = torch.sigmoid(i_r + h_r), torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return n + z * (h - n)  # (1 - z) * n + z * h

    def final_hidden(self) -> Hidden:
        """The state after the last step taken, shaped like the initial one."""
        h = torch.stack(self.h)  # (layers, B, H)
        return (h, torch.stack(self.c)) if self.lstm else h


class ModuleStepper:
    """The same contract as StepwiseRNN, calling the module once per step."""

    def __init__(self, rnn: nn.Module, x: torch.Tensor, hidden: Hidden):
        self.rnn, self.x, self.hidden = rnn, x, hidden

    def step(self, t: int, feed: torch.Tensor) -> torch.Tensor:
        inp = torch.cat([self.x[:, t], feed.to(self.x.dtype)], dim=-1).unsqueeze(1)  # (B, 1, X + F)
        out, self.hidden = self.rnn(inp, self.hidden)
        return out.squeeze(1)  # (B, H)

    def final_hidden(self) -> Hidden:
        return self.hidden


def stepper(rnn: nn.Module, x: torch.Tensor, hidden: Hidden) -> Stepper:
    """StepwiseRNN for plain recurrent modules, ModuleStepper for anything else."""
    if isinstance(rnn, nn.RNNBase) and rnn.bias and rnn.batch_first and not rnn.bidirectional and not rnn.proj_size:
        return StepwiseRNN(rnn, x, hidden)
    return ModuleStepper(rnn, x, hidden)
