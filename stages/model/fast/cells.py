"""The recurrent cells' gate arithmetic for one time step, outside the fused nn.LSTM /
nn.GRU / nn.RNN kernels: what the stepwise input-feeding loop and the search step run.

They must equal one step of the PyTorch module with the same weights
(tests/fast/test_stepwise.py, tests/fast/test_search_step.py). On CPUs the LSTM cell runs
as one C++ kernel (csrc/lstm.cpp) where it is built (tests/fast/test_cpu_kernels.py).
"""

from __future__ import annotations

from typing import Any

import torch

from stages.model.fast import cpu_kernels, record


def lstm_cell_forward(
    gates: torch.Tensor, c: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
    """The LSTM cell's gate arithmetic in the cell state's dtype, outside autograd.

    gates (B, 4H) in i, f, g, o order; c (B, H) -> h (B, H) in the gates' dtype, new c
    (B, H), and what `lstm_cell_backward` needs. The activations are applied in place
    on one fp32 copy of the gates and the last product writes the gates' dtype directly.
    On CPUs one fused kernel does it all (stages/model/fast/csrc/).
    """
    if cpu_kernels.lstm_applies(gates, c):
        record.ran("lstm_cell.kernel")
        return cpu_kernels.lstm_forward(gates, c)
    record.ran("lstm_cell.operators")
    size = c.size(1)
    act = gates.to(c.dtype, copy=True)  # (B, 4H): sigmoid(i, f), tanh(g), sigmoid(o)
    act[:, : 2 * size].sigmoid_()
    act[:, 2 * size : 3 * size].tanh_()
    act[:, 3 * size :].sigmoid_()
    i, f, g, o = act.chunk(4, dim=1)
    c_new = torch.addcmul(f * c, i, g)
    tanh_c = torch.tanh(c_new)
    h = torch.mul(o, tanh_c, out=torch.empty(c.shape, dtype=gates.dtype, device=c.device))
    return h, c_new, (act, c, tanh_c)


def lstm_cell_backward(
    saved: tuple[torch.Tensor, ...], grad_h: torch.Tensor, grad_c: torch.Tensor, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Gradients of `lstm_cell_forward`: (gates in `dtype`, previous c). The four gate
    gradients are written into one buffer (no cat)."""
    if cpu_kernels.lstm_backward_applies(saved, dtype):
        return cpu_kernels.lstm_backward(saved, grad_h, grad_c, dtype)
    act, c, tanh_c = saved
    size = c.size(1)
    i, f, g, o = act.chunk(4, dim=1)
    d_c = torch.addcmul(grad_c, grad_h * o, 1 - tanh_c * tanh_c)  # (B, H)
    d_act = torch.empty_like(act)  # d/d(i, f, g, o) before the activations' slopes
    torch.mul(d_c, g, out=d_act[:, :size])
    torch.mul(d_c, c, out=d_act[:, size : 2 * size])
    torch.mul(d_c, i, out=d_act[:, 2 * size : 3 * size])
    torch.mul(grad_h, tanh_c, out=d_act[:, 3 * size :])
    slope = act * act  # then act - act^2 (sigmoid'), and 1 - g^2 (tanh') for the g block
    slope[:, 2 * size : 3 * size].neg_().add_(1)
    torch.sub(act[:, : 2 * size], slope[:, : 2 * size], out=slope[:, : 2 * size])
    torch.sub(act[:, 3 * size :], slope[:, 3 * size :], out=slope[:, 3 * size :])
    grad_gates = torch.mul(d_act, slope, out=torch.empty(act.shape, dtype=dtype, device=act.device))
    return grad_gates, d_c * f


class _LSTMCell(torch.autograd.Function):
    """The LSTM cell's gate arithmetic as one autograd node: autograd would record
    about ten nodes per step for it, and the decoder with input feeding runs it once
    per target position. In-place activations and one gradient buffer take it from
    15 to 12 passes over a hidden-size row forward and from 33 to about 22 backward."""

    @staticmethod
    def forward(ctx: Any, gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, c_new, saved = lstm_cell_forward(gates, c)
        ctx.save_for_backward(*saved)
        ctx.dtype = gates.dtype
        return h, c_new

    @staticmethod
    def backward(ctx: Any, grad_h: torch.Tensor, grad_c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return lstm_cell_backward(ctx.saved_tensors, grad_h, grad_c, ctx.dtype)


def lstm_update(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """LSTM gates (B, 4H) and cell state c (B, H) -> new h (B, H), new c."""
    if not (torch.is_grad_enabled() and (gates.requires_grad or c.requires_grad)):
        h, c_new, _ = lstm_cell_forward(gates, c)  # search: no autograd node, which costs more than the arithmetic
        return h, c_new
    h, c_new = _LSTMCell.apply(gates, c)
    return h, c_new


def gru_update(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
    """GRU input product gi and hidden product gh (B, 3H), both with their biases, and
    the previous h (B, H) -> new h."""
    size = h.size(1)
    r, z = torch.sigmoid(gi[:, : 2 * size] + gh[:, : 2 * size]).chunk(2, dim=1)
    n = torch.tanh(torch.addcmul(gi[:, 2 * size :], r, gh[:, 2 * size :]))
    return torch.lerp(n, h, z)  # (1 - z) * n + z * h


def simple_update(mode: str, gates: torch.Tensor) -> torch.Tensor:
    """A plain RNN's pre-activation (B, H) -> new h, for nn.RNN's mode RNN_TANH or RNN_RELU."""
    return torch.tanh(gates) if mode == "RNN_TANH" else torch.relu(gates)
