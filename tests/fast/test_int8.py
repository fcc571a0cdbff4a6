"""decoding.quantize=int8: the search step's int8 products (stages/model/fast/int8.py)."""

from __future__ import annotations

import pytest
import torch

from stages.decode.config import DecodeConfig
from stages.decode.translation import prepare_for_inference, translate_ids_nbest
from stages.errors import ConfigError
from stages.model.config import ModelConfig
from stages.model.fast import int8
from stages.model.fast.search_step import step_tables
from stages.model.seq2seq import Seq2Seq

SOURCES = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 5, 6, 7, 20], [21, 22, 23], [7, 7, 8], [29, 28, 27, 26, 25, 24]]


ENGINES = [e for e in ("x86", "onednn") if e in torch.backends.quantized.supported_engines]


@pytest.mark.parametrize("engine", ENGINES)
def test_a_rows_int8_product_does_not_depend_on_the_other_rows(engine: str) -> None:
    gen = torch.Generator().manual_seed(0)
    weight, bias = torch.randn(300, 64, generator=gen) * 0.1, torch.randn(300, generator=gen)
    packed = int8.pack(weight, bias, engine)
    x = torch.rand(40, 64, generator=gen) * 2 - 1
    x[3] *= 0.01  # a row of small values beside large ones: per-tensor scales would change with the batch
    whole = int8.product(x, packed)
    for rows in (slice(0, 1), slice(3, 4), slice(5, 22)):
        assert torch.equal(int8.product(x[rows], packed), whole[rows])
    exact = torch.addmm(bias, x, weight.t())
    assert (whole - exact).abs().max() < 0.05  # 7-bit inputs, 8-bit weights per row
    assert torch.equal(int8.add_product(exact, x, int8.pack(weight, engine=engine)),
                       exact + int8.product(x, int8.pack(weight, engine=engine)))
    wide = torch.rand(161, 64, generator=gen) * 2 - 1  # kernels may block rows differently by count
    assert torch.equal(int8.product(wide, packed)[:40], int8.product(wide[:40], packed))


@pytest.mark.parametrize("engine", ENGINES)
def test_a_packed_weight_keeps_its_engine_whatever_the_global_one(engine: str) -> None:
    gen = torch.Generator().manual_seed(1)
    weight, x = torch.randn(96, 32, generator=gen) * 0.1, torch.rand(7, 32, generator=gen) * 2 - 1
    packed = int8.pack(weight, engine=engine)
    before = torch.backends.quantized.engine
    results = []
    try:
        for current in ENGINES:
            torch.backends.quantized.engine = current
            results.append(int8.product(x, packed))
    finally:
        torch.backends.quantized.engine = before
    assert all(torch.equal(r, results[0]) for r in results)


def tiny(cell: str, input_feeding: bool, layers: int = 1, self_attention: bool = False) -> Seq2Seq:
    torch.manual_seed(4)
    cfg = ModelConfig(cell=cell, embedding_size=16, encoder_hidden=16, decoder_hidden=24, decoder_layers=layers,
                      dropout=0.0, input_feeding=input_feeding, decoder_self_attention=self_attention)
    return Seq2Seq(cfg, 30, 30).eval()


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("input_feeding", [False, True, "self_attention"], ids=["plain", "input_feeding",
                                                                               "self_attention"])
def test_int8_step_is_close_to_the_fp32_step(cell: str, input_feeding: bool | str) -> None:
    looks_back = input_feeding == "self_attention"
    input_feeding = input_feeding is True
    fp32 = tiny(cell, input_feeding, layers=2, self_attention=looks_back)
    quantized = prepare_for_inference(tiny(cell, input_feeding, layers=2, self_attention=looks_back),
                                      DecodeConfig(quantize="int8"), "cpu")
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0]])
    lens = torch.tensor([4, 3])
    prev = torch.tensor([2, 2])
    with torch.inference_mode():
        a, b = fp32.encode(src, lens), quantized.encode(src, lens)
        for _ in range(4):
            lp_a, a = fp32.step(prev, a)
            lp_b, b = quantized.step(prev, b)
            assert (lp_a - lp_b).abs().max() < 0.05
            prev = lp_a.argmax(-1)
        assert step_tables(quantized).quantized and not step_tables(fp32).quantized
        # LSTM and plain RNN layers multiply [x; h] at once (layer 0: only with a fed vector)
        fused = [w is not None for w in step_tables(quantized).w_xh]
        assert fused == ([False, False] if cell == "gru" else [input_feeding, True])


@pytest.mark.parametrize("beam", [1, 4])
@pytest.mark.parametrize("input_feeding", [False, True, "self_attention"], ids=["plain", "input_feeding",
                                                                               "self_attention"])
def test_int8_translation_is_batch_invariant(beam: int, input_feeding: bool | str) -> None:
    model = prepare_for_inference(tiny("lstm", input_feeding is True, self_attention=input_feeding == "self_attention"),
                                  DecodeConfig(quantize="int8"), "cpu")
    batched = translate_ids_nbest(model, SOURCES, DecodeConfig(beam_size=beam, batch_size=6), "cpu", 2)
    for i, source in enumerate(SOURCES):
        [alone] = translate_ids_nbest(model, [source], DecodeConfig(beam_size=beam, batch_size=1), "cpu", 2)
        assert [(h.tokens, h.score) for h in alone] == [(h.tokens, h.score) for h in batched[i]]


def test_int8_runs_on_the_cpu_only() -> None:
    with pytest.raises(ConfigError, match="CPU only"):
        prepare_for_inference(tiny("lstm", False), DecodeConfig(quantize="int8"), "cuda")
