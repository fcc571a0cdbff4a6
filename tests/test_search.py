from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from stages.corpus.vocab import BOS_ID, EOS_ID, PAD_ID, SEP_ID, UNK_ID
from stages.decode.search import (
    CharBudget,
    Constraints,
    Hypothesis,
    banned_tokens,
    beam_search,
    best_reachable,
    greedy_search,
    is_sentence_done,
    length_penalty,
    select_alive,
)
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq

A, B = 4, 5
# A bigram "model": the next-token distribution depends only on the previous token.
TABLE = {BOS_ID: {A: 0.6, B: 0.4}, A: {A: 0.3, B: 0.3, EOS_ID: 0.4}, B: {EOS_ID: 0.9, A: 0.1}}


@dataclass
class BigramState:
    rows: torch.Tensor

    def reorder(self, index: torch.Tensor) -> "BigramState":
        return BigramState(self.rows.index_select(0, index))

    reorder_hypotheses = reorder

    def expand_beams(self, k: int) -> "BigramState":
        return self.reorder(torch.arange(self.rows.size(0)).repeat_interleave(k))


class BigramModel:
    def __init__(self, table: dict[int, dict[int, float]] = TABLE, vocab: int = 6) -> None:
        self.table = torch.full((vocab, vocab), -1e9)
        for prev, nexts in table.items():
            for tok, p in nexts.items():
                self.table[prev, tok] = math.log(p)

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> BigramState:
        return BigramState(torch.arange(src.size(0)))

    def step(self, prev: torch.Tensor, state: BigramState) -> tuple[torch.Tensor, BigramState]:
        return self.table[prev], state


@pytest.mark.parametrize("beam", [1, 3])
def test_the_search_never_writes_padding_or_the_start_token(beam: int) -> None:
    """A model that likes them (a character budget made them free) still gets a text."""
    model = BigramModel({BOS_ID: {BOS_ID: 0.5, PAD_ID: 0.3, A: 0.2}, A: {BOS_ID: 0.6, EOS_ID: 0.4}})
    src, lens = torch.ones(1, 3, dtype=torch.long), torch.tensor([3])
    found = beam_search(model, src, lens, beam_size=beam)[0][0] if beam > 1 else greedy_search(model, src, lens)[0]
    assert found.tokens == [A]


def test_select_alive_skips_eos() -> None:
    tokens = torch.tensor([[EOS_ID, 7, 8, EOS_ID], [9, EOS_ID, 10, 11]])
    scores = torch.tensor([[-1.0, -2.0, -3.0, -4.0], [-0.5, -0.625, -0.75, -0.875]])
    positions, alive = select_alive(scores, tokens, 2)
    assert positions.tolist() == [[1, 2], [0, 2]]
    assert alive.tolist() == [[-2.0, -3.0], [-0.5, -0.75]]


def test_beam_finds_what_greedy_misses() -> None:
    src, lens = torch.ones(1, 3, dtype=torch.long), torch.tensor([3])
    greedy = greedy_search(BigramModel(), src, lens)[0]
    assert greedy.tokens == [A]
    assert greedy.log_prob == pytest.approx(math.log(0.6 * 0.4))
    best = beam_search(BigramModel(), src, lens, beam_size=2, alpha=0.0, n_best=2)[0]
    assert [h.tokens for h in best] == [[B], [A]]
    assert best[0].log_prob == pytest.approx(math.log(0.4 * 0.9))


def test_beam_does_not_stop_while_the_best_hypothesis_is_alive() -> None:
    # Unlikely EOS candidates fill up `beam_size` finished slots at steps 0 and 1, while
    # the best hypothesis A C (p = 0.97^3) finishes only at step 2.
    c = 6
    table = {BOS_ID: {A: 0.97, EOS_ID: 0.02, B: 0.01}, A: {c: 0.97, EOS_ID: 0.02, B: 0.01},
             c: {EOS_ID: 0.97, B: 0.03}, B: {EOS_ID: 1.0}}
    src, lens = torch.ones(1, 3, dtype=torch.long), torch.tensor([3])
    best = beam_search(BigramModel(table, 7), src, lens, beam_size=2, alpha=0.0)[0][0]
    assert best.tokens == [A, c]
    assert best.log_prob == pytest.approx(3 * math.log(0.97))


