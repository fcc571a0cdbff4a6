"""Length-bucketed batches of sentence pairs for training: by a token budget or a sentence count."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence, overload

import numpy as np
import torch

from stages.corpus.token_ids import IdColumn, load_id_columns
from stages.corpus.vocab import BOS_ID, EOS_ID, PAD_ID, SEP_ID, UNK_ID


def token_batches(
    src_lens: np.ndarray, tgt_lens: np.ndarray, batch_tokens: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Group pair indices into batches of at most `batch_tokens` padded tokens.

    Pairs are sorted by length (ties broken at random, so batches differ per epoch),
    which keeps padding small; the batch order is then shuffled.
    """
    order = np.lexsort((rng.random(len(src_lens)), src_lens, tgt_lens))
    batches: list[np.ndarray] = []
    start, longest = 0, 0
    for pos, idx in enumerate(order):
        longest_if_added = max(longest, int(tgt_lens[idx]) + 1, int(src_lens[idx]))
        if pos > start and longest_if_added * (pos - start + 1) > batch_tokens:
            batches.append(order[start:pos])
            start, longest_if_added = pos, max(int(tgt_lens[idx]) + 1, int(src_lens[idx]))
        longest = longest_if_added
    if start < len(order):
        batches.append(order[start:])
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


def sentence_batches(
    src_lens: np.ndarray, tgt_lens: np.ndarray, batch_sentences: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Group pair indices into batches of `batch_sentences` pairs (the last may hold fewer).

    Length-bucketed like `token_batches`: pairs sorted by length with random ties, cut
    into consecutive runs, and the batch order shuffled.
    """
    order = np.lexsort((rng.random(len(src_lens)), src_lens, tgt_lens))
    batches = [order[start : start + batch_sentences] for start in range(0, len(order), batch_sentences)]
    rng.shuffle(batches)  # type: ignore[arg-type]
    return batches


@dataclass
class Batch:
    src: torch.Tensor  # (B, S)
    src_lens: torch.Tensor  # (B,)
    tgt_in: torch.Tensor  # (B, T) BOS + target
    tgt_out: torch.Tensor  # (B, T) target + EOS
    n_tokens: int  # real target tokens, EOS included
    # training.context_margin: each source behind another pair's context (B, S'), its
    # lengths (B,), and which rows got one (B,) bool (`swapped_contexts`)
    contrast_src: torch.Tensor | None = None
    contrast_lens: torch.Tensor | None = None
    contrasted: torch.Tensor | None = None

    def to(self, device: str) -> "Batch":
        moved = [None if t is None else t.to(device) for t in (self.contrast_src, self.contrast_lens, self.contrasted)]
        return Batch(self.src.to(device), self.src_lens.to(device), self.tgt_in.to(device),
                     self.tgt_out.to(device), self.n_tokens, *moved)


def padded(length: Any, multiple: int) -> Any:
    """`length` (an int or an array of them) rounded up to a multiple of `multiple`."""
    return -(-length // multiple) * multiple


def collate(src: list[np.ndarray], tgt: list[np.ndarray], multiple: int = 1) -> Batch:
    """Padded tensors of a batch of pairs; both lengths (the target's with its BOS/EOS
    position) rounded up to a multiple of `multiple`."""
    batch = len(src)
    s_len = padded(max(len(s) for s in src), multiple)
    t_len = padded(max(len(t) for t in tgt) + 1, multiple)
    src_t = torch.full((batch, s_len), PAD_ID, dtype=torch.long)
    tgt_in = torch.full((batch, t_len), PAD_ID, dtype=torch.long)
    tgt_out = torch.full((batch, t_len), PAD_ID, dtype=torch.long)
    for i, (s, t) in enumerate(zip(src, tgt)):
        src_t[i, : len(s)] = torch.from_numpy(s.astype(np.int64))
        tt = torch.from_numpy(t.astype(np.int64))
        tgt_in[i, 0] = BOS_ID
        tgt_in[i, 1 : len(t) + 1] = tt
        tgt_out[i, : len(t)] = tt
        tgt_out[i, len(t)] = EOS_ID
    lens = torch.tensor([len(s) for s in src], dtype=torch.long)
    return Batch(src_t, lens, tgt_in, tgt_out, int(sum(len(t) + 1 for t in tgt)))


class EpochBatches(Sequence[Batch]):
    """One epoch's batches, each collated from the id columns only when it is used, so
    an epoch over a large corpus never sits in memory (and under DDP each rank collates
    its own share only). `starts[row]`, when given, is where row's source begins: past
    its context for the pairs whose context is dropped this epoch (`tgt_starts` the
    same for targets with a context, `data.target_context`). With `contrast`, each
    batch also carries its sources behind other pairs' contexts (`swapped_contexts`,
    for `training.context_margin`). With `coword` =
    (p, seed), each piece of the sentence after the context separator becomes UNK_ID with
    probability p, drawn from a generator seeded by (seed, batch index), so a batch is
    the same whenever it is collated (resume)."""

    def __init__(self, src: IdColumn, tgt: IdColumn, groups: list[np.ndarray], multiple: int = 1,
                 starts: np.ndarray | None = None, coword: tuple[float, int] | None = None,
                 tgt_starts: np.ndarray | None = None, contrast: bool = False):
        self.src, self.tgt, self.groups, self.multiple = src, tgt, groups, multiple
        self.starts, self.coword, self.tgt_starts, self.contrast = starts, coword, tgt_starts, contrast

    def __len__(self) -> int:
        return len(self.groups)

    @overload
    def __getitem__(self, index: int) -> Batch: ...

    @overload
    def __getitem__(self, index: slice) -> list[Batch]: ...

    def __getitem__(self, index: int | slice) -> Batch | list[Batch]:
        if isinstance(index, slice):
            return [self._collate(i) for i in range(len(self.groups))[index]]
        return self._collate(index)

    def __iter__(self) -> Iterator[Batch]:
        return (self._collate(i) for i in range(len(self.groups)))

    def _collate(self, index: int) -> Batch:
        rows = self.groups[index]
        src = [self.src[int(i)] for i in rows]
        if self.starts is not None:
            src = [s[int(self.starts[i]) :] for s, i in zip(src, rows)]
        if self.coword is not None:
            src = coword_masked(src, self.coword[0], np.random.default_rng([self.coword[1], index % len(self.groups)]))
        tgt = [self.tgt[int(i)] for i in rows]
        if self.tgt_starts is not None:
            tgt = [t[int(self.tgt_starts[i]) :] for t, i in zip(tgt, rows)]
        batch = collate(src, tgt, self.multiple)
        if self.contrast:
            swapped, contrasted = swapped_contexts(src)
            other = collate(swapped, tgt, self.multiple)
            batch.contrast_src, batch.contrast_lens = other.src, other.src_lens
            batch.contrasted = torch.from_numpy(contrasted)
        return batch


def swapped_contexts(sources: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Each source's sentence behind the context of the next source in the list that has
    a different, non-empty one (in a cycle), and for each whether it got one (bool):
    sources without a context (no separator, or the separator alone after context
    dropout) and batches with fewer than two distinct contexts keep their own. The
    contrast of `training.context_margin`: the same pair behind a context that is not
    its own, as Jean and Cho (2019) draw it from the training set."""
    cuts = [np.flatnonzero(s == SEP_ID) for s in sources]
    contexts = [s[: at[-1]] if len(at) else s[:0] for s, at in zip(sources, cuts)]
    donors = [j for j, c in enumerate(contexts) if len(c)]
    out, swapped = list(sources), np.zeros(len(sources), dtype=bool)
    for k, j in enumerate(donors):
        for step in range(1, len(donors)):
            donor = donors[(k + step) % len(donors)]
            if not np.array_equal(contexts[donor], contexts[j]):
                out[j] = np.concatenate([contexts[donor], sources[j][cuts[j][-1] :]])
                swapped[j] = True
                break
    return out, swapped


