from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from stages.corpus.vocab import PAD_ID
from stages.model.attention import Attention
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq

CELLS = ("rnn", "gru", "lstm")
ATTENTIONS = ("none", "bahdanau", "luong_dot", "luong_general", "luong_concat")
GRID = list(itertools.product(CELLS, ATTENTIONS, (False, True)))


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


@pytest.mark.parametrize("cell,attention,feeding", GRID)
def test_shapes_and_attention_masks(cell: str, attention: str, feeding: bool) -> None:
    model = small(cell, attention, input_feeding=feeding)
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


@pytest.mark.parametrize("cell,attention,feeding", GRID)
def test_appended_padding_changes_no_real_position(cell: str, attention: str, feeding: bool) -> None:
    model = small(cell, attention, input_feeding=feeding)
    src, lens, tgt = padded_batch()
    logits, _, weights = model._decode(tgt, model.encode(src, lens))
    wide_src = torch.cat([src, torch.zeros(3, 3, dtype=torch.long)], dim=1)  # 3 more pad columns
    wide_tgt = torch.cat([tgt, torch.zeros(3, 2, dtype=torch.long)], dim=1)
    wide_logits, _, wide_weights = model._decode(wide_tgt, model.encode(wide_src, lens))
    for b, (n_src, n_tgt) in enumerate(zip(lens.tolist(), (tgt != PAD_ID).sum(1).tolist())):
        torch.testing.assert_close(wide_logits[b, :n_tgt], logits[b, :n_tgt], rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(wide_weights[b, :n_tgt, :5], weights[b, :n_tgt], rtol=1e-5, atol=1e-6)
        assert torch.all(wide_weights[b, :, n_src:] == 0)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("feeding", [False, True], ids=["plain", "input_feeding"])
@pytest.mark.parametrize("layers", [1, 2])
def test_step_matches_teacher_forcing(cell: str, feeding: bool, layers: int) -> None:
    model = small(cell, input_feeding=feeding, decoder_layers=layers)
    src, lens, tgt = padded_batch()
    teacher = torch.log_softmax(model(src, lens, tgt), dim=-1)
    state = model.encode(src, lens)
    for t in range(tgt.size(1)):
        log_probs, state = model.step(tgt[:, t], state)
        torch.testing.assert_close(log_probs, teacher[:, t], rtol=1e-4, atol=1e-4)
    assert (state.feed is not None) == feeding


def test_input_feeding_feeds_the_attentional_vector() -> None:
    model = small(input_feeding=True)
    src, lens, tgt = padded_batch()
    state = model.encode(src, lens)
    assert state.feed is not None and torch.all(state.feed == 0)  # zeros before the first step
    _, after = model.step(tgt[:, 0], state)
    expected = torch.tanh(model.combine(torch.cat([
        model.attention(after.hidden[0][-1].unsqueeze(1), state.keys, state.memory, state.mask)[0].squeeze(1),
        after.hidden[0][-1]], dim=-1)))
    torch.testing.assert_close(after.feed, expected)
    changed = replace(after, feed=torch.zeros_like(expected))  # the next step must read it
    assert not torch.allclose(model.step(tgt[:, 1], after)[0], model.step(tgt[:, 1], changed)[0])
    assert model.decoder_rnn.input_size == 16 + 24


@pytest.mark.parametrize("cell", CELLS)
def test_input_feeding_trains_under_bf16_autocast(cell: str) -> None:
    model = small(cell, input_feeding=True, decoder_layers=2).train()
    src, lens, tgt = padded_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(src, lens, tgt)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits).all()
    logits.float().sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


def test_reorder_follows_index() -> None:
    model = small("gru")
    src, lens, _ = padded_batch()
    state = model.encode(src, lens).reorder(torch.tensor([2, 2, 0]))
    assert torch.equal(state.mask[0], state.mask[1])
    assert torch.equal(state.mask[2], (src != PAD_ID)[0])


