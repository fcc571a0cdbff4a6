"""Weight initialisation of the encoder-decoder: `model.init` and `model.recurrent_init`."""

from __future__ import annotations

import torch
from torch import nn

from stages.corpus.vocab import PAD_ID
from stages.model.config import InitKind, RecurrentInit

_GATES = {"LSTM": 4, "GRU": 3, "RNN_TANH": 1, "RNN_RELU": 1}


def _per_gate(weight: torch.Tensor, gates: int, init: str) -> None:
    """Initialise each gate's (H, in) block of a stacked (gates*H, in) matrix on its own,
    so that fan-out and orthogonality are those of one gate, not of the stack."""
    for block in weight.chunk(gates, dim=0):
        if init == "orthogonal":
            nn.init.orthogonal_(block)
        else:
            nn.init.xavier_uniform_(block)


@torch.no_grad()
def init_weights(model: nn.Module, init: InitKind, init_range: float, recurrent_init: RecurrentInit) -> None:
    """uniform: every parameter in [-init_range, init_range]. xavier: Glorot-uniform
    matrices (recurrent ones per gate block), zero biases. recurrent_init=orthogonal:
    each gate block of the hidden-to-hidden matrices orthogonal. Then, whatever the
    kind: LSTM forget-gate biases 1 (gradients flow through the cell state from the
    start) and zero embeddings for padding."""
    recurrent = {id(m): m for m in model.modules() if isinstance(m, nn.RNNBase)}
    gates_of = {id(p): _GATES[m.mode] for m in recurrent.values() for p in m.parameters()}
    for name, param in model.named_parameters():
        gates = gates_of.get(id(param), 0)
        is_bias = param.dim() == 1
        if init == "uniform":
            nn.init.uniform_(param, -init_range, init_range)
        elif is_bias:
            nn.init.zeros_(param)
        elif gates:
            _per_gate(param, gates, "xavier")
        else:
            nn.init.xavier_uniform_(param)
        if gates and recurrent_init == "orthogonal" and name.rsplit(".", 1)[-1].startswith("weight_hh"):
            _per_gate(param, gates, "orthogonal")
        if gates == 4 and name.rsplit(".", 1)[-1].startswith("bias_hh"):
            param[param.numel() // 4 : param.numel() // 2].fill_(1.0)
    for embed in model.modules():
        if isinstance(embed, nn.Embedding) and embed.padding_idx == PAD_ID:
            embed.weight[PAD_ID].zero_()
