from __future__ import annotations

import itertools

import pytest
import torch

from stages.attention import Attention
from stages.model import ModelConfig, Seq2Seq
from stages.tokenization import PAD_ID

CELLS = ("rnn", "gru", "lstm")
ATTENTIONS = ("none", "bahdanau", "luong_dot", "luong_general")


def small(cell: str = "lstm", attention: str = "luong_general", **kw: object) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, attention=attention, embedding_size=16, encoder_hidden=12,  # type: ignore[arg-type]
                      decoder_hidden=24, dropout=0.0, **kw)  # type: ignore[arg-type]
    return Seq2Seq(cfg, 50, 60).eval()


def padded_batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    src = torch.tensor([[5, 6, 7, 8, 9], [10, 11, 12, 0, 0], [13, 14, 0, 0, 0]])
    lens = torch.tensor([5, 3, 2])
    tgt = torch.tensor([[2, 20, 21, 22], [2, 23, 24, 0], [2, 25, 0, 0]])
    return src, lens, tgt


@pytest.mark.parametrize("cell,attention", list(itertools.product(CELLS, ATTENTIONS)))
def test_shapes_and_attention_masks(cell: str, attention: str) -> None:
    model = small(cell, attention)
    src, lens, tgt = padded_batch()
    logits = model(src, lens, tgt)  # (B, T, V)
    assert logits.shape == (3, 4, 60)
    state = model.encode(src, lens)
    assert state.memory.shape == (3, 5, 24)
    _, _, weights = model._decode(tgt, state)
    assert weights.shape == (3, 4, 5)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 4))
    assert torch.all(weights[1, :, 3:] == 0) and torch.all(weights[2, :, 2:] == 0)
    assert torch.all(weights[0] > 0)
    if attention == "none":  # one fixed context: uniform over the real positions, every step
        torch.testing.assert_close(weights[1, :, :3], torch.full((4, 3), 1 / 3))
    logits.sum().backward()
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)


def test_padding_does_not_change_a_sentence() -> None:
    model = small()
    src, lens, tgt = padded_batch()
    full = model(src, lens, tgt)[2, :2]
    alone = model(src[2:3, :2], lens[2:3], tgt[2:3, :2])[0]
    torch.testing.assert_close(full, alone, rtol=1e-5, atol=1e-5)


def test_step_matches_teacher_forcing() -> None:
    model = small()
    src, lens, tgt = padded_batch()
    teacher = torch.log_softmax(model(src, lens, tgt), dim=-1)
    state = model.encode(src, lens)
    for t in range(tgt.size(1)):
        log_probs, state = model.step(tgt[:, t], state)
        torch.testing.assert_close(log_probs, teacher[:, t], rtol=1e-4, atol=1e-4)


def test_reorder_follows_index() -> None:
    model = small("gru")
    src, lens, _ = padded_batch()
    state = model.encode(src, lens).reorder(torch.tensor([2, 2, 0]))
    assert torch.equal(state.mask[0], state.mask[1])
    assert torch.equal(state.mask[2], (src != PAD_ID)[0])


def test_tied_embeddings_share_storage() -> None:
    cfg = ModelConfig(embedding_size=24, encoder_hidden=12, decoder_hidden=24, tie_embeddings=True)
    model = Seq2Seq(cfg, 50, 60)
    assert model.generator.weight.data_ptr() == model.tgt_embed.weight.data_ptr()


def test_bahdanau_attention_is_additive() -> None:
    attn = Attention("bahdanau", 4, 6, 5)
    memory = torch.randn(2, 3, 6)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    context, weights = attn(torch.randn(2, 1, 4), attn.precompute_keys(memory), memory, mask)
    assert context.shape == (2, 1, 6) and weights[0, 0, 2] == 0


def test_int8_quantization_replaces_linear_and_recurrent_layers() -> None:
    from stages.errors import ConfigError
    from stages.translation import DecodeConfig, prepare_for_inference

    model = small()
    quantized = prepare_for_inference(model, DecodeConfig(quantize="int8"), "cpu")
    assert any("quantized.dynamic" in type(m).__module__ for m in quantized.modules())
    assert not any(type(m) is torch.nn.LSTM for m in quantized.modules())
    src, lens, tgt = padded_batch()
    assert quantized(src, lens, tgt).shape == (3, 4, 60)
    with pytest.raises(ConfigError, match="CPU only"):
        prepare_for_inference(model, DecodeConfig(quantize="int8"), "cuda")


@pytest.mark.parametrize("bridge", ["learned", "last", "zeros"])
@pytest.mark.parametrize("cell", CELLS)
def test_bridges(bridge: str, cell: str) -> None:
    torch.manual_seed(0)
    cfg = ModelConfig(cell=cell, bridge=bridge, embedding_size=16, encoder_hidden=12,  # type: ignore[arg-type]
                      decoder_hidden=24, decoder_layers=2, dropout=0.0)
    model = Seq2Seq(cfg, 50, 60)
    src, lens, tgt = padded_batch()
    state = model.encode(src, lens)
    h = state.hidden[0] if isinstance(state.hidden, tuple) else state.hidden
    assert h.shape == (2, 3, 24)
    if bridge == "zeros":
        assert torch.all(h == 0)
    model(src, lens, tgt).sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_bridge_last_needs_matching_sizes() -> None:
    from pipeline.config import load_config
    from stages.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model\.bridge=last.*model\.decoder_hidden \(300\)"):
        load_config(None, ["model.bridge=last", "model.decoder_hidden=300"])
    assert load_config(None, ["model.bridge=last"]).model.bridge == "last"  # 2 x 256 == 512