def test_length_penalty_gnmt() -> None:
    assert length_penalty(1, 0.0) == 1.0
    assert length_penalty(7, 1.0) == pytest.approx(2.0)


def test_max_length_limits_output() -> None:
    always_a = BigramModel()
    always_a.table[A] = torch.log(torch.tensor([1e-9, 1e-9, 1e-9, 1e-9, 1.0, 1e-9]))
    src, lens = torch.ones(1, 2, dtype=torch.long), torch.tensor([2])
    hyp = greedy_search(always_a, src, lens, ratio=1.0, extra=3)[0]
    assert hyp.tokens == [A] * 5
    beam = beam_search(always_a, src, lens, beam_size=3, ratio=1.0, extra=3)[0][0]
    assert len(beam.tokens) == 5


def random_model(input_feeding: bool = False) -> Seq2Seq:
    torch.manual_seed(3)
    cfg = ModelConfig(embedding_size=16, encoder_hidden=16, decoder_hidden=32, dropout=0.0, init_range=0.5,
                      input_feeding=input_feeding)
    return Seq2Seq(cfg, 40, 40).double().eval()


FEEDING = pytest.mark.parametrize("feeding", [False, True], ids=["plain", "input_feeding"])


def random_batch(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(11)
    lens = torch.randint(1, 12, (n,), generator=gen)
    src = torch.zeros(n, int(lens.max()), dtype=torch.long)
    for i, length in enumerate(lens.tolist()):
        src[i, :length] = torch.randint(4, 40, (length,), generator=gen)
    return src, lens


@FEEDING
def test_beam_size_one_equals_greedy(feeding: bool) -> None:
    model = random_model(feeding)
    src, lens = random_batch(8)
    greedy = greedy_search(model, src, lens)
    beam = beam_search(model, src, lens, beam_size=1, alpha=0.0)
    assert [g.tokens for g in greedy] == [b[0].tokens for b in beam]
    for g, b in zip(greedy, beam):
        assert g.log_prob == pytest.approx(b[0].log_prob)


@FEEDING
@pytest.mark.parametrize("beam", [1, 4])
def test_sentence_decodes_identically_alone_and_in_batch_of_32(beam: int, feeding: bool) -> None:
    model = random_model(feeding)
    src, lens = random_batch(32)
    batch = beam_search(model, src, lens, beam_size=beam, n_best=beam)
    for i in (0, 5, 31):
        alone = beam_search(model, src[i : i + 1, : lens[i]], lens[i : i + 1], beam_size=beam, n_best=beam)[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batch[i]]
        assert [h.score for h in alone] == pytest.approx([h.score for h in batch[i]], abs=1e-9)


def test_banned_tokens_complete_seen_ngrams() -> None:
    assert banned_tokens([4, 5, 4], 2) == {5}
    assert banned_tokens([4, 5, 6, 4, 5], 3) == {6}
    assert banned_tokens([4, 5], 3) == set()
    assert banned_tokens([7, 8], 1) == {7, 8}


def test_min_len_and_ngram_blocking_apply_to_greedy_and_beam() -> None:
    table = {BOS_ID: {A: 0.9, B: 0.1}, A: {EOS_ID: 0.6, A: 0.3, B: 0.1}, B: {EOS_ID: 0.6, A: 0.25, B: 0.15}}
    model = BigramModel(table)
    src, lens = torch.ones(1, 4, dtype=torch.long), torch.tensor([4])
    assert greedy_search(model, src, lens)[0].tokens == [A]
    rules = Constraints(min_len=3)
    assert greedy_search(model, src, lens, constraints=rules)[0].tokens == [A, A, A]
    assert beam_search(model, src, lens, beam_size=1, alpha=0.0, constraints=rules)[0][0].tokens == [A, A, A]
    rules = Constraints(min_len=3, no_repeat_ngram=2)
    assert greedy_search(model, src, lens, constraints=rules)[0].tokens == [A, A, B]
    best = beam_search(model, src, lens, beam_size=3, alpha=0.0, constraints=rules)[0][0]
    assert len(best.tokens) >= 3 and all(best.tokens[i : i + 2] != best.tokens[j : j + 2]
                                           for i in range(len(best.tokens) - 1) for j in range(i))


def test_average_length_normalisation() -> None:
    assert length_penalty(4, -1.0) == 4.0


@FEEDING
@pytest.mark.parametrize("order", ["unsorted", "sorted"])
def test_beam_is_batch_invariant_for_batches_of_1_7_64(order: str, feeding: bool) -> None:
    model = random_model(feeding)
    src, lens = random_batch(64)
    if order == "sorted":
        index = lens.argsort(descending=True)
        src, lens = src[index], lens[index]
    full = beam_search(model, src, lens, beam_size=3, n_best=3)
    seven = beam_search(model, src[:7, : int(lens[:7].max())], lens[:7], beam_size=3, n_best=3)
    for i in range(7):
        alone = beam_search(model, src[i : i + 1, : lens[i]], lens[i : i + 1], beam_size=3, n_best=3)[0]
        for other in (seven[i], full[i]):
            assert [h.tokens for h in other] == [h.tokens for h in alone]
            assert [h.score for h in other] == pytest.approx([h.score for h in alone], abs=1e-9)


@FEEDING
def test_attention_rows_follow_the_hypothesis(feeding: bool) -> None:
    model = random_model(feeding)
    src, lens = random_batch(6)
    greedy = greedy_search(model, src, lens, keep_attention=True)
    beam = beam_search(model, src, lens, beam_size=1, alpha=0.0, keep_attention=True)
    for g, b, length in zip(greedy, beam, lens.tolist()):
        assert len(g.attention) == len(g.tokens) and all(len(row) == length for row in g.attention)
        assert all(abs(sum(row) - 1) < 1e-6 for row in g.attention)
        torch.testing.assert_close(torch.tensor(b[0].attention), torch.tensor(g.attention), rtol=0, atol=1e-6)
    wide = beam_search(model, src, lens, beam_size=4, n_best=4, keep_attention=True)
    assert all(len(h.attention) == len(h.tokens) for hyps in wide for h in hyps)


def test_best_reachable_bounds_the_score_at_the_length_limit() -> None:
    assert best_reachable(-10.0, 60, 1.0) == pytest.approx(-10.0 / ((5 + 60) / 6))
    assert best_reachable(-10.0, 60, 0.0) == -10.0  # no penalty: the score can only fall
    assert best_reachable(-10.0, 8, -1.0) == pytest.approx(-10.0 / 8)  # average: divided by the length
    done = [Hypothesis([A], -1.0, -0.5), Hypothesis([B], -2.0, -0.9)]
    assert is_sentence_done(done, -0.6, 1) and not is_sentence_done(done, -0.6, 2)
    assert is_sentence_done(done, -0.9, 2) and not is_sentence_done(done, -0.4, 1)


# Under a length penalty, the empty output (EOS at once, p 0.51) leads when the only
# alive hypothesis is A at its current length, but A EOS scores better once finished:
# log(0.49 * 0.95) / (7/6) = -0.655 against log(0.51) / 1 = -0.673.
LATE = {BOS_ID: {EOS_ID: 0.51, A: 0.49}, A: {EOS_ID: 0.95, B: 0.05}, B: {EOS_ID: 1.0}}


@pytest.mark.parametrize("n_best", [1, 2, 3])
def test_the_1_best_does_not_depend_on_n_best(n_best: int) -> None:
    src, lens = torch.ones(1, 3, dtype=torch.long), torch.tensor([3])
    best = beam_search(BigramModel(LATE), src, lens, beam_size=3, alpha=1.0, n_best=n_best)[0]
    assert best[0].tokens == [A] and best[0].score == pytest.approx(math.log(0.49 * 0.95) / (7 / 6))
    assert len(best) == min(n_best, 3)


def test_the_current_length_rule_stops_where_the_bound_goes_on() -> None:
    src, lens = torch.ones(1, 3, dtype=torch.long), torch.tensor([3])
    [[first]] = beam_search(BigramModel(LATE), src, lens, beam_size=3, alpha=1.0, stopping="current")
    assert first.tokens == [] and first.score == pytest.approx(math.log(0.51))  # as OpenNMT-py stops
    [[best]] = beam_search(BigramModel(LATE), src, lens, beam_size=3, alpha=1.0, stopping="bound")
    assert best.tokens == [A]


class CountingSteps:
    def __init__(self, model: Seq2Seq) -> None:
        self.model, self.rows, self.calls = model, 0, 0

    def encode(self, src: torch.Tensor, lens: torch.Tensor):  # type: ignore[no-untyped-def]
        return self.model.encode(src, lens)

    def step(self, prev: torch.Tensor, state):  # type: ignore[no-untyped-def]
        self.rows, self.calls = self.rows + prev.numel(), self.calls + 1
        return self.model.step(prev, state)


@FEEDING
def test_the_current_length_rule_searches_less_and_stays_batch_invariant(feeding: bool) -> None:
    model = random_model(feeding)
    with torch.no_grad():
        model.generator.bias[EOS_ID] += 1.5  # outputs may end before the length limit
    src, lens = random_batch(12)
    bound, current = CountingSteps(model), CountingSteps(model)
    with torch.inference_mode():
        beam_search(bound, src, lens, beam_size=4, alpha=1.0)
        beam_search(current, src, lens, beam_size=4, alpha=1.0, stopping="current")
        assert current.rows < bound.rows
        batch = beam_search(model, src, lens, beam_size=4, alpha=1.0, n_best=2, stopping="current")
        for i in range(12):
            [alone] = beam_search(model, src[i : i + 1, : lens[i]], lens[i : i + 1], beam_size=4, alpha=1.0, n_best=2,
                                  stopping="current")
            assert [h.tokens for h in alone] == [h.tokens for h in batch[i]]


class FullLogProbs:
    """A model reached through `step` alone: beam search scores every candidate of (rows*K, V)."""

    def __init__(self, model: Seq2Seq) -> None:
        self.model = model

    def encode(self, src: torch.Tensor, lens: torch.Tensor):  # type: ignore[no-untyped-def]
        return self.model.encode(src, lens)

    def step(self, prev: torch.Tensor, state):  # type: ignore[no-untyped-def]
        return self.model.step(prev, state)


@FEEDING
@pytest.mark.parametrize("stopping", ["bound", "current"])
def test_candidates_by_hypothesis_equal_candidates_over_the_whole_vocabulary(feeding: bool, stopping: str) -> None:
    model = random_model(feeding).float()
    src, lens = random_batch(10)
    with torch.inference_mode():
        by_row = beam_search(model, src, lens, beam_size=4, n_best=4, stopping=stopping)
        full = beam_search(FullLogProbs(model), src, lens, beam_size=4, n_best=4, stopping=stopping)
    assert [[h.tokens for h in n] for n in by_row] == [[h.tokens for h in n] for n in full]
    for a, b in zip(by_row, full):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)


