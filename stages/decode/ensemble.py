"""Ensemble decoding: several models searched as one, through the search's step interface.

At every step each model scores the next token from its own decoder state, and the
ensemble's log-probabilities are the log of the mean of the models' probabilities,
log((1/M) sum_m p_m(y | ...)), as in Marian's and OpenNMT-py's ensembles (fairseq's
EnsembleModel averages the same way). The search then treats the ensemble as one model;
the attention it reports is the first model's. The models must share both tokenizers:
`check_same_vocabulary` refuses others.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from torch import nn

from stages import artifacts
from stages.errors import ArtifactError
from stages.model.state import DecoderState


@dataclass
class EnsembleState:
    """One decoder state per model, reordered together."""

    states: list[DecoderState]

    @property
    def last_attention(self) -> Optional[torch.Tensor]:
        return self.states[0].last_attention

    def expand_beams(self, k: int) -> "EnsembleState":
        return EnsembleState([s.expand_beams(k) for s in self.states])

    def reorder_hypotheses(self, index: torch.Tensor) -> "EnsembleState":
        return EnsembleState([s.reorder_hypotheses(index) for s in self.states])

    def reorder(self, index: torch.Tensor) -> "EnsembleState":
        return EnsembleState([s.reorder(index) for s in self.states])


class Ensemble(nn.Module):
    """Models that decode together; `encode` and `step` as `Seq2Seq`'s."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        super().__init__()
        if not models:
            raise ValueError("an ensemble needs at least one model")
        self.members = nn.ModuleList(models)
        self.log_count = math.log(len(models))

    @property
    def output_pieces(self) -> Optional[torch.Tensor]:
        """The pieces every member scores (`Seq2Seq.restrict_output`; the same for all)."""
        return getattr(self.members[0], "output_pieces", None)

    @property
    def shortlist(self) -> Any:
        return getattr(self.members[0], "shortlist", None)

    def restrict_output(self, pieces: Optional[torch.Tensor]) -> None:
        for member in self.members:
            member.restrict_output(pieces)  # type: ignore[operator]

    def encode(self, src: torch.Tensor, src_lens: torch.Tensor) -> EnsembleState:
        return EnsembleState([m.encode(src, src_lens) for m in self.members])  # type: ignore[operator]

    def step(self, prev_tokens: torch.Tensor, state: EnsembleState) -> tuple[torch.Tensor, EnsembleState]:
        """(rows, V) log of the mean probability, and the members' new states."""
        outputs = [m.step(prev_tokens, s) for m, s in zip(self.members, state.states)]  # type: ignore[operator]
        if len(outputs) == 1:
            return outputs[0][0], EnsembleState([outputs[0][1]])
        log_probs = torch.stack([lp.float() for lp, _ in outputs]).logsumexp(dim=0) - self.log_count
        return log_probs, EnsembleState([s for _, s in outputs])


def check_same_vocabulary(folders: Sequence[Path], metas: Sequence[dict[str, Any]]) -> None:
    """ArtifactError unless every checkpoint uses the first one's SentencePiece models
    (the same files, by the sha256 each checkpoint records)."""
    first = metas[0]["tokenizer_sha256"]
    for folder, meta in zip(folders[1:], metas[1:]):
        for name, side in ((artifacts.SPM_TGT, "target"), (artifacts.SPM_SRC, "source")):
            if meta["tokenizer_sha256"].get(name) != first.get(name):
                raise ArtifactError(
                    f"{folder / name} differs from {folders[0] / name}: an ensemble's models must share the "
                    f"{side} vocabulary; ensemble runs trained from the same tokenizer (a run with "
                    f"tokenizer.from_run, or training.init_from, reuses another run's)"
                )
