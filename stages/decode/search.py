"""Greedy and batched beam search over the model's one-step interface.

The model is reached only through `model.encode(src, lens)` and
`model.step(prev_tokens, state) -> (log_probs, state)`, with `state.expand_beams(k)`
(k hypothesis rows per sentence), `state.reorder_hypotheses(index)` and `state.reorder(index)`.
A model that also has `step_logits` (the scores before the log-softmax) lets beam search
without rules on the log-probabilities (constraints, character budget, separator) take
each hypothesis's best candidates straight from them (`cpu_kernels.top_log_probs`).
Each sentence's search depends on its own scores only: its own length limit, its own
finished list, so a sentence decodes the same alone or inside any batch.
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch

from stages.corpus.vocab import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from stages.model.fast.cpu_kernels import top_log_probs

CANDIDATES_BY_ROW = True  # False: always score the whole (rows*K, V); bench/bench_candidates.py times both


class SearchState(Protocol):
    def reorder(self, index: torch.Tensor) -> "SearchState": ...

    def reorder_hypotheses(self, index: torch.Tensor) -> "SearchState": ...


class StepModel(Protocol):
    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> Any: ...

    def step(self, prev_tokens: torch.Tensor, state: Any) -> tuple[torch.Tensor, Any]: ...


@dataclass
class Hypothesis:
    tokens: list[int]  # without BOS and EOS
    log_prob: float
    score: float  # log_prob after the length penalty
    attention: list[list[float]] = field(default_factory=list)


def length_penalty(length: int, alpha: float) -> float:
    """GNMT length penalty ((5 + length) / 6) ** alpha; alpha 0 means none.

    A negative alpha asks for the plain average: the log-probability divided by the length.
    """
    if alpha < 0:
        return float(max(length, 1))
    return ((5.0 + length) / 6.0) ** alpha if alpha else 1.0


@dataclass(frozen=True)
class Constraints:
    """Rules every search applies to the next-token log-probabilities."""

    min_len: int = 0  # EOS is forbidden before this many tokens
    no_repeat_ngram: int = 0  # forbid repeating any n-gram of this size (0: off)

    def apply(self, log_probs: torch.Tensor, step: int, histories: list[list[int]]) -> torch.Tensor:
        """log_probs (N, V) for hypotheses with the given token histories (N lists)."""
        if step < self.min_len:
            log_probs = log_probs.clone()
            log_probs[:, EOS_ID] = float("-inf")
        if self.no_repeat_ngram > 0 and step + 1 >= self.no_repeat_ngram:
            banned = [(row, tok) for row, hist in enumerate(histories) for tok in banned_tokens(hist, self.no_repeat_ngram)]
            if banned:
                log_probs = log_probs.clone()
                rows, toks = zip(*banned)
                log_probs[list(rows), list(toks)] = float("-inf")
        return log_probs


@dataclass(frozen=True)
class CharBudget:
    """A length limit in characters per sentence: a hypothesis may not add a piece that
    would take its text past its sentence's limit, so every finished hypothesis fits
    (EOS adds no characters and stays allowed, except as the first piece while some
    piece fits: an empty translation is no shorter translation). The search for a
    shorter translation when a subtitle cue's box is too small for the best one: a
    decoding-time length limit as in Kikuchi et al. (2016), "Controlling Output Length
    in Neural Encoder-Decoders" (their fixRng: the beam discards hypotheses that pass
    the limit), here in characters.

    `piece_chars` (V,) holds the characters each output piece adds (a word-start marker
    counts one, for the space; specials 0); `limits` one limit per sentence of the batch;
    `unknown`, when given, what the unknown piece adds in each sentence (in place of its
    `piece_chars`): `decoding.replace_unk` writes a source word there, so it costs that
    sentence's longest unknown source word.
    A model trained with `data.target_context` first translates the previous lines, then
    writes the separator and the translation: the limit holds for each part on its own
    (the characters since the last separator count), so that whatever the model writes,
    the part kept as the translation fits.
    """

    piece_chars: torch.Tensor
    limits: list[int]
    unknown: list[int] | None = None

    def row_values(self, sentences: list[int], per_sentence: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """(limits, unknown piece costs) of the hypothesis rows of `sentences` (indices
        into `limits`), `per_sentence` rows each: two (N,) tensors."""
        unknown = self.unknown or [int(self.piece_chars[UNK_ID])] * len(self.limits)
        return (torch.tensor([self.limits[b] for b in sentences], device=device).repeat_interleave(per_sentence),
                torch.tensor([unknown[b] for b in sentences], device=device).repeat_interleave(per_sentence))

    def piece_costs(self, pieces: torch.Tensor, unknown: torch.Tensor | None) -> torch.Tensor:
        """The characters `pieces` (N,) or (N, t) add, each row's unknown piece at its cost `unknown` (N,)."""
        chars = self.piece_chars[pieces]
        if self.unknown is None or unknown is None:
            return chars
        return torch.where(pieces == UNK_ID, unknown.view(-1, *([1] * (pieces.dim() - 1))), chars)

    def used(self, history: torch.Tensor, sep: int = -1, unknown: torch.Tensor | None = None) -> torch.Tensor:
        """(N,) the characters that count against the limit for hypotheses `history`
        (N, t) of searched-piece indices: those since the last separator `sep` (the
        search's index of it for a target-context model, -1 for others); `unknown` (N,)
        the rows' unknown piece costs (`row_values`)."""
        chars = self.piece_costs(history, unknown)
        if sep >= 0:
            chars = chars * ((history == sep).flip(1).long().cumsum(1).flip(1) == 0)
        return chars.sum(dim=1)

    def apply(self, log_probs: torch.Tensor, used: torch.Tensor, limits: torch.Tensor,
              unknown: torch.Tensor | None = None) -> torch.Tensor:
        """log_probs (N, V) of hypotheses whose texts hold `used` (N,) characters, under
        `limits` (N,): the pieces that would pass the limit set to -inf (the unknown
        piece at its row's cost `unknown` (N,) when given)."""
        over = used.unsqueeze(1) + self.piece_chars.unsqueeze(0) > limits.unsqueeze(1)
        if unknown is not None and self.unknown is not None:
            over[:, UNK_ID] = used + unknown > limits
        room = (~over & (self.piece_chars > 0)).any(1)  # a piece of text (not EOS, PAD, BOS) still fits
        over[:, EOS_ID] = (used == 0) & room  # no empty translation while something fits
        return log_probs.masked_fill(over, float("-inf"))


