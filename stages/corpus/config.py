"""The `data` and `tokenizer` config sections, with their range checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from stages.checks import at_least_one, in_range, not_negative


@dataclass(frozen=True, kw_only=True)
class DataConfig:
    train: str = "data/bible/train.tsv.gz"
    dev: str = "data/bible/dev.tsv.gz"
    test: str = "data/bible/test.tsv.gz"
    hub: str = ""
    hub_config: str = ""
    columns: str = ""
    src_lang: str = "en"
    tgt_lang: str = "es"
    src_column: str = ""
    tgt_column: str = ""
    dev_size: int = 500
    normalize: Literal["NFC", "NFKC", "none"] = "NFKC"
    max_words: int = 150
    max_ratio: float = 3.0
    context: int = 0
    target_context: bool = False  # the previous lines' targets in front of each training target too (2+2)
    context_halves: bool = False  # also train on each pair's second half behind its first (stages/corpus/halves.py)

    def problems(self) -> list[str]:
        problems = (at_least_one("data", self, ("max_words", "dev_size")) + not_negative("data", self, ("context",))
                    + in_range("data", self, "max_ratio", 1.0, True, float("inf"), False, "3.0"))
        if self.target_context and self.context == 0:
            problems.append("data.target_context=true: needs data.context of 1 or more (the previous lines to put "
                            "in front of each target); set data.context: 1 or data.target_context: false")
        if self.context_halves and self.context == 0:
            problems.append("data.context_halves=true: needs data.context of 1 or more (a half's context is the "
                            "half before it); set data.context: 1 or data.context_halves: false")
        return problems


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    model_type: Literal["unigram", "bpe"] = "unigram"
    vocab_size: int = 4000
    joint: bool = True
    character_coverage: float = 1.0
    max_sentences: int = 200_000
    from_run: str = ""  # a run or checkpoint folder whose SentencePiece models to use instead of training new ones

    def problems(self) -> list[str]:
        problems = in_range("tokenizer", self, "character_coverage", 0.0, False, 1.0, True,
                            "1.0, or 0.9995 for large alphabets")
        if self.vocab_size < 8:
            problems.append(f"tokenizer.vocab_size={self.vocab_size}: must be at least 8")
        if self.max_sentences < 1000:
            problems.append(f"tokenizer.max_sentences={self.max_sentences}: must be at least 1000")
        return problems
