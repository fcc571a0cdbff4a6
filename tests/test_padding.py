"""Fewer batch shapes for the CPU's primitive caches: the training loss over real target
rows only, padded to a bucket (Seq2Seq.forward with targets), and training.pad_multiple."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from stages.corpus.batching import TrainData, collate
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq, sequence_loss


def model(input_feeding: bool) -> Seq2Seq:
    torch.manual_seed(0)
    cfg = ModelConfig(embedding_size=12, encoder_hidden=8, decoder_hidden=16, dropout=0.0, input_feeding=input_feeding)
    return Seq2Seq(cfg, 40, 40).double()


def pairs() -> tuple[list[np.ndarray], list[np.ndarray]]:
    gen = np.random.default_rng(3)
    src = [gen.integers(4, 40, n) for n in (7, 3, 5, 9)]
    tgt = [gen.integers(4, 40, n) for n in (4, 8, 2, 6)]
    return src, tgt


@pytest.mark.parametrize("input_feeding", [False, True])
@pytest.mark.parametrize("bucket", [1, 8, 128])
def test_the_bucketed_loss_equals_the_loss_over_all_logits(input_feeding: bool, bucket: int) -> None:
    b = collate(*pairs())
    one, two = model(input_feeding), model(input_feeding)
    expected = sequence_loss(one(b.src, b.src_lens, b.tgt_in), b.tgt_out, 0.1)
    got = two(b.src, b.src_lens, b.tgt_in, b.tgt_out, 0.1, bucket)
    torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-5)  # the loss sums in fp32, in another order
    expected.backward()
    got.backward()
    for (name, p), q in zip(one.named_parameters(), two.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-5, atol=1e-7, msg=name)


def test_padding_to_a_multiple_changes_shapes_not_the_loss() -> None:
    src, tgt = pairs()
    exact, rounded = collate(src, tgt), collate(src, tgt, multiple=8)
    assert exact.src.shape == (4, 9) and exact.tgt_in.shape == (4, 9)
    assert rounded.src.shape == (4, 16) and rounded.tgt_in.shape == (4, 16) and rounded.n_tokens == exact.n_tokens
    net = model(False).eval()
    torch.testing.assert_close(net(rounded.src, rounded.src_lens, rounded.tgt_in, rounded.tgt_out, 0.1),
                               net(exact.src, exact.src_lens, exact.tgt_in, exact.tgt_out, 0.1))


def test_token_batches_of_padded_lengths_keep_the_budget() -> None:
    gen = np.random.default_rng(0)
    src = [gen.integers(4, 40, n) for n in gen.integers(1, 60, 400)]
    tgt = [gen.integers(4, 40, n) for n in gen.integers(1, 60, 400)]
    data = TrainData(src, tgt)
    shapes = {}
    for multiple in (1, 8):
        batches = list(data.batches(512, np.random.default_rng(1), multiple=multiple))
        assert sum(len(b.src) for b in batches) == 400  # every pair, once
        for b in batches:
            assert b.src.size(1) % multiple == 0 and b.tgt_in.size(1) % multiple == 0
            assert max(b.src.size(1), b.tgt_in.size(1)) * len(b.src) <= 512 or len(b.src) == 1
        shapes[multiple] = {(b.src.shape, b.tgt_in.shape) for b in batches}
    assert len(shapes[8]) < len(shapes[1])


def test_pad_multiple_beyond_the_longest_pair_is_refused() -> None:
    from stages.train.config import TrainConfig

    assert TrainConfig(pad_multiple=8).problems() == []
    [problem] = TrainConfig(pad_multiple=1_000_000_000).problems()
    assert problem.startswith("training.pad_multiple=1000000000: must be at most training.max_len (150)")