NEVER_WRITTEN = (PAD_ID, BOS_ID)  # pieces no translation holds


def never_written(log_probs: torch.Tensor) -> torch.Tensor:
    """log_probs (N, V) with padding and the start token at -inf (not renormalised, as
    the other rules): no translation holds them. A model never learns to write them, but nothing
    forbade them either, and a character budget made them attractive (they add no
    characters): the text then showed `<s>`."""
    return log_probs.index_fill(1, torch.tensor(NEVER_WRITTEN, device=log_probs.device), float("-inf"))


def no_end_before(log_probs: torch.Tensor, seen: torch.Tensor) -> torch.Tensor:
    """log_probs (N, V) with EOS at -inf for the hypotheses that have not yet written the
    context separator (`seen` (N,) False): a `data.target_context` model's output
    before it is the previous lines' translation, not yet this line's."""
    if bool(seen.all()):
        return log_probs
    out = log_probs.clone()
    out[~seen, EOS_ID] = float("-inf")
    return out


def banned_tokens(history: list[int], n: int) -> set[int]:
    """Tokens that would complete an n-gram already present in `history`."""
    if n <= 0 or len(history) < n - 1:
        return set()
    prefix = tuple(history[len(history) - n + 1 :]) if n > 1 else ()
    return {
        history[i + n - 1]
        for i in range(len(history) - n + 1)
        if tuple(history[i : i + n - 1]) == prefix
    }


def max_lengths(src_lens: torch.Tensor, ratio: float, extra: int) -> torch.Tensor:
    """Per-sentence output limit in tokens (EOS included), from the source length."""
    return (src_lens.float() * ratio).long() + extra


