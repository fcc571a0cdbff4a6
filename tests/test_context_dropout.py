"""training.context_dropout: a context model's training pairs lose their previous lines
at random, per epoch, keeping the separator (TrainData.batches)."""

from __future__ import annotations

import numpy as np
import pytest

from stages.corpus.batching import TrainData
from stages.corpus.token_ids import IdColumn
from stages.corpus.vocab import SEP_ID
from stages.train.config import TrainConfig


def _pairs(n: int = 200, seed: int = 0) -> TrainData:
    """Sources "ctx... SEP sentence..." (every fifth without context: SEP first) and targets."""
    rng = np.random.default_rng(seed)
    src, tgt = [], []
    for i in range(n):
        context = [] if i % 5 == 0 else list(rng.integers(10, 50, rng.integers(1, 12)))
        sentence = list(rng.integers(10, 50, rng.integers(1, 10)))
        src.append(np.array([*context, SEP_ID, *sentence], dtype=np.int32))
        tgt.append(np.array([*sentence, 100 + i], dtype=np.int32))  # its last id names the pair
    return TrainData(src, tgt)


def _sources(data: TrainData, p: float, seed: int = 3) -> dict[int, list[int]]:
    """Each pair's source as the epoch's batches hold it, by the pair's number."""
    out: dict[int, list[int]] = {}
    for batch in data.batches(256, np.random.default_rng(seed), context_dropout=p):
        for s, n, t in zip(batch.src, batch.src_lens, batch.tgt_in):
            out[int(t[t > 0].max()) - 100] = s[: int(n)].tolist()
    return out


def test_prefix_lengths_count_the_ids_before_the_first_separator() -> None:
    rows = [np.array(r, dtype=np.int32) for r in ([5, 6, SEP_ID, 7], [SEP_ID, 9], [8, 9], [], [1, SEP_ID, SEP_ID])]
    assert IdColumn.from_arrays(rows).prefix_lengths(SEP_ID).tolist() == [2, 0, 0, 0, 1]
    flat = np.concatenate(rows)
    offsets = np.cumsum([0] + [len(r) for r in rows])
    split = IdColumn([flat, flat], [offsets[:3], offsets[2:] - 0])  # two chunks sharing a row boundary
    assert split.prefix_lengths(SEP_ID).tolist() == [2, 0, 0, 0, 1]


def test_no_context_dropout_leaves_the_batches_as_they_were() -> None:
    data = _pairs()
    plain = data.batches(256, np.random.default_rng(3))
    zero = data.batches(256, np.random.default_rng(3), context_dropout=0.0)
    assert [g.tolist() for g in plain.groups] == [g.tolist() for g in zero.groups]
    assert all((a.src == b.src).all() for a, b in zip(plain, zero))


def test_full_context_dropout_keeps_only_the_separator_and_the_sentence() -> None:
    data = _pairs()
    full = _sources(data, 1.0)
    for t, src in _sources(data, 0.0).items():
        assert full[t] == src[src.index(SEP_ID) :]


def test_context_dropout_draws_per_pair_and_repeats_with_the_generator() -> None:
    data = _pairs(400)
    kept = _sources(data, 0.0)
    half = _sources(data, 0.5)
    with_context = [t for t, src in kept.items() if src[0] != SEP_ID]
    dropped = sum(half[t][0] == SEP_ID for t in with_context)
    assert 0.35 < dropped / len(with_context) < 0.65
    assert half == _sources(data, 0.5)  # same generator state, same epoch
    assert half != _sources(data, 0.5, seed=4)


def test_the_token_budget_counts_the_shortened_sources() -> None:
    data = _pairs(400)
    for batch in data.batches(96, np.random.default_rng(1), context_dropout=0.5):
        assert batch.src.shape[0] * max(batch.src.shape[1], batch.tgt_in.shape[1]) <= 96 or batch.src.shape[0] == 1


@pytest.mark.parametrize("value", [-0.1, 1.5])
def test_context_dropout_outside_0_1_is_a_config_problem(value: float) -> None:
    problems = TrainConfig(context_dropout=value, device="cpu").problems()
    assert any(p.startswith(f"training.context_dropout={value}") for p in problems)


def test_coword_dropout_masks_only_the_sentence_and_repeats_per_batch() -> None:
    from stages.corpus.vocab import UNK_ID

    data = _pairs(400)
    plain = data.batches(256, np.random.default_rng(3), context_dropout=0.0)
    masked = data.batches(256, np.random.default_rng(3), coword_dropout=0.3)
    assert [g.tolist() for g in plain.groups] == [g.tolist() for g in masked.groups]  # same batches
    hidden = total = 0
    for index, (a, b) in enumerate(zip(plain, masked)):
        assert (b.src == masked[index].src).all()  # collated again, or out of order: the same
        for s, m, n in zip(a.src, b.src, a.src_lens):
            s, m = s[: int(n)].tolist(), m[: int(n)].tolist()
            sep = s.index(SEP_ID)
            assert m[: sep + 1] == s[: sep + 1]  # the context and the separator stay
            changed = [x != y for x, y in zip(s[sep + 1 :], m[sep + 1 :])]
            assert all(y == UNK_ID for x, y, c in zip(s[sep + 1 :], m[sep + 1 :], changed) if c)
            hidden, total = hidden + sum(changed), total + len(changed)
    assert 0.2 < hidden / total < 0.4
    assert TrainConfig(coword_dropout=1.0, device="cpu").problems()[0].startswith("training.coword_dropout=1.0")


@pytest.mark.parametrize("key", ["context_dropout", "coword_dropout"])
def test_context_dropouts_without_context_are_config_errors(key: str) -> None:
    from pipeline.config import RunConfig, validate

    cfg = RunConfig()
    bad = validate(type(cfg)(**{**vars(cfg), "training": TrainConfig(**{key: 0.2, "device": "cpu"})}))
    assert any(p.startswith(f"training.{key}=0.2") and "data.context is 0" in p for p in bad)
