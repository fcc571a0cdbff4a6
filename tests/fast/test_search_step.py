"""The search step with precomputed tables (stages/model/fast/search_step.py) gives what the
model's own teacher-forced decoding gives, step after step."""

from __future__ import annotations

import pytest
import torch

from stages.model.config import ModelConfig
from stages.model.fast.search_step import applies as fast_step_applies
from stages.model.fast.search_step import step_tables
from stages.model.seq2seq import Seq2Seq


def make_model(cell: str, layers: int, attention: str) -> Seq2Seq:
    torch.manual_seed(5)
    cfg = ModelConfig(cell=cell, embedding_size=12, encoder_hidden=8, decoder_hidden=16, decoder_layers=layers,
                      attention=attention, dropout=0.0, init_range=0.4)
    return Seq2Seq(cfg, 30, 30).double().eval()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    lens = torch.tensor([7, 3, 5])
    src = torch.randint(4, 30, (3, 7), generator=gen)
    src[1, 3:] = 0
    src[2, 5:] = 0
    return src, lens


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("attention", ["luong_general", "luong_dot", "luong_concat", "bahdanau", "none"])
def test_fast_step_equals_the_models_decoding(cell: str, layers: int, attention: str) -> None:
    model = make_model(cell, layers, attention)
    src, lens = batch()
    tokens = torch.randint(4, 30, (3 * 2, 4), generator=torch.Generator().manual_seed(9))
    with torch.inference_mode():
        assert fast_step_applies(model)
        start = model.encode(src, lens).expand_beams(2)  # two hypotheses per sentence, memory shared
        fast = slow = start
        for t in range(tokens.size(1)):
            lp_fast, fast = model.step(tokens[:, t], fast)
            logits, slow, _ = model._decode(tokens[:, t : t + 1], slow)
            lp_slow = torch.log_softmax(logits.squeeze(1).float(), dim=-1)  # as Seq2Seq.step
            torch.testing.assert_close(lp_fast, lp_slow, rtol=0, atol=1e-6)
            torch.testing.assert_close(fast.last_attention, slow.last_attention, rtol=0, atol=1e-12)
        # reordering whole sentences (one leaves the batch) keeps the projected memory aligned
        keep = torch.tensor([4, 5, 0, 1])
        lp_fast, _ = model.step(tokens[keep, 0], fast.reorder(keep))
        logits, _, _ = model._decode(tokens[keep, 0:1], slow.reorder(keep))
        torch.testing.assert_close(lp_fast, torch.log_softmax(logits.squeeze(1).float(), dim=-1), rtol=0, atol=1e-6)


def test_fast_step_only_in_inference_and_tables_follow_the_weights() -> None:
    model = make_model("lstm", 1, "luong_general")
    assert not fast_step_applies(model)  # gradients on
    with torch.inference_mode():
        assert fast_step_applies(model)
        first = step_tables(model)
        assert step_tables(model) is first
    with torch.no_grad():
        model.tgt_embed.weight.add_(1.0)
    with torch.inference_mode():
        rebuilt = step_tables(model)
        assert rebuilt is not first
        expected = torch.nn.functional.linear(model.tgt_embed.weight, model.decoder_rnn.weight_ih_l0,
                                              model.decoder_rnn.bias_ih_l0 + model.decoder_rnn.bias_hh_l0)
        torch.testing.assert_close(rebuilt.embedded, expected)
    model.train()
    with torch.inference_mode():
        assert not fast_step_applies(model)  # dropout would apply in training mode
    feeding = Seq2Seq(ModelConfig(embedding_size=12, encoder_hidden=10, decoder_hidden=16, input_feeding=True), 30, 30)
    with torch.inference_mode():
        assert not fast_step_applies(feeding.eval())


def test_fast_step_for_a_model_built_under_inference_mode() -> None:
    with torch.inference_mode():
        model = make_model("gru", 1, "luong_general")
        src, lens = batch()
        state = model.encode(src, lens)
        lp_fast, _ = model.step(torch.tensor([4, 5, 6]), state)
        logits, _, _ = model._decode(torch.tensor([[4], [5], [6]]), state)
        torch.testing.assert_close(lp_fast, torch.log_softmax(logits.squeeze(1).float(), dim=-1), rtol=0, atol=1e-6)


def test_tables_are_looked_up_once_per_search(monkeypatch: pytest.MonkeyPatch) -> None:
    import stages.model.fast.search_step

    model = make_model("lstm", 1, "luong_general")
    src, lens = batch()
    calls = []
    lookup = stages.model.fast.search_step.step_tables
    monkeypatch.setattr(stages.model.fast.search_step, "step_tables", lambda m: calls.append(1) or lookup(m))
    with torch.inference_mode():
        state = model.encode(src, lens).expand_beams(2)
        _, state = model.step(torch.full((6,), 4), state)
        state = state.reorder(torch.tensor([2, 3, 4, 5]))  # the tables ride along with the state
        for t in range(2):
            _, state = model.step(torch.full((4,), 5 + t), state)
        assert len(calls) == 1 and state.tables is lookup(model)
