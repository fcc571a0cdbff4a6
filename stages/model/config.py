"""The `model` config section: the architecture's keys, their kinds and their checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stages.checks import at_least_one

Cell = Literal["rnn", "gru", "lstm"]
AttentionKind = Literal["none", "bahdanau", "luong_dot", "luong_general", "luong_concat"]
InitKind = Literal["uniform", "xavier"]
RecurrentInit = Literal["same", "orthogonal"]


@dataclass(frozen=True, kw_only=True)
class ModelConfig:
    cell: Cell = "lstm"
    embedding_size: int = 256
    encoder_hidden: int = 256
    encoder_layers: int = 1
    bidirectional: bool = True
    decoder_hidden: int = 512
    decoder_layers: int = 1
    attention: AttentionKind = "luong_general"
    input_feeding: bool = False
    decoder_self_attention: bool = False
    bridge: Literal["learned", "last", "zeros"] = "learned"
    dropout: float = 0.2
    tie_embeddings: bool = False
    share_embeddings: bool = False
    init: InitKind = "uniform"
    init_range: float = 0.1
    recurrent_init: RecurrentInit = "same"

    @property
    def encoder_output(self) -> int:
        """The size of an encoder output vector: encoder_hidden times the directions."""
        return self.encoder_hidden * (2 if self.bidirectional else 1)

    def problems(self) -> list[str]:
        """Problems with ranges and combinations of keys, each message naming the keys involved."""
        problems = []
        enc_out = self.encoder_output
        if self.attention == "luong_dot" and enc_out != self.decoder_hidden:
            problems.append(
                f"model.attention=luong_dot needs the encoder output size ({enc_out} = "
                f"model.encoder_hidden x directions) to equal model.decoder_hidden "
                f"({self.decoder_hidden}); use luong_general or change one of them"
            )
        if self.bridge == "last" and enc_out != self.decoder_hidden:
            problems.append(
                f"model.bridge=last copies the encoder's final state ({enc_out} = model.encoder_hidden x "
                f"directions) into the decoder, so it must equal model.decoder_hidden ({self.decoder_hidden}); "
                f"use bridge: learned or change one of them"
            )
        if self.tie_embeddings and self.embedding_size != self.decoder_hidden:
            problems.append(
                f"model.tie_embeddings=true needs model.embedding_size ({self.embedding_size}) == "
                f"model.decoder_hidden ({self.decoder_hidden})"
            )
        if self.decoder_self_attention and self.input_feeding:
            problems.append(
                "model.decoder_self_attention=true runs without input feeding: set model.input_feeding: false "
                "(or decoder_self_attention: false)"
            )
        problems += at_least_one("model", self, ("embedding_size", "encoder_hidden", "encoder_layers",
                                                 "decoder_hidden", "decoder_layers"))
        if not 0 <= self.dropout < 1:
            problems.append(f"model.dropout={self.dropout}: must be in [0, 1)")
        if self.init == "uniform" and self.init_range <= 0:
            problems.append(f"model.init_range={self.init_range}: must be positive with model.init=uniform")
        return problems