def select_alive(
    cand_scores: torch.Tensor, cand_tokens: torch.Tensor, beam_size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick, per sentence, the best `beam_size` candidates that do not end in EOS.

    cand_scores/cand_tokens (B, 2K) are sorted best first. Returns positions (B, K) into
    the 2K candidates and their scores (B, K).
    """
    width = cand_tokens.size(1)
    is_eos = (cand_tokens == EOS_ID).long()
    rank = is_eos * width + torch.arange(width, device=cand_tokens.device)
    positions = rank.argsort(dim=1)[:, :beam_size]
    return positions, cand_scores.gather(1, positions)


def finished_candidates(cand_tokens: torch.Tensor, cand_scores: torch.Tensor, beam_size: int) -> list[tuple[int, int]]:
    """(sentence, position) of EOS candidates among the first `beam_size` of each sentence."""
    top = cand_tokens[:, :beam_size] == EOS_ID
    top &= torch.isfinite(cand_scores[:, :beam_size])
    return [(int(b), int(p)) for b, p in top.nonzero().tolist()]


@torch.inference_mode()
def greedy_search(
    model: StepModel, src: torch.Tensor, src_lens: torch.Tensor, ratio: float = 2.0, extra: int = 10,
    constraints: Constraints = Constraints(),
    keep_attention: bool = False,
    budget: CharBudget | None = None,
    sep: int = -1,
) -> list[Hypothesis]:
    """Pick the most likely token at each step; with `keep_attention`, record each
    output token's attention over the source (rows: output tokens, columns: source);
    with `budget`, only pieces within each sentence's character limit; with `sep` (the
    context separator's index for a `data.target_context` model), no EOS before it."""
    batch = src.size(0)
    src_len = src_lens.tolist()
    attention: list[list[list[float]]] = [[] for _ in range(batch)]
    state = model.encode(src, src_lens)
    limits = max_lengths(src_lens, ratio, extra).tolist()
    prev = torch.full((batch,), BOS_ID, dtype=torch.long, device=src.device)
    tokens: list[list[int]] = [[] for _ in range(batch)]
    log_probs = [0.0] * batch
    done = [False] * batch
    if budget is not None:
        used = torch.zeros(batch, dtype=torch.long, device=src.device)
        char_limits, unknown_cost = budget.row_values(list(range(batch)), 1, src.device)
    seen = torch.full((batch,), sep < 0, dtype=torch.bool, device=src.device)
    active = list(range(batch))  # the sentence of each row: finished sentences leave the batch
    for t in range(max(limits)):
        lp, state = model.step(prev, state)
        lp = never_written(lp)
        lp = constraints.apply(lp, t, [tokens[b] for b in active])
        if budget is not None:
            lp = budget.apply(lp, used, char_limits, unknown_cost)
        if sep >= 0:
            lp = no_end_before(lp, seen)
        best_lp, prev = lp.max(dim=-1)
        if sep >= 0:
            seen = seen | (prev == sep)
        if budget is not None:
            used = torch.where(prev == sep, 0, used + budget.piece_costs(prev, unknown_cost))  # as `CharBudget.used`
        weights = state.last_attention.float().tolist() if keep_attention else None
        keep = []
        for r, (b, tok, score) in enumerate(zip(active, prev.tolist(), best_lp.tolist())):
            log_probs[b] += score
            if tok == EOS_ID:
                done[b] = True
            else:
                tokens[b].append(tok)
                if weights is not None:
                    attention[b].append(weights[r][: src_len[b]])
                done[b] = t + 1 >= limits[b]
            if not done[b]:
                keep.append(r)
        if not keep:
            break
        if len(keep) < len(active):
            rows = torch.tensor(keep, device=src.device)
            state, prev, seen = state.reorder(rows), prev[rows], seen[rows]
            if budget is not None:
                used, char_limits, unknown_cost = used[rows], char_limits[rows], unknown_cost[rows]
            active = [active[r] for r in keep]
    return [Hypothesis(toks, lp_, lp_, att) for toks, lp_, att in zip(tokens, log_probs, attention)]


@torch.inference_mode()
def beam_search(
    model: StepModel,
    src: torch.Tensor,
    src_lens: torch.Tensor,
    beam_size: int = 5,
    alpha: float = 1.0,
    ratio: float = 2.0,
    extra: int = 10,
    n_best: int = 1,
    constraints: Constraints = Constraints(),
    keep_attention: bool = False,
    budget: CharBudget | None = None,
    sep: int = -1,
    stopping: str = "bound",
) -> list[list[Hypothesis]]:
    """Batched beam search; returns the `n_best` hypotheses of each sentence, best first.

    A sentence stops when no alive hypothesis can enter its n-best list: with `stopping`
    "bound", none can at any length up to the limit (`best_reachable`); with "current",
    none does at its current length (`best_at_current`), faster, but the 1-best may then
    change with `n_best`.

    Sentences leave the batch as soon as they are done, so the batch shrinks as it goes.
    With `keep_attention`, each hypothesis carries its attention rows (one per token);
    with `budget`, hypotheses grow only within their sentence's character limit; with
    `sep` (the context separator's index for a `data.target_context` model), no
    hypothesis ends before writing it.
    """
    batch, k, device = src.size(0), beam_size, src.device
    state = model.encode(src, src_lens)
    state = state.expand_beams(k)  # k rows per sentence; the encoder memory is shared, not copied
    limits = max_lengths(src_lens, ratio, extra).tolist()
    scores = torch.zeros(batch, k, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand only the first
    history = torch.empty(batch * k, 0, dtype=torch.long, device=device)
    prev = torch.full((batch * k,), BOS_ID, dtype=torch.long, device=device)
    finished: list[list[Hypothesis]] = [[] for _ in range(batch)]
    active = list(range(batch))  # original sentence index of each row group
    src_len = src_lens.tolist()
    attn = torch.empty(batch * k, 0, src.size(1), device=device) if keep_attention else None  # (rows*K, t, S)
    # No rule rewrites the log-probabilities: each hypothesis's 2K best tokens hold every
    # candidate the sentence's top 2K can take, and the (rows*K, V) log-softmax is never written.
    by_row = (CANDIDATES_BY_ROW and constraints == Constraints() and budget is None and sep < 0
              and hasattr(model, "step_logits") and device.type == "cpu")
    for t in range(max(limits)):
        rows = len(active)
        base = torch.arange(rows, device=device).unsqueeze(1) * k
        if by_row:
            logits, state = model.step_logits(prev, state)  # type: ignore[attr-defined]
            width = min(2 * k + len(NEVER_WRITTEN), logits.size(-1))  # room for the pieces masked next
            top_lp, top_tokens = top_log_probs(logits, width)  # (rows*K, width)
            top_lp = top_lp.masked_fill(torch.isin(top_tokens, torch.tensor(NEVER_WRITTEN, device=device)),
                                        float("-inf"))  # as never_written
            cand = (scores.unsqueeze(-1) + top_lp.view(rows, k, width)).view(rows, -1)
            cand_scores, cand_index = cand.topk(2 * k, dim=1)  # (rows, 2K)
            cand_beams, cand_tokens = cand_index // width, top_tokens.view(rows, -1).gather(1, cand_index)
        else:
            lp, state = model.step(prev, state)  # (rows*K, V)
            lp = never_written(lp)
            if constraints != Constraints():
                lp = constraints.apply(lp, t, history.tolist())
            if budget is not None:
                row_limits, row_unknown = budget.row_values(active, k, device)
                lp = budget.apply(lp, budget.used(history, sep, row_unknown), row_limits, row_unknown)
            if sep >= 0:
                lp = no_end_before(lp, (history == sep).any(dim=1))
            vocab = lp.size(-1)
            cand = (scores.unsqueeze(-1) + lp.view(rows, k, vocab)).view(rows, -1)
            cand_scores, cand_index = cand.topk(2 * k, dim=1)  # (rows, 2K)
            cand_beams, cand_tokens = cand_index // vocab, cand_index % vocab
        done = finished_candidates(cand_tokens, cand_scores, k)
        if done:  # gathered in one call each: a beam of 32 sentences finishes dozens a step
            at_r = torch.tensor([r for r, _ in done], device=device)
            at_p = torch.tensor([p for _, p in done], device=device)
            origin_rows = at_r * k + cand_beams[at_r, at_p]
            for (r, _), origin, tokens, score in zip(done, origin_rows.tolist(), history[origin_rows].tolist(),
                                                     cand_scores[at_r, at_p].tolist()):
                b = active[r]
                _add_finished(finished[b], tokens, score, alpha, True)
                if attn is not None:
                    finished[b][-1].attention = attn[origin, :, : src_len[b]].tolist()
        positions, scores = select_alive(cand_scores, cand_tokens, k)
        origins = (base + cand_beams.gather(1, positions)).view(-1)
        prev = cand_tokens.gather(1, positions).view(-1)
        history = torch.cat([history.index_select(0, origins), prev.unsqueeze(1)], dim=1)
        if attn is not None:
            step_attn = state.last_attention.float().index_select(0, origins).unsqueeze(1)
            attn = torch.cat([attn.index_select(0, origins), step_attn], dim=1)
        state = state.reorder_hypotheses(origins)  # origins never leave their sentence
        keep = _update_finished(finished, active, history, scores, t, limits, alpha, n_best, attn, src_len, stopping)
        if not keep:
            break
        if len(keep) < rows:
            keep_rows = (torch.tensor(keep, device=device).unsqueeze(1) * k + torch.arange(k, device=device)).view(-1)
            state = state.reorder(keep_rows)
            scores, history, prev = scores[keep], history[keep_rows], prev[keep_rows]
            attn = None if attn is None else attn[keep_rows]
            active = [active[r] for r in keep]
    return [sorted(f, key=lambda h: h.score, reverse=True)[:n_best] for f in finished]


def _update_finished(
    finished: list[list[Hypothesis]], active: list[int], history: torch.Tensor, scores: torch.Tensor,
    t: int, limits: list[int], alpha: float, n_best: int,
    attn: torch.Tensor | None = None, src_len: list[int] | None = None, stopping: str = "bound",
) -> list[int]:
    """Close sentences that are out of room or done (by the `stopping` rule, see
    `beam_search`); return the rows still searching."""
    k = scores.size(1)
    best_alive = scores[:, 0].tolist()  # each row's alive scores are sorted best first
    keep = []
    for r, b in enumerate(active):
        if t + 1 >= limits[b]:  # out of room: the alive beams finish as they are
            for j in range(k):
                _add_finished(finished[b], history[r * k + j].tolist(), float(scores[r, j]), alpha, False)
                if attn is not None and src_len is not None:
                    finished[b][-1].attention = attn[r * k + j, :, : src_len[b]].tolist()
        else:
            reach = (best_reachable(best_alive[r], limits[b], alpha) if stopping == "bound"
                     else best_at_current(best_alive[r], t + 1, alpha))
            if not is_sentence_done(finished[b], reach, n_best):
                keep.append(r)
    return keep


def best_reachable(log_prob: float, limit: int, alpha: float) -> float:
    """The best score a hypothesis alive with `log_prob` (<= 0) can still reach within
    `limit` tokens: its log-probability only falls as it grows, and the length penalty
    only grows with length, so no continuation scores above log_prob / penalty(limit)."""
    return log_prob / length_penalty(limit, alpha)


def best_at_current(log_prob: float, length: int, alpha: float) -> float:
    """The score of a hypothesis alive with `log_prob` at its current `length`: the
    stopping rule of OpenNMT-py's beam search (a sentence ends when its best candidate is
    finished) and of Hugging Face's `early_stopping=False`. Not a bound: under a length
    penalty a longer continuation can still score higher."""
    return log_prob / length_penalty(length, alpha)


def is_sentence_done(finished: list[Hypothesis], best_reachable_score: float, n_best: int) -> bool:
    """Stop once the n_best-th best finished hypothesis scores at least what the best
    alive one can still reach (`best_reachable`): then no hypothesis still alive can
    enter the n-best list, so the 1-best (and the whole n-best list) no longer depends
    on how long the search goes on, nor on `n_best`, the batch or its order.

    This is the standard rule of stopping when the best alive hypothesis cannot beat the
    worst kept finished one, with the alive score bounded at the length limit; comparing
    at the alive hypothesis's current length instead is unsound under a length penalty,
    whose normalised score can still rise.
    """
    if len(finished) < n_best:
        return False
    scores = (h.score for h in finished)
    kept = max(scores) if n_best == 1 else heapq.nlargest(n_best, scores)[-1]
    return kept >= best_reachable_score


def _add_finished(out: list[Hypothesis], tokens: list[int], log_prob: float, alpha: float, eos: bool) -> None:
    length = len(tokens) + (1 if eos else 0)
    out.append(Hypothesis(tokens, log_prob, log_prob / length_penalty(length, alpha)))
