"""What the decoder carries between steps, and what the optimised paths read of a model.

`DecoderState` is the state of the one-step interface that search uses
(`Seq2Seq.step(prev_tokens, state) -> (log_probs, state)`, `state.reorder(index)`);
`DecoderParts` is the part of a model that the paths in `stages/model/fast/` read, so
that they depend on this leaf and not on the model class above them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Iterator, Optional, Protocol, Union

import torch
from torch import nn

from stages.model.attention import Attention
from stages.model.config import ModelConfig

Hidden = Union[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]  # (layers, B, H), an (h, c) pair for LSTMs


class DecoderParts(Protocol):
    """The model's config and decoder modules (`Seq2Seq` has them all)."""

    @property
    def cfg(self) -> ModelConfig: ...

    @property
    def training(self) -> bool: ...

    @property
    def tgt_embed(self) -> nn.Embedding: ...

    @property
    def decoder_rnn(self) -> nn.RNNBase: ...

    @property
    def attention(self) -> Attention: ...

    @property
    def combine(self) -> nn.Linear: ...

    @property
    def generator(self) -> nn.Linear: ...

    @property
    def output_pieces(self) -> Optional[torch.Tensor]: ...

    @property
    def int8_search(self) -> bool: ...

    def parameters(self) -> Iterator[nn.Parameter]: ...


@dataclass
class DecoderState:
    """Everything the decoder carries between steps; every tensor is batch-first."""

    hidden: Hidden  # (layers, B*beam, H), a pair for LSTMs
    memory: torch.Tensor  # (B, S, D) encoder outputs; (B, 0, D) once the fast search step holds them in memory_c
    keys: torch.Tensor  # (B, S, A) attention keys, projected once
    mask: torch.Tensor  # (B, S) True on real source tokens
    last_attention: Optional[torch.Tensor] = None  # (B*beam, S)
    feed: Optional[torch.Tensor] = None  # (B*beam, H) previous attentional vector (input feeding only)
    beam: int = 1  # hypothesis rows per sentence sharing one row of memory, keys and mask
    memory_c: Optional[torch.Tensor] = None  # (B, S, H) memory times the combine layer's context half (search)
    history: Optional[torch.Tensor] = None  # (B*beam, t) vocabulary ids of the t target tokens fed so far
    # (model.decoder_self_attention only; None before the first step)
    tables: Any = None  # the fast search step's weight tables (fast.search_step.StepTables), looked up at a search's first step

    def expand_beams(self, k: int) -> "DecoderState":
        """k hypothesis rows per sentence (rows b*k .. b*k+k-1), all sharing the
        sentence's encoder memory, keys and mask, which are not copied."""
        index = torch.arange(self.mask.size(0), device=self.mask.device).repeat_interleave(k)
        return replace(self._rows(index), beam=k)

    def flatten_beams(self) -> "DecoderState":
        """One row of memory per hypothesis row again (a copy), for code that needs it."""
        if self.beam == 1:
            return self
        index = torch.arange(self.mask.size(0), device=self.mask.device).repeat_interleave(self.beam)
        return replace(self._sentences(index), beam=1)

    def reorder_hypotheses(self, index: torch.Tensor) -> "DecoderState":
        """Reorder only what differs between hypotheses of one sentence.

        Beam search reorders within each sentence's beams, whose encoder memory, keys
        and mask are shared (or identical rows), so copying them every step would be
        wasted work.
        """
        return self._rows(index)

    def reorder(self, index: torch.Tensor) -> "DecoderState":
        """Reorder everything: for sentences leaving or entering the batch. With beams,
        `index` takes whole groups of `beam` rows, one sentence each."""
        sentences = index.view(-1, self.beam)[:, 0] // self.beam if self.beam > 1 else index
        return self._sentences(sentences)._rows(index)

    def _rows(self, index: torch.Tensor) -> "DecoderState":
        if isinstance(self.hidden, tuple):
            hidden: Hidden = (self.hidden[0].index_select(1, index), self.hidden[1].index_select(1, index))
        else:
            hidden = self.hidden.index_select(1, index)

        def rows(x: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
            return None if x is None else x.index_select(0, index)

        return replace(self, hidden=hidden, last_attention=rows(self.last_attention), feed=rows(self.feed),
                       history=rows(self.history))

    def _sentences(self, index: torch.Tensor) -> "DecoderState":
        return replace(
            self, memory=self.memory.index_select(0, index), keys=self.keys.index_select(0, index),
            mask=self.mask.index_select(0, index),
            memory_c=None if self.memory_c is None else self.memory_c.index_select(0, index),
        )
