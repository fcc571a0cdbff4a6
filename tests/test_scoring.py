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
