"""The source encoder: embeddings and a stack of (bi)directional recurrent layers."""

from __future__ import annotations

import typing
from typing import TYPE_CHECKING, Callable, Optional

import torch
from torch import nn

from stages.corpus.vocab import PAD_ID
from stages.model.dropout import Dropout

if TYPE_CHECKING:
    from stages.model.config import ModelConfig

RNN_CLASSES: dict[str, Callable[..., nn.RNNBase]] = {"rnn": nn.RNN, "gru": nn.GRU, "lstm": nn.LSTM}


def reverse_padded(x: torch.Tensor, lens: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of x (B, S, ...) within its own length; padding stays put."""
    positions = torch.arange(x.size(1), device=x.device).unsqueeze(0)  # (1, S)
    index = (lens.unsqueeze(1) - 1 - positions).clamp(min=0)
    index = torch.where(positions < lens.unsqueeze(1), index, positions)  # (B, S)
    return x.gather(1, index.view(*index.shape, *([1] * (x.dim() - 2))).expand_as(x))


class Encoder(nn.Module):
    """Embedding + (bi)directional RNN, one fused RNN call per direction and layer.

    The backward direction runs over each sentence reversed within its own length, so
    right padding never reaches a real position: no packed sequences are needed, and
    the fused (oneDNN / cuDNN) kernels run forward and backward.
    """

    def __init__(self, cfg: ModelConfig, vocab_size: int, embed: Optional[nn.Embedding] = None):
        super().__init__()
        self.embed = embed or nn.Embedding(vocab_size, cfg.embedding_size, padding_idx=PAD_ID)
        self.dropout = Dropout(cfg.dropout)
        dirs = 2 if cfg.bidirectional else 1
        self.layers = nn.ModuleList()
        for layer in range(cfg.encoder_layers):
            size_in = cfg.embedding_size if layer == 0 else cfg.encoder_hidden * dirs
            self.layers.append(
                nn.ModuleList(RNN_CLASSES[cfg.cell](size_in, cfg.encoder_hidden, batch_first=True) for _ in range(dirs))
            )

    def forward(self, src: torch.Tensor, src_lens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S), src_lens (B,) -> outputs (B, S, dirs*H), final top-layer state (B, dirs*H)."""
        x = self.dropout(self.embed(src))  # (B, S, E)
        last = (src_lens - 1).clamp(min=0).view(-1, 1, 1)
        finals: list[torch.Tensor] = []
        for depth, directions in enumerate(self.layers):
            if depth:
                x = self.dropout(x)
            outs: list[torch.Tensor] = []
            finals = []
            for d, rnn in enumerate(typing.cast(nn.ModuleList, directions)):
                inp = reverse_padded(x, src_lens) if d else x
                out, _ = rnn(inp)  # (B, S, H)
                finals.append(out.gather(1, last.expand(-1, 1, out.size(2))).squeeze(1))
                outs.append(reverse_padded(out, src_lens) if d else out)
            x = torch.cat(outs, dim=-1) if len(outs) > 1 else outs[0]
        return x, torch.cat(finals, dim=-1)
