"""The search step with precomputed tables (stages/model/fast/search_step.py) gives what the
model's own teacher-forced decoding gives, step after step."""

from __future__ import annotations

import warnings

import pytest
import torch

from stages.model.config import ModelConfig
from stages.model.fast.search_step import applies as fast_step_applies
from stages.model.fast.search_step import step_tables
from stages.model.seq2seq import Seq2Seq


def make_model(cell: str, layers: int, attention: str, input_feeding: bool = False,
               dtype: torch.dtype = torch.double, self_attention: bool = False) -> Seq2Seq:
    torch.manual_seed(5)
    cfg = ModelConfig(cell=cell, embedding_size=12, encoder_hidden=8, decoder_hidden=16, decoder_layers=layers,
                      attention=attention, dropout=0.0, init_range=0.4, input_feeding=input_feeding,
                      decoder_self_attention=self_attention)
    return Seq2Seq(cfg, 30, 30).to(dtype).eval()


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    lens = torch.tensor([7, 3, 5])
    src = torch.randint(4, 30, (3, 7), generator=gen)
    src[1, 3:] = 0
    src[2, 5:] = 0
    return src, lens


def compare_steps(model: Seq2Seq, atol: float, atol_attention: float) -> None:
    """Four steps of the fast path against the reference (`Seq2Seq._decode` of one
    token, then log-softmax, as `Seq2Seq.step` does), two hypotheses per sentence, then
    a reorder that drops a sentence."""
    src, lens = batch()
    tokens = torch.randint(4, 30, (3 * 2, 4), generator=torch.Generator().manual_seed(9))
    start = model.encode(src, lens).expand_beams(2)  # two hypotheses per sentence, memory shared
    fast = slow = start
    for t in range(tokens.size(1)):
        lp_fast, fast = model.step(tokens[:, t], fast)
        logits, slow, _ = model._decode(tokens[:, t : t + 1], slow)
        lp_slow = torch.log_softmax(logits.squeeze(1).float(), dim=-1)  # as Seq2Seq.step
        torch.testing.assert_close(lp_fast, lp_slow, rtol=0, atol=atol)
        torch.testing.assert_close(fast.last_attention, slow.last_attention, rtol=0, atol=atol_attention,
                                   check_dtype=False)  # the fed loop keeps its weights in fp32
        assert fast.beam == 2  # the fast step never copies the memory per hypothesis
    # reordering whole sentences (one leaves the batch) keeps the projected memory aligned
    keep = torch.tensor([4, 5, 0, 1])
    lp_fast, _ = model.step(tokens[keep, 0], fast.reorder(keep))
    logits, _, _ = model._decode(tokens[keep, 0:1], slow.reorder(keep))
    torch.testing.assert_close(lp_fast, torch.log_softmax(logits.squeeze(1).float(), dim=-1), rtol=0, atol=atol)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("attention", ["luong_general", "luong_dot", "luong_concat", "bahdanau", "none"])
@pytest.mark.parametrize("input_feeding", [False, True], ids=["plain", "input_feeding"])
def test_fast_step_equals_the_models_decoding(cell: str, layers: int, attention: str, input_feeding: bool) -> None:
    model = make_model(cell, layers, attention, input_feeding)
    with torch.inference_mode():
        assert fast_step_applies(model)
        # the fed loop's attention weights are fp32, even in a double model
        compare_steps(model, atol=1e-6, atol_attention=1e-6 if input_feeding else 1e-12)


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("attention", ["luong_general", "bahdanau"])
def test_fast_step_equals_the_models_decoding_with_decoder_self_attention(cell: str, layers: int,
                                                                         attention: str) -> None:
    model = make_model(cell, layers, attention, self_attention=True)
    with torch.inference_mode():
        assert fast_step_applies(model)
        compare_steps(model, atol=1e-6, atol_attention=1e-12)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        compare_steps(make_model(cell, layers, attention, dtype=torch.float32, self_attention=True),
                      atol=0.05, atol_attention=0.02)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("attention", ["luong_general", "bahdanau"])
@pytest.mark.parametrize("input_feeding", [False, True], ids=["plain", "input_feeding"])
def test_fast_step_equals_the_models_decoding_under_bf16_autocast(cell: str, attention: str,
                                                                  input_feeding: bool) -> None:
    """Autocast casts the fast step's products to bf16 as it casts the reference's; the
    two differ by bf16 rounding (8 bits of mantissa) in a different order of sums."""
    model = make_model(cell, 2, attention, input_feeding, dtype=torch.float32)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert fast_step_applies(model)
        compare_steps(model, atol=0.05, atol_attention=0.02)
        assert step_tables(model).embedded.dtype == torch.float32


PIECES = torch.tensor([0, 1, 2, 3, 4, 6, 7, 9, 10, 12, 15, 16, 20, 21, 25, 29])  # the specials and 12 of 26 pieces


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("input_feeding", [False, True], ids=["plain", "input_feeding"])
def test_restricted_output_fast_step_equals_the_restricted_reference(cell: str, input_feeding: bool) -> None:
    model = make_model(cell, 2, "luong_general", input_feeding)
    model.restrict_output(PIECES)
    src, lens = batch()
    prev = torch.tensor([0, 5, 7, 2, 15, 11])  # indices into PIECES
    with torch.inference_mode():
        state = model.encode(src, lens).expand_beams(2)
        lp_fast, fast = model.step(prev, state)
        logits, slow, _ = model._decode(PIECES[prev].unsqueeze(1), state)  # the reference, whole vocabulary
        expected = torch.log_softmax(logits.squeeze(1)[:, PIECES].float(), dim=-1)
        assert lp_fast.shape == (6, len(PIECES))
        assert step_tables(model).embedded.size(0) == len(PIECES)  # table rows for the output pieces only
        torch.testing.assert_close(lp_fast, expected, rtol=0, atol=1e-6)
        torch.testing.assert_close(lp_fast.exp().sum(-1), torch.ones(6), rtol=0, atol=1e-5)  # renormalised
        monkey = make_model(cell, 2, "luong_general", input_feeding)  # the reference branch itself
        monkey.restrict_output(PIECES)
        monkey.train()  # the fast step does not apply in training mode (dropout is 0 here)
        lp_ref, _ = monkey.step(prev, state)
        torch.testing.assert_close(lp_ref, expected, rtol=0, atol=1e-6)
        model.restrict_output(None)  # and back to the whole vocabulary: the tables follow
        assert model.step(PIECES[prev], state)[0].shape == (6, 30)


def test_restrict_output_refuses_pieces_without_the_specials_or_unsorted() -> None:
    model = make_model("lstm", 1, "luong_general")
    for bad in ([4, 5, 6], [0, 1, 2, 3, 9, 5], [0, 1, 2, 3, 30]):
        with pytest.raises(ValueError, match="special tokens"):
            model.restrict_output(torch.tensor(bad))


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
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
    with warnings.catch_warnings():  # quantized tensors are marked deprecated (warned once per process)
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(make_model("lstm", 1, "luong_general", dtype=torch.float32),
                                                           {torch.nn.LSTM}, dtype=torch.qint8)
    with torch.inference_mode():
        assert not fast_step_applies(quantized)  # modules it does not know run the reference


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
