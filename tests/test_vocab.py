"""The one previous-lines rule (`data.context`), as prepare, translate and subtitle apply it."""

from __future__ import annotations

from pathlib import Path

from stages import artifacts
from stages.corpus.config import DataConfig
from stages.corpus.prepare import run_prepare
from stages.corpus.vocab import (
    CONTEXT_SEP,
    join_context,
    user_text,
    with_context,
    without_context,
)


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


def test_a_typed_separator_is_user_text_not_the_control_symbol() -> None:
    assert user_text("a <sep> b") == "a \u2039sep\u203a b"
    assert list(with_context(["x <sep> y", "z"], 1)) == ["<sep> x \u2039sep\u203a y", "x \u2039sep\u203a y <sep> z"]
    assert list(without_context(["<sep>"])) == ["\u2039sep\u203a"]
    assert join_context(["<sep>"], "<sep>").count(CONTEXT_SEP) == 1


def test_only_the_inserted_separator_becomes_its_id(tokenized_run: Path) -> None:
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(tokenized_run.parent / "runs" / "tiny" / "tokenize" / "spm.src.model"))
    sep = sp.piece_to_id(CONTEXT_SEP)
    assert sp.encode("a <sep> b").count(sep) == 1  # what SentencePiece alone would do with typed text
    (line,) = with_context(["God said <sep> light"], 1)
    assert sp.encode(line).count(sep) == 1  # the one inserted
    (line,) = without_context(["God said <sep> light"])
    assert sep not in sp.encode(line)


def test_prepare_escapes_a_typed_separator_on_both_sides(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_text("en\tes\nsay <sep> now\tdi <sep> ya\nnext one\tla otra\n", encoding="utf-8")
    run_prepare(DataConfig(train=str(path), dev=str(path), test=str(path), context=1), tmp_path / "p", resolve, seed=1)
    src = artifacts.split_text(tmp_path / "p", "test", "src").read_text(encoding="utf-8").splitlines()
    tgt = artifacts.split_text(tmp_path / "p", "test", "tgt").read_text(encoding="utf-8").splitlines()
    assert src == ["<sep> say \u2039sep\u203a now", "say \u2039sep\u203a now <sep> next one"]
    assert tgt == ["di \u2039sep\u203a ya", "la otra"]
