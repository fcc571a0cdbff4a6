"""Every cell with every kind of attention learns a 20-pair toy corpus to exact outputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from stages.corpus.batching import collate
from stages.decode.search import greedy_search
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq, sequence_loss


def reversal_corpus() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """20 random sequences of 3-7 tokens from 16 symbols; targets are them reversed."""
    gen = torch.Generator().manual_seed(1)
    src = [torch.randint(4, 20, (int(n),), generator=gen).numpy() for n in torch.randint(3, 8, (20,), generator=gen)]
    return src, [s[::-1].copy() for s in src]


@pytest.mark.parametrize(
    "cell,attention,feeding",
    [(c, a, False) for c, a in itertools.product(("rnn", "gru", "lstm"), ("none", "bahdanau", "luong_general"))]
    + [("lstm", "luong_concat", True), ("gru", "luong_general", True)],
)
def test_overfits_twenty_pairs_to_exact_outputs(cell: str, attention: str, feeding: bool) -> None:
    torch.manual_seed(0)
    src, tgt = reversal_corpus()
    cfg = ModelConfig(cell=cell, attention=attention, input_feeding=feeding,  # type: ignore[arg-type]
                      embedding_size=16, encoder_hidden=16, decoder_hidden=32, dropout=0.0)
    model = Seq2Seq(cfg, 20, 20)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    batch = collate(src, tgt)
    for _ in range(200):  # every combination was exact after at most 150 steps (seeds 0-2)
        loss = sequence_loss(model(batch.src, batch.src_lens, batch.tgt_in), batch.tgt_out, 0.0) / batch.n_tokens
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    hyps = greedy_search(model.eval(), batch.src, batch.src_lens)
    assert [h.tokens for h in hyps] == [t.tolist() for t in tgt]
