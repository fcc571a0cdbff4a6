"""`StepwiseRNN` (stages/model/fast/stepwise.py) equals the fused recurrent module it steps through."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from stages.model.fast.stepwise import StepwiseRNN, applies

RNNS = {"rnn_tanh": lambda i, h, n: nn.RNN(i, h, n, batch_first=True),
        "rnn_relu": lambda i, h, n: nn.RNN(i, h, n, nonlinearity="relu", batch_first=True),
        "gru": lambda i, h, n: nn.GRU(i, h, n, batch_first=True),
        "lstm": lambda i, h, n: nn.LSTM(i, h, n, batch_first=True)}


def initial(rnn: nn.RNNBase, batch: int) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    h = torch.randn(rnn.num_layers, batch, rnn.hidden_size)
    return (h, torch.randn_like(h)) if rnn.mode == "LSTM" else h


@pytest.mark.parametrize("kind", list(RNNS))
@pytest.mark.parametrize("layers", [1, 2])
def test_stepwise_equals_the_fused_module(kind: str, layers: int) -> None:
    """Fed inputs known in advance: stepping must give the fused module's outputs and state."""
    torch.manual_seed(0)
    rnn = RNNS[kind](5 + 3, 4, layers).eval()
    x, feeds = torch.randn(2, 6, 5), torch.randn(2, 6, 3)
    hidden = initial(rnn, 2)
    fused_out, fused_hidden = rnn(torch.cat([x, feeds], dim=-1), hidden)
    run = StepwiseRNN(rnn, x, hidden)
    outs = torch.stack([run.step(t, feeds[:, t]) for t in range(6)], dim=1)
    torch.testing.assert_close(outs, fused_out)
    final = run.final_hidden()
    for got, want in zip(final if isinstance(final, tuple) else (final,),
                         fused_hidden if isinstance(fused_hidden, tuple) else (fused_hidden,)):
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("kind", list(RNNS))
@pytest.mark.parametrize("layers", [1, 2])
def test_stepwise_gradients_equal_the_fused_module_gradients(kind: str, layers: int) -> None:
    torch.manual_seed(0)
    rnn = RNNS[kind](5 + 3, 4, layers)
    x, feeds = torch.randn(2, 6, 5), torch.randn(2, 6, 3)
    hidden = initial(rnn, 2)
    fused_out, _ = rnn(torch.cat([x, feeds], dim=-1), hidden)
    fused_out.pow(2).sum().backward()
    expected = {name: p.grad.clone() for name, p in rnn.named_parameters() if p.grad is not None}
    rnn.zero_grad()
    run = StepwiseRNN(rnn, x, hidden)
    torch.stack([run.step(t, feeds[:, t]) for t in range(6)], dim=1).pow(2).sum().backward()
    assert len(expected) == len(list(rnn.parameters()))
    for name, p in rnn.named_parameters():
        torch.testing.assert_close(p.grad, expected[name], msg=name)


@pytest.mark.parametrize("kind", list(RNNS))
def test_stepwise_gradients_reach_every_weight(kind: str) -> None:
    torch.manual_seed(0)
    rnn = RNNS[kind](5 + 3, 4, 2)
    x = torch.randn(2, 3, 5, requires_grad=True)
    assert applies(rnn)
    run = StepwiseRNN(rnn, x, initial(rnn, 2))
    feed = torch.zeros(2, 3)
    total = torch.zeros(())
    for t in range(3):
        out = run.step(t, feed)
        feed = out[:, :3]
        total = total + out.sum()
    total.backward()
    assert x.grad is not None
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in rnn.parameters())