def coword_masked(sources: list[np.ndarray], p: float, rng: np.random.Generator) -> list[np.ndarray]:
    """Each source with every piece of its sentence (after the context separator, which
    a context model's sources hold) replaced by UNK_ID with probability p: CoWord dropout
    (Fernandes et al. 2021, "Measuring and Increasing Context Usage in Context-Aware
    Machine Translation"), which makes the model draw on the context it would otherwise
    learn to ignore. Sources without a separator are left as they are."""
    out = []
    for s in sources:
        at = np.flatnonzero(s == SEP_ID)
        if not len(at):
            out.append(s)
            continue
        masked = s.copy()
        sentence = masked[at[0] + 1 :]
        sentence[rng.random(len(sentence)) < p] = UNK_ID
        out.append(masked)
    return out


class TrainData:
    """The pairs training draws batches from: token ids (memory-mapped from tokenize's
    Arrow table, or in memory) and the rows within the length limit."""

    def __init__(self, src: IdColumn | Sequence[np.ndarray], tgt: IdColumn | Sequence[np.ndarray], max_len: int = 0):
        self.src = src if isinstance(src, IdColumn) else IdColumn.from_arrays(src)
        self.tgt = tgt if isinstance(tgt, IdColumn) else IdColumn.from_arrays(tgt)
        src_lens, tgt_lens = self.src.lengths, self.tgt.lengths
        fits = (src_lens > 0) & (tgt_lens > 0)
        if max_len:
            fits &= (src_lens <= max_len) & (tgt_lens <= max_len)
        self.rows = np.flatnonzero(fits)
        self._context_lengths: np.ndarray | None = None
        self._target_context_lengths: np.ndarray | None = None

    @classmethod
    def load(cls, folder: Path, max_len: int) -> "TrainData":
        """A split's ids from `tokenize/ids/{split}/`; pairs with an empty side or a side
        over `max_len` pieces are left out."""
        return cls(*load_id_columns(folder), max_len=max_len)

    def batches(self, batch_tokens: int, rng: np.random.Generator, batch_sentences: int = 0,
                multiple: int = 1, context_dropout: float = 0.0, coword_dropout: float = 0.0,
                contrast: bool = False) -> EpochBatches:
        """One epoch of batches: `batch_sentences` pairs each when above 0, else at most
        `batch_tokens` padded tokens each; lengths padded to a multiple of `multiple`.

        With `context_dropout` p > 0, each pair whose source has a context (pieces before
        `SEP_ID`) loses it for this epoch with probability p, keeping the separator, so
        the source reads as a context model's input without context does
        (`with_context` with size 0); a target with a context (`data.target_context`)
        loses its context with its source. One model then serves with and without context,
        the context dropout of Jean, Bapna and Firat (2019), "Fill in the blanks"
        (arXiv:1910.00294), at the sentence level. With `coword_dropout` p > 0, the
        sentence's own pieces are masked with probability p (`coword_masked`). The draws
        come from `rng`, so an epoch's batches stay a function of the epoch's generator
        state (resume). With `contrast`, each batch also holds its sources behind other
        pairs' contexts (`training.context_margin`, `swapped_contexts`)."""
        src_lens, tgt_lens = self.src.lengths[self.rows], self.tgt.lengths[self.rows]
        starts = tgt_starts = None
        if context_dropout > 0:
            starts = np.zeros(len(self.src), dtype=np.int64)
            drop = rng.random(len(self.rows)) < context_dropout
            starts[self.rows[drop]] = self.context_lengths[self.rows[drop]]
            src_lens = src_lens - starts[self.rows]
            if self.target_context_lengths.any():
                tgt_starts = np.zeros(len(self.tgt), dtype=np.int64)
                tgt_starts[self.rows[drop]] = self.target_context_lengths[self.rows[drop]]
                tgt_lens = tgt_lens - tgt_starts[self.rows]
        if batch_sentences > 0:
            groups = sentence_batches(src_lens, tgt_lens, batch_sentences, rng)
        else:  # lengths as they will be padded (the target's +1 is added by token_batches)
            groups = token_batches(padded(src_lens, multiple), padded(tgt_lens + 1, multiple) - 1, batch_tokens, rng)
        coword = (coword_dropout, int(rng.integers(2**62))) if coword_dropout > 0 else None
        return EpochBatches(self.src, self.tgt, [self.rows[g] for g in groups], multiple, starts, coword, tgt_starts,
                            contrast)

    @property
    def context_lengths(self) -> np.ndarray:
        """Per row of the id columns, the source pieces before the context separator (0
        for a pair without context)."""
        if self._context_lengths is None:
            self._context_lengths = self.src.prefix_lengths(SEP_ID)
        return self._context_lengths

    @property
    def target_context_lengths(self) -> np.ndarray:
        """`context_lengths` for the targets (all 0 unless `data.target_context`)."""
        if self._target_context_lengths is None:
            self._target_context_lengths = self.tgt.prefix_lengths(SEP_ID)
        return self._target_context_lengths
