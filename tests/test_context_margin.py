"""training.context_margin: the context-aware margin of Jean and Cho (2019). Each batch of
a context model also holds its sources behind other pairs' contexts, and the loss adds a
hinge on how much more likely the target is behind its own context."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from stages.corpus.batching import TrainData, collate, swapped_contexts
from stages.corpus.vocab import SEP_ID
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq
from stages.train.config import TrainConfig
from stages.train.step import context_margin_loss, train_step


def _ids(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int32)


def test_each_context_is_swapped_for_the_next_different_one() -> None:
    sources = [_ids(10, 11, SEP_ID, 20), _ids(12, SEP_ID, 21, 22), _ids(SEP_ID, 23), _ids(10, 11, SEP_ID, 24),
               _ids(25, 26)]
    swapped, contrasted = swapped_contexts(sources)
    assert [s.tolist() for s in swapped] == [[12, SEP_ID, 20], [10, 11, SEP_ID, 21, 22], [SEP_ID, 23],
                                             [12, SEP_ID, 24], [25, 26]]
    assert contrasted.tolist() == [True, True, False, True, False]  # no context: nothing to swap
    same = [_ids(10, SEP_ID, 20), _ids(10, SEP_ID, 21)]
    assert swapped_contexts(same)[1].tolist() == [False, False]  # one context only: no contrast


def test_batches_carry_the_contrast_only_when_asked() -> None:
    rng = np.random.default_rng(0)
    src = [_ids(*rng.integers(10, 50, 3), SEP_ID, *rng.integers(10, 50, 4)) for _ in range(40)]
    tgt = [_ids(*rng.integers(10, 50, 5)) for _ in range(40)]
    data = TrainData(src, tgt)
    plain = data.batches(128, np.random.default_rng(1))
    contrast = data.batches(128, np.random.default_rng(1), contrast=True)
    assert all(b.contrast_src is None for b in plain)
    for a, b in zip(plain, contrast):
        assert (a.src == b.src).all() and (a.tgt_out == b.tgt_out).all()
        assert b.contrasted is not None and b.contrast_src is not None and bool(b.contrasted.all())
        for own, other, n in zip(b.src, b.contrast_src, b.src_lens):  # the sentence stays, the context changes
            own = own[: int(n)].tolist()
            other = other[other != 0].tolist()
            assert other[other.index(SEP_ID) :] == own[own.index(SEP_ID) :]
            assert other[: other.index(SEP_ID)] != own[: own.index(SEP_ID)]


def _batch_and_model() -> tuple[Seq2Seq, object]:
    torch.manual_seed(0)
    rng = np.random.default_rng(2)
    src = [_ids(*rng.integers(10, 40, rng.integers(1, 6)), SEP_ID, *rng.integers(10, 40, rng.integers(2, 7)))
           for _ in range(6)]
    src[2] = _ids(SEP_ID, 11, 12)  # a pair without context
    tgt = [_ids(*rng.integers(10, 40, rng.integers(2, 8))) for _ in range(6)]
    batch = collate(src, tgt)
    swapped, contrasted = swapped_contexts(src)
    other = collate(swapped, tgt)
    batch.contrast_src, batch.contrast_lens = other.src, other.src_lens
    batch.contrasted = torch.from_numpy(contrasted)
    cfg = ModelConfig(embedding_size=16, encoder_hidden=16, decoder_hidden=24, dropout=0.0)
    return Seq2Seq(cfg, 40, 40).eval(), batch


@pytest.mark.parametrize("margin", [0.0, 0.5, 50.0])
def test_the_loss_is_the_usual_loss_plus_the_hinge(margin: float) -> None:
    model, b = _batch_and_model()
    with torch.no_grad():
        usual = model(b.src, b.src_lens, b.tgt_in, b.tgt_out, 0.1)
        own = model.sequence_log_probs(b.src, b.src_lens, b.tgt_in, b.tgt_out)
        other = model.sequence_log_probs(b.contrast_src, b.contrast_lens, b.tgt_in, b.tgt_out)
        pieces = (b.tgt_out != 0).sum(dim=1)
        hinge = torch.relu(margin * pieces - (own - other))
        got = context_margin_loss(model, b, 0.1, margin)
    assert not b.contrasted[2] and b.contrasted.sum() == 5
    assert got == pytest.approx(float(usual + hinge[b.contrasted].sum()), rel=1e-5)
    if margin == 50.0:  # every contrasted pair pays: the model cannot gain 50 nats a piece
        assert got > usual + 5 * 40


def test_a_step_with_a_margin_moves_the_weights_differently() -> None:
    moved = []
    for margin in (0.0, 1.0):
        model, b = _batch_and_model()
        model.train()
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        before = [p.detach().clone() for p in model.parameters()]
        train_step(model, optimizer, b, TrainConfig(device="cpu", context_margin=margin), None, "cpu")
        moved.append(torch.cat([(p.detach() - q).flatten() for p, q in zip(model.parameters(), before)]))
    assert not torch.allclose(moved[0], moved[1])


def test_context_margin_config_problems() -> None:
    from pipeline.config import RunConfig, validate
    from stages.corpus.config import DataConfig

    assert TrainConfig(context_margin=-0.1, device="cpu").problems()[0].startswith("training.context_margin=-0.1")
    cfg = RunConfig()
    no_context = validate(dataclasses.replace(cfg, training=TrainConfig(context_margin=0.05, device="cpu")))
    assert any(p.startswith("training.context_margin=0.05") and "data.context is 0" in p for p in no_context)
    target = dataclasses.replace(cfg, training=TrainConfig(context_margin=0.05, device="cpu"),
                                 data=DataConfig(context=1, target_context=True))
    assert any("data.target_context: false or training.context_margin: 0" in p for p in validate(target))
