"""The one previous-lines rule (`data.context`), as prepare, translate and subtitle apply it."""

from __future__ import annotations

from pathlib import Path

from stages import artifacts
from stages.corpus.config import DataConfig
from stages.corpus.prepare import run_prepare
from stages.corpus.vocab import CONTEXT_SEP, join_context, with_context


def resolve(spec: str) -> Path:
    return Path(spec)


def test_previous_lines_go_in_front_of_each_line() -> None:
    assert list(with_context(["a", "b", "c"], 2)) == ["<sep> a", "a <sep> b", "a b <sep> c"]
    assert join_context(["x", "y"], "z") == f"x y {CONTEXT_SEP} z"


def test_blank_lines_stay_blank_and_are_not_context() -> None:
    assert list(with_context(["a", "", "  ", "b"], 1)) == ["<sep> a", "", "  ", "a <sep> b"]


def test_size_zero_gives_the_separator_alone() -> None:
    assert list(with_context(["a", "b"], 0)) == ["<sep> a", "<sep> b"]


def test_lines_before_a_batch_are_its_context() -> None:
    whole = list(with_context(["a", "", "b", "c", "d"], 2))
    assert list(with_context(["c", "d"], 2, before=["a", "", "b"])) == whole[3:]


def test_prepare_uses_the_same_rule_across_batch_boundaries(tmp_path: Path) -> None:
    # More rows than one `datasets` map batch (1,000), with blank source lines here and
    # there: every row must get the context the rule gives over the whole file.
    src = [("" if i % 7 == 3 else f"line {i}") for i in range(2100)]
    tgt = [f"linea {i}" for i in range(2100)]
    path = tmp_path / "test.tsv"
    path.write_text("en\tes\n" + "".join(f"{s}\t{t}\n" for s, t in zip(src, tgt)), encoding="utf-8")
    cfg = DataConfig(train=str(path), dev=str(path), test=str(path), context=2)
    run_prepare(cfg, tmp_path / "prepare", resolve, seed=1)
    lines = artifacts.split_text(tmp_path / "prepare", "test", "src").read_text(encoding="utf-8").split("\n")[:-1]
    assert lines == list(with_context(src, 2))