@FEEDING
def test_greedy_search_drops_finished_sentences_and_keeps_each_result(feeding: bool) -> None:
    model = random_model(feeding)
    src, lens = random_batch(12)  # sources of 1-11 pieces: the length limits differ
    counting = CountingSteps(model)
    with torch.inference_mode():
        batch = greedy_search(counting, src, lens, keep_attention=True)
        assert counting.rows < 12 * counting.calls  # finished sentences left the batch
        for i in range(12):
            [alone] = greedy_search(model, src[i : i + 1, : lens[i]], lens[i : i + 1], keep_attention=True)
            assert alone.tokens == batch[i].tokens and alone.log_prob == pytest.approx(batch[i].log_prob)
            torch.testing.assert_close(torch.tensor(alone.attention), torch.tensor(batch[i].attention))


@FEEDING
def test_the_1_best_is_the_same_with_any_n_best_on_a_real_model(feeding: bool) -> None:
    model = random_model(feeding)
    src, lens = random_batch(40)
    one = beam_search(model, src, lens, beam_size=4, alpha=1.0, n_best=1)
    for n_best in (2, 4):
        more = beam_search(model, src, lens, beam_size=4, alpha=1.0, n_best=n_best)
        assert [h[0].tokens for h in more] == [h[0].tokens for h in one]
        assert [h[0].score for h in more] == pytest.approx([h[0].score for h in one], abs=1e-9)