@pytest.mark.parametrize("attention", ["bahdanau", "luong_general", "luong_concat", "none"])
@pytest.mark.parametrize("feeding", [False, True])
def test_beams_share_memory_and_step_as_if_it_were_copied(attention: str, feeding: bool) -> None:
    model = small("lstm", attention=attention, input_feeding=feeding).eval()
    src, lens, tgt = padded_batch()
    k = 3
    shared = model.encode(src, lens).expand_beams(k)
    copied = model.encode(src, lens).reorder(torch.arange(src.size(0)).repeat_interleave(k))
    assert shared.memory.size(0) == src.size(0) and copied.memory.size(0) == src.size(0) * k
    prev = tgt[:, 0].repeat_interleave(k)
    with torch.no_grad():
        for t in range(3):
            lp_shared, shared = model.step(prev, shared)
            lp_copied, copied = model.step(prev, copied)
            torch.testing.assert_close(lp_shared, lp_copied)
            prev = lp_shared.argmax(-1)
            shuffle = torch.tensor([2, 0, 1, 5, 5, 3, 8, 6, 7])[: src.size(0) * k]
            shared, copied = shared.reorder_hypotheses(shuffle), copied.reorder_hypotheses(shuffle)
        keep = torch.tensor([3, 4, 5, 0, 1, 2])  # sentences 1 and 0 stay, in that order
        lp_shared, _ = model.step(prev[keep], shared.reorder(keep))
        lp_copied, _ = model.step(prev[keep], copied.reorder(keep))
    torch.testing.assert_close(lp_shared, lp_copied)


def test_reorder_moves_the_fed_vector() -> None:
    model = small(input_feeding=True)
    src, lens, tgt = padded_batch()
    _, state = model.step(tgt[:, 0], model.encode(src, lens))
    assert state.feed is not None
    index = torch.tensor([2, 2, 0])
    for moved in (state.reorder(index), state.reorder_hypotheses(index)):
        assert moved.feed is not None and torch.equal(moved.feed, state.feed[index])


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


def test_luong_concat_has_one_unbiased_matrix_over_both_states() -> None:
    attn = Attention("luong_concat", 4, 6)
    assert attn.query_proj.bias is None and attn.key_proj.bias is None
    memory, query = torch.randn(2, 3, 6), torch.randn(2, 1, 4)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    _, weights = attn(query, attn.precompute_keys(memory), memory, mask)
    w = torch.cat([attn.query_proj.weight, attn.key_proj.weight], dim=1)  # W of v^T tanh(W [h_t; h_s])
    pairs = torch.cat([query.expand(-1, 3, -1), memory], dim=-1)  # (B, S, 4 + 6)
    scores = attn.energy(torch.tanh(pairs @ w.t())).squeeze(-1).masked_fill(~mask, float("-inf"))
    torch.testing.assert_close(weights.squeeze(1), torch.softmax(scores, dim=-1))


def _lstms(model: Seq2Seq) -> list[torch.nn.LSTM]:
    return [m for m in model.modules() if isinstance(m, torch.nn.LSTM)]


@pytest.mark.parametrize("init", ["uniform", "xavier"])
@pytest.mark.parametrize("recurrent_init", ["same", "orthogonal"])
def test_initialisation(init: str, recurrent_init: str) -> None:
    model = small(init=init, recurrent_init=recurrent_init, decoder_layers=2)
    assert len(_lstms(model)) == 3
    for lstm in _lstms(model):
        for name, param in lstm.named_parameters():
            blocks = param.detach().chunk(4, dim=0)
            if name.startswith("bias_hh"):
                assert torch.all(blocks[1] == 1.0), f"forget-gate bias of {name}"
            if name.startswith("weight_hh") and recurrent_init == "orthogonal":
                for block in blocks:  # (H, H), orthogonal per gate
                    torch.testing.assert_close(block @ block.t(), torch.eye(block.size(0)), atol=1e-5, rtol=0)
            elif name.startswith("weight"):
                h, fan_in = blocks[0].shape
                bound = 0.1 if init == "uniform" else (6 / (h + fan_in)) ** 0.5  # Glorot per gate block
                assert param.abs().max() <= bound and param.abs().max() > bound * 0.8
            elif init == "xavier" and name.startswith("bias_ih"):
                assert torch.all(param == 0)
    for embed in (model.encoder.embed, model.tgt_embed):
        assert torch.all(embed.weight[PAD_ID] == 0)
    if init == "xavier":
        bound = (6 / sum(model.generator.weight.shape)) ** 0.5
        assert model.generator.weight.abs().max() <= bound and torch.all(model.generator.bias == 0)


