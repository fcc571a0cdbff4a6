"""The `decoding` and `scoring` config sections, with their range checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stages.checks import at_least_one, in_range, not_negative


@dataclass(frozen=True, kw_only=True)
class DecodeConfig:
    beam_size: int = 5
    length_penalty: float = 1.0
    length_norm: Literal["gnmt", "average"] = "gnmt"
    min_len: int = 0
    no_repeat_ngram: int = 0
    max_len_ratio: float = 1.5
    max_len_extra: int = 10
    batch_size: int = 32
    max_input_tokens: int = 250
    checkpoint: str = "best"
    device: str = "auto"
    quantize: Literal["none", "int8"] = "none"
    stream_lines: int = 10000
    precision: Literal["fp32", "bf16", "fp16"] = "fp32"
    replace_unk: bool = True  # copy source text the tokenizer does not know into the translation
    output_vocab: Literal["target", "all"] = "target"  # target: score only the pieces seen in training targets
    shortlist: int = 0  # lexical shortlist: per batch, each source piece's N likeliest target pieces; 0: off
    shortlist_frequent: int = 100  # ... and the N most frequent target pieces
    # beam search stops a sentence when no alive hypothesis can beat its n-best: "bound": at
    # any length up to the limit; "current": at its current length (OpenNMT-py's rule)
    stopping: Literal["bound", "current"] = "bound"

    def problems(self) -> list[str]:
        from stages.devices import (  # torch: only when the config is checked
            device_problem,
            pick_device,
        )

        device = device_problem("decoding.device", self.device)
        if device:
            return [device]
        problems = (at_least_one("decoding", self, ("beam_size", "batch_size", "max_input_tokens", "stream_lines"))
                    + not_negative("decoding", self, ("length_penalty", "min_len", "no_repeat_ngram", "max_len_extra",
                                                      "shortlist", "shortlist_frequent"))
                    + in_range("decoding", self, "max_len_ratio", 0.0, False, float("inf"), False, "1.5"))
        precision = precision_problem(self, pick_device(self.device))
        return problems + ([precision] if precision else [])


def precision_problem(cfg: DecodeConfig, device: str) -> str | None:
    """Why `decoding.precision` cannot run on `device`, or None."""
    if cfg.precision == "fp16" and device == "cpu":
        return (f"decoding.precision=fp16 needs a CUDA device (decoding.device={cfg.device} runs on the cpu "
                "here); use decoding.precision=bf16 or fp32 on the CPU")
    return None


# sacreBLEU 2's BLEU tokenizers (`sacrebleu.metrics.bleu._TOKENIZERS`; tests/test_scoring.py
# checks the list against the installed sacreBLEU). ja-mecab and ko-mecab need their
# MeCab packages; spm, flores101 and flores200 download a SentencePiece model once.
BLEU_TOKENIZERS = ("13a", "intl", "zh", "char", "none", "ja-mecab", "ko-mecab", "spm", "flores101", "flores200")


@dataclass(frozen=True, kw_only=True)
class ScoreConfig:
    tokenize: Literal["13a", "intl", "zh", "char", "none", "ja-mecab", "ko-mecab", "spm", "flores101",
                      "flores200"] = "13a"
    lowercase: bool = False

    def problems(self) -> list[str]:
        return []