def _chars() -> torch.Tensor:
    chars = torch.randint(1, 7, (40,), generator=torch.Generator().manual_seed(5))
    chars[EOS_ID] = 0
    return chars


@pytest.mark.parametrize("beam", [1, 4])
def test_a_character_budget_bounds_every_hypothesis(beam: int) -> None:
    model, chars = random_model(), _chars()
    src, lens = random_batch(12)
    free = beam_search(model, src, lens, beam_size=beam, n_best=beam, ratio=3.0)
    limits = [max(1, sum(int(chars[t]) for t in hyps[0].tokens) // 2) for hyps in free]
    budget = CharBudget(chars, limits)
    bounded = beam_search(model, src, lens, beam_size=beam, n_best=beam, ratio=3.0, budget=budget)
    greedy = greedy_search(model, src, lens, 3.0, budget=budget)
    for limit, hyps, g in zip(limits, bounded, greedy):
        assert all(sum(int(chars[t]) for t in h.tokens) <= limit for h in [*hyps, g])
    assert any(f[0].tokens != b[0].tokens for f, b in zip(free, bounded))


@pytest.mark.parametrize("beam", [1, 4])
def test_an_unknown_piece_costs_its_sentences_longest_unknown_word(beam: int) -> None:
    """Under decoding.replace_unk an unknown piece becomes a source word: each sentence's
    budget counts it at that sentence's cost, alone or in a batch."""
    model, chars = random_model(), _chars()
    chars[UNK_ID] = 3
    with torch.no_grad():
        model.generator.bias[UNK_ID] += 2.5  # a model that writes the unknown piece now and then
    src, lens = random_batch(12)
    free = beam_search(model, src, lens, beam_size=beam, n_best=beam, ratio=3.0)
    assert any(UNK_ID in h.tokens for hyps in free for h in hyps)  # the random model writes it
    unknown = [4 + 3 * (i % 4) for i in range(12)]
    limits = [max(1, sum(unknown[i] if t == UNK_ID else int(chars[t]) for t in hyps[0].tokens) // 2)
              for i, hyps in enumerate(free)]
    budget = CharBudget(chars, limits, unknown)
    bounded = beam_search(model, src, lens, beam_size=beam, n_best=beam, ratio=3.0, budget=budget)
    greedy = greedy_search(model, src, lens, 3.0, budget=budget)
    for i, (hyps, g) in enumerate(zip(bounded, greedy)):
        assert all(sum(unknown[i] if t == UNK_ID else int(chars[t]) for t in h.tokens) <= limits[i]
                   for h in [*hyps, g])
    for i in (0, 5):
        alone = beam_search(model, src[i : i + 1, : lens[i]], lens[i : i + 1], beam_size=beam, n_best=beam, ratio=3.0,
                            budget=CharBudget(chars, limits[i : i + 1], unknown[i : i + 1]))[0]
        assert [h.tokens for h in alone] == [h.tokens for h in bounded[i]]


def test_a_budget_the_search_never_reaches_changes_nothing() -> None:
    model = random_model()
    src, lens = random_batch(12)
    roomy = CharBudget(_chars(), [10_000] * 12)
    # except an empty translation, which a budget refuses while a piece fits
    free, bounded = beam_search(model, src, lens, beam_size=4), beam_search(model, src, lens, beam_size=4, budget=roomy)
    assert all(b[0].tokens == f[0].tokens for f, b in zip(free, bounded) if f[0].tokens)
    assert sum(bool(f[0].tokens) for f in free) >= 10
    free_g, bounded_g = greedy_search(model, src, lens), greedy_search(model, src, lens, budget=roomy)
    assert all(b.tokens == f.tokens for f, b in zip(free_g, bounded_g) if f.tokens)


def test_a_budgeted_sentence_decodes_the_same_alone_and_in_a_batch() -> None:
    model, chars = random_model(), _chars()
    src, lens = random_batch(16)
    limits = [5 + 3 * i for i in range(16)]
    batch = beam_search(model, src, lens, beam_size=4, ratio=3.0, budget=CharBudget(chars, limits))
    for i in (0, 7, 15):
        alone = beam_search(model, src[i : i + 1, : lens[i]], lens[i : i + 1], beam_size=4, ratio=3.0,
                            budget=CharBudget(chars, limits[i : i + 1]))[0]
        assert [h.tokens for h in alone] == [h.tokens for h in batch[i]]


def test_a_budget_gives_no_empty_translation_while_a_piece_fits() -> None:
    model = BigramModel({BOS_ID: {EOS_ID: 0.8, A: 0.2}, A: {EOS_ID: 1.0}})
    chars = torch.tensor([0, 0, 0, 0, 2, 2], dtype=torch.long)
    src, lens = torch.ones(1, 3, dtype=torch.long), torch.tensor([3])
    assert beam_search(model, src, lens, beam_size=2)[0][0].tokens == []  # what the model likes best
    for beam in (1, 2):
        assert beam_search(model, src, lens, beam_size=beam, budget=CharBudget(chars, [5]))[0][0].tokens == [A]
        assert beam_search(model, src, lens, beam_size=beam, budget=CharBudget(chars, [1]))[0][0].tokens == []
    assert greedy_search(model, src, lens, budget=CharBudget(chars, [5]))[0].tokens == [A]


def test_a_target_context_models_budget_counts_from_the_last_separator() -> None:
    sep, c, d, e = SEP_ID, 6, 7, 8  # C: the previous line's translation; then D (2 chars) or E (4 chars)
    model = BigramModel({BOS_ID: {c: 1.0}, c: {sep: 1.0}, sep: {e: 0.7, d: 0.3}, e: {EOS_ID: 1.0},
                         d: {EOS_ID: 1.0}}, vocab=9)
    chars = torch.tensor([0, 0, 0, 0, 0, 0, 3, 2, 4], dtype=torch.long)
    src, lens = torch.ones(1, 3, dtype=torch.long), torch.tensor([3])
    assert greedy_search(model, src, lens)[0].tokens == [c, sep, e]  # unlimited
    for limit, last in ((4, e), (3, d)):
        budget = CharBudget(chars, [limit])
        assert greedy_search(model, src, lens, budget=budget, sep=sep)[0].tokens[1:] == [sep, last]
        for beam in (1, 2):
            assert beam_search(model, src, lens, beam_size=beam, budget=budget, sep=sep)[0][0].tokens[1:] == [sep, last]
    # Counted from the start, as for other models, C and E (7) would not fit a limit of 4.
    assert greedy_search(model, src, lens, budget=CharBudget(chars, [4]))[0].tokens != [c, sep, e]


def test_a_target_context_model_never_ends_before_the_separator() -> None:
    sep, c, d = SEP_ID, 6, 7
    model = BigramModel({BOS_ID: {EOS_ID: 0.6, c: 0.4}, c: {EOS_ID: 0.7, sep: 0.3}, sep: {d: 1.0}, d: {EOS_ID: 1.0}},
                        vocab=8)
    src, lens = torch.ones(1, 3, dtype=torch.long), torch.tensor([3])
    assert greedy_search(model, src, lens)[0].tokens == []
    assert greedy_search(model, src, lens, sep=sep)[0].tokens == [c, sep, d]
    for beam in (1, 3):
        assert beam_search(model, src, lens, beam_size=beam)[0][0].tokens == []
        assert all(sep in h.tokens for h in beam_search(model, src, lens, beam_size=beam, n_best=beam, sep=sep)[0])