def test_shared_embeddings_are_one_matrix() -> None:
    from stages.errors import ConfigError

    torch.manual_seed(0)
    cfg = ModelConfig(embedding_size=24, encoder_hidden=12, decoder_hidden=24, share_embeddings=True, dropout=0.0)
    model = Seq2Seq(cfg, 50, 50)
    assert model.tgt_embed.weight is model.encoder.embed.weight
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in Seq2Seq(ModelConfig(**{**cfg.__dict__, "share_embeddings": False}), 50, 50).parameters()
    ) - 50 * 24
    tied = Seq2Seq(replace(cfg, tie_embeddings=True), 50, 50)
    assert tied.generator.weight is tied.encoder.embed.weight
    assert tied.tied_weights() == {"tgt_embed.weight": "encoder.embed.weight", "generator.weight": "encoder.embed.weight"}
    with pytest.raises(ConfigError, match=r"model\.share_embeddings=true .* 50 pieces and the target 60.*tokenizer\.joint"):
        Seq2Seq(cfg, 50, 60)


def test_share_embeddings_needs_a_joint_tokenizer() -> None:
    from pipeline.config import load_config
    from stages.errors import ConfigError

    with pytest.raises(ConfigError, match=r"model\.share_embeddings=true .*tokenizer\.joint: true"):
        load_config(None, ["model.share_embeddings=true", "tokenizer.joint=false"])
    assert load_config(None, ["model.share_embeddings=true"]).model.share_embeddings


def _checkpoint(tmp_path: Path, cfg: ModelConfig, vocab: int = 20) -> tuple[Seq2Seq, Path]:
    from stages import artifacts
    from stages.model.checkpoint import save_checkpoint

    spm_dir = tmp_path / "spm"  # the checkpoint copies and hashes these files, nothing more
    spm_dir.mkdir(exist_ok=True)
    for name in (artifacts.SPM_SRC, artifacts.SPM_TGT):
        (spm_dir / name).write_bytes(b"tokenizer")
    torch.manual_seed(0)
    model = Seq2Seq(cfg, vocab, vocab).eval()
    save_checkpoint(tmp_path / "ckpt", model, spm_dir, {"step": 1})
    return model, tmp_path / "ckpt"


@pytest.mark.parametrize("tie", [False, True])
def test_checkpoint_with_shared_embeddings_round_trips(tmp_path: Path, tie: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    from stages.model import checkpoint

    cfg = ModelConfig(embedding_size=8, encoder_hidden=4, decoder_hidden=8, share_embeddings=True,
                      tie_embeddings=tie, input_feeding=True, attention="luong_concat")
    model, folder = _checkpoint(tmp_path, cfg)
    monkeypatch.setattr(checkpoint, "_processor", lambda path, pieces: str(path))  # stand-in tokenizer files
    loaded, _, _, _ = checkpoint.load_checkpoint(folder)
    assert loaded.tgt_embed.weight is loaded.encoder.embed.weight
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name


def test_checkpoint_from_before_the_new_model_keys_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    from stages.model import checkpoint

    model, folder = _checkpoint(tmp_path, ModelConfig(embedding_size=8, encoder_hidden=4, decoder_hidden=8))
    meta = json.loads((folder / "meta.json").read_text())
    for key in ("input_feeding", "share_embeddings", "init", "recurrent_init"):
        del meta["model"][key]  # as written before these keys existed
    (folder / "meta.json").write_text(json.dumps(meta))
    monkeypatch.setattr(checkpoint, "_processor", lambda path, pieces: str(path))  # stand-in tokenizer files
    loaded, _, _, _ = checkpoint.load_checkpoint(folder)
    assert loaded.cfg == model.cfg and not loaded.cfg.input_feeding
    src, lens, tgt = padded_batch()
    src, tgt = src.clamp(max=19), tgt.clamp(max=19)
    torch.testing.assert_close(loaded(src, lens, tgt), model(src, lens, tgt), rtol=0, atol=0)
