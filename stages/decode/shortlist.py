"""A lexical shortlist: per batch, the output layer scores only the target pieces likely
to be needed, as Marian (`--shortlist`, Junczys-Dowmunt et al. 2018) and Sockeye
(`--restrict-lexicon`) do.

For a batch of source sentences the pieces are: the `frequent` most frequent target
pieces, the `per_source` likeliest translations of every source piece in the batch, and
the special tokens; when the model already scores only its training targets' pieces
(`decoding.output_vocab: target`), within those. The translations are learned from the
training pairs' co-occurrences: for source piece s and target piece t, the Dice
coefficient 2 c(s, t) / (c(s) + c(t)) over sentence pairs (each piece counted once per
sentence), which favours pieces that occur together over pieces that are merely common
(common pieces come in through `frequent`). Pairs seen together in only one sentence are
left out as noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from stages.corpus.token_ids import IdColumn
from stages.corpus.vocab import SPECIAL_IDS


@dataclass(frozen=True)
class Shortlist:
    frequent: np.ndarray  # (F,) the most frequent target pieces
    translations: np.ndarray  # (V_src, K) per source piece its K likeliest target pieces, -1 where fewer

    def pieces(self, sources: Sequence[Sequence[int]], allowed: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The sorted target ids to score for a batch of source id sequences (within
        `allowed` when given); the special tokens come first."""
        ids = np.unique(np.concatenate([np.asarray(s, dtype=np.int64) for s in sources] + [np.zeros(0, np.int64)]))
        ids = ids[(ids >= 0) & (ids < len(self.translations))]
        found = self.translations[ids].ravel()
        chosen = np.union1d(self.frequent, found[found >= 0])
        if allowed is not None:
            chosen = np.intersect1d(chosen, allowed.cpu().numpy())
        return torch.from_numpy(np.union1d(np.array(SPECIAL_IDS), chosen).astype(np.int64))


def learn_shortlist(src: IdColumn, tgt: IdColumn, src_vocab: int, tgt_vocab: int, frequent: int,
                    per_source: int, chunk: int = 2000) -> Shortlist:
    """The shortlist of a training corpus (token-id columns of its pairs).

    Counts co-occurrences in an int32 (src_vocab x tgt_vocab) table: 64 MB for a joint
    vocabulary of 4,000 pieces, 256 MB for 8,000, for as long as this runs.
    """
    counts = torch.zeros(src_vocab * tgt_vocab, dtype=torch.int32)
    in_src, in_tgt = np.zeros(src_vocab, np.int64), np.zeros(tgt_vocab, np.int64)
    for start in range(0, len(src), chunk):
        keys = []
        for row in range(start, min(start + chunk, len(src))):
            s, t = np.unique(src[row]), np.unique(tgt[row])
            in_src[s] += 1
            in_tgt[t] += 1
            keys.append((s[:, None].astype(np.int64) * tgt_vocab + t[None, :]).ravel())
        if keys:
            flat = torch.from_numpy(np.concatenate(keys))
            counts.index_add_(0, flat, torch.ones(len(flat), dtype=torch.int32))
    table = counts.view(src_vocab, tgt_vocab)
    ct = torch.from_numpy(in_tgt).float()
    translations = np.full((src_vocab, per_source), -1, dtype=np.int64)
    for start in range(0, src_vocab, 512):  # Dice per block of source pieces
        c = table[start : start + 512].float()
        cs = torch.from_numpy(in_src[start : start + 512]).float().unsqueeze(1)
        dice = torch.where(c >= 2, 2 * c / (cs + ct).clamp_min(1), torch.zeros(()))
        score, best = dice.topk(min(per_source, tgt_vocab), dim=1)
        translations[start : start + len(c)] = torch.where(score > 0, best, -1).numpy()
    order = np.argsort(-in_tgt, kind="stable")
    common = order[: frequent][in_tgt[order[: frequent]] > 0]
    return Shortlist(np.sort(common), translations)
