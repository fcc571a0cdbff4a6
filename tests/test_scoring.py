from __future__ import annotations

from pathlib import Path

import pytest

from stages.decode.scoring import score_files, score_lines
from stages.errors import InputDataError

HYPS = ["The cat sat on the mat.", "God created the heavens and the earth."]
REFS = ["The cat sat on a mat.", "In the beginning God created the heavens and the earth."]


def test_pinned_figures() -> None:
    result = score_lines(HYPS, REFS)
    assert result["bleu"] == 64.4  # 93.3/84.6/72.7/66.7, BP 0.819 (checked by hand)
    assert result["chrf"] == 72.38
    assert result["bleu_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:")
    assert result["chrf_signature"].startswith("nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:")


def test_perfect_and_empty() -> None:
    assert score_lines(REFS, REFS)["bleu"] == 100.0
    assert score_lines(["", ""], REFS)["bleu"] == 0.0


def test_files_must_align(tmp_path: Path) -> None:
    (tmp_path / "h").write_text("a\n", encoding="utf-8")
    (tmp_path / "r").write_text("a\nb\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"h has 1 lines but .*r has 2"):
        score_files(tmp_path / "h", tmp_path / "r")


def test_the_tokenizers_a_config_may_name_are_sacrebleus() -> None:
    import typing

    from sacrebleu.metrics.bleu import _TOKENIZERS

    from stages.decode.config import BLEU_TOKENIZERS, ScoreConfig

    assert set(BLEU_TOKENIZERS) <= set(_TOKENIZERS)
    assert set(typing.get_args(typing.get_type_hints(ScoreConfig)["tokenize"])) == set(BLEU_TOKENIZERS)


def test_scoring_two_files_takes_the_scoring_keys_and_refuses_others(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main

    hyp, ref = tmp_path / "h.txt", tmp_path / "r.txt"
    hyp.write_text("\n".join(HYPS).upper() + "\n", encoding="utf-8")
    ref.write_text("\n".join(REFS) + "\n", encoding="utf-8")

    def score(*options: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["score", str(hyp), str(ref), *options])
        return result.exit_code, result.output

    code, out = score("--set", "scoring.lowercase=true")
    assert code == 0 and "case:lc" in out and '"bleu": 64.4' in out
    code, out = score("--set", "scoring.tokenize=char")
    assert code == 0 and "tok:char" in out
    code, out = score("--set", "scoring.tokenize=bogus")
    assert code == 1 and "scoring.tokenize: 'bogus' is not one of 13a" in out
    code, out = score("--set", "decoding.beam_size=3")
    assert code == 1 and "only scoring.* keys apply to scoring two files" in out


def test_lowercase_makes_both_metrics_case_insensitive() -> None:
    from stages.decode.config import ScoreConfig
    from stages.decode.scoring import score_lines
    result = score_lines(["AND GOD SAID UNTO MOSES"], ["And God said unto Moses"], ScoreConfig(lowercase=True))
    assert result["bleu"] == 100.0 and result["chrf"] == 100.0 and "case:lc" in result["chrf_signature"]


def test_score_reads_one_side_from_standard_input(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main
    ref = tmp_path / "ref.txt"
    ref.write_text("Jesus wept.\nAnd God said.\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["score", "-", str(ref)], input="Jesus wept.\nAnd God said.\n")
    assert result.exit_code == 0 and '"bleu": 100.0' in result.output, result.output
    both = CliRunner().invoke(main, ["score", "-", "-"], input="x\n")
    assert both.exit_code == 1 and "not both" in both.output
