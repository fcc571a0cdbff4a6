"""Stage 5, score: sacreBLEU BLEU and chrF on detokenized text, with signatures."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from stages import artifacts
from stages.decode.config import ScoreConfig
from stages.errors import ConfigError, InputDataError
from stages.files import iter_stream_lines, read_lines_strict, write_json_atomic


def score_lines(hyps: list[str], refs: list[str], cfg: ScoreConfig = ScoreConfig()) -> dict[str, Any]:
    from sacrebleu.metrics import (  # here: sacrebleu (about 6 MB) stays out of translation
        BLEU,
        CHRF,
    )

    try:
        bleu = BLEU(tokenize=cfg.tokenize, lowercase=cfg.lowercase)
        b = bleu.corpus_score(hyps, [refs])
    except Exception as exc:  # a tokenizer whose package or model is missing
        raise ConfigError(f"scoring.tokenize={cfg.tokenize}: sacreBLEU could not use it ({' '.join(str(exc).split())}); install what it "
                          f"names, or use scoring.tokenize=13a (intl, zh, char, none need nothing more)") from exc
    chrf = CHRF(lowercase=cfg.lowercase)  # both metrics case-insensitive when asked (its signature says so)
    c = chrf.corpus_score(hyps, [refs])
    return {
        "bleu": round(b.score, 2),
        "chrf": round(c.score, 2),
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "bleu_detail": str(b),
        "sentences": len(hyps),
    }


def score_files(hyp_path: Path, ref_path: Path, cfg: ScoreConfig = ScoreConfig()) -> dict[str, Any]:
    """BLEU and chrF of a hypothesis file against a line-aligned reference file; either
    may be `-`, standard input (as `s2s translate -i -` reads it)."""
    if str(hyp_path) == str(ref_path) == "-":
        raise InputDataError("-: standard input can be the hypotheses or the references, not both")
    hyps, refs = _lines(hyp_path), _lines(ref_path)
    if len(hyps) != len(refs):
        raise InputDataError(
            f"{hyp_path} has {len(hyps)} lines but {ref_path} has {len(refs)}; "
            f"hypotheses and references must be line-aligned"
        )
    if not refs:
        raise InputDataError(f"{ref_path}: no lines to score")
    return score_lines(hyps, refs, cfg)


def _lines(path: Path) -> list[str]:
    if str(path) == "-":
        return list(iter_stream_lines(sys.stdin.buffer, "<stdin>"))
    return read_lines_strict(path)


def run_score(cfg: ScoreConfig, translate_dir: Path, prepare_dir: Path, out_dir: Path) -> dict[str, Any]:
    scores = score_files(
        translate_dir / artifacts.TEST_HYP, artifacts.split_text(prepare_dir, "test", artifacts.TGT_SUFFIX), cfg
    )
    write_json_atomic(out_dir / artifacts.SCORES, scores)
    return scores
