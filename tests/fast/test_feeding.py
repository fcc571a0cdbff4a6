"""The optimised input-feeding loop (stages/model/fast/feeding.py) equals the reference
loop written in `Seq2Seq._decode_fed_reference`: logits, attention and the gradient of
every parameter, for every cell, attention kind and depth."""

from __future__ import annotations

import itertools

import pytest
import torch

from stages.model.config import ModelConfig
from stages.model.fast import feeding, record, stepwise
from stages.model.seq2seq import Seq2Seq

GRID = list(itertools.product(("rnn", "gru", "lstm"), ("none", "bahdanau", "luong_dot", "luong_general", "luong_concat"),
                              (1, 2)))


def model_of(cell: str, attention: str, layers: int) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, attention=attention, embedding_size=16, encoder_hidden=12,  # type: ignore[arg-type]
                      decoder_hidden=24, decoder_layers=layers, dropout=0.0, input_feeding=True)
    return Seq2Seq(cfg, 50, 60)


def padded_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    src = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0], [13, 14, 0, 0, 0]])
    lens = torch.tensor([5, 3, 2])
    tgt = torch.tensor([[2, 20, 21, 22], [2, 23, 24, 0], [2, 25, 0, 0]])
    return src, lens, tgt


def run(model: Seq2Seq, fast: bool, monkeypatch: pytest.MonkeyPatch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Logits and every parameter's gradient, through the fast loop or the reference."""
    src, lens, tgt = padded_batch()
    model.zero_grad()
    record.reset()
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(feeding, "applies", lambda model: False)
        logits = model(src, lens, tgt)
    loops = {k: v for k, v in record.tally().items() if k in ("input_feeding.stepwise", "input_feeding.reference")}
    assert loops == ({"input_feeding.stepwise": 1} if fast else {"input_feeding.reference": 1})
    logits.pow(2).sum().backward()
    return logits.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("cell,attention,layers", GRID)
def test_stepwise_loop_equals_the_reference(cell: str, attention: str, layers: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_of(cell, attention, layers).double().train()
    assert feeding.applies(model)
    fast_logits, fast_grads = run(model, True, monkeypatch)
    ref_logits, ref_grads = run(model, False, monkeypatch)
    torch.testing.assert_close(fast_logits, ref_logits)
    assert fast_grads.keys() == ref_grads.keys() and len(ref_grads) == len(list(model.parameters()))
    for name in ref_grads:
        torch.testing.assert_close(fast_grads[name], ref_grads[name], msg=name)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_stepwise_loop_equals_the_reference_under_bf16_autocast(cell: str, monkeypatch: pytest.MonkeyPatch) -> None:
    model = model_of(cell, "luong_general", 2).train()
    src, lens, tgt = padded_batch()
    out = {}
    for fast in (True, False):
        with monkeypatch.context() as m, torch.autocast("cpu", dtype=torch.bfloat16):
            if not fast:
                m.setattr(feeding, "applies", lambda model: False)
            out[fast] = model(src, lens, tgt).float()
    torch.testing.assert_close(out[True], out[False], rtol=0.02, atol=0.05)


@pytest.mark.parametrize("cell,attention", [("lstm", "luong_general"), ("gru", "luong_dot"), ("rnn", "bahdanau")])
def test_deferred_weight_gradients_equal_per_step_autograd(cell: str, attention: str,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """`StepProduct`'s gradients, taken in one product over all steps, equal those of
    one product per step."""
    model = model_of(cell, attention, 2).double().train()
    src, lens, tgt = padded_batch()

    def grads() -> dict[str, torch.Tensor]:
        model.zero_grad()
        model(src, lens, tgt).pow(2).sum().backward()
        return {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    deferred = grads()
    monkeypatch.setattr(stepwise.StepProduct, "__call__", lambda self, base, x: stepwise._product(base, x, self.w))
    plain = grads()
    assert deferred.keys() == plain.keys() and len(plain) == len(list(model.parameters()))
    for name in plain:
        torch.testing.assert_close(deferred[name], plain[name], msg=name)
