from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from stages import artifacts
from stages.errors import InputDataError
from stages.prepare import DataConfig, add_context, filter_pairs, load_split, normalize_text, run_prepare

SRC = ["Hello world.", "In the beginning.", "Jesus wept."]
TGT = ["Hola mundo.", "En el principio.", "Y lloró Jesús."]


def resolve(spec: str) -> Path:
    return Path(spec)


def test_tsv_with_quotes_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv.gz"
    rows = "en\tes\n" + "".join(f'"{s}\t{t}\n' for s, t in zip(SRC, TGT))
    path.write_bytes(gzip.compress(rows.encode("utf-8")))
    src, tgt = load_split(str(path), DataConfig(), resolve)
    assert src == [f'"{s}' for s in SRC] and tgt == TGT


def test_headerless_tsv_with_columns(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text("".join(f"Gen.1.{i}\t{s}\t{t}\n" for i, (s, t) in enumerate(zip(SRC, TGT))), encoding="utf-8")
    src, tgt = load_split(str(path), DataConfig(columns="ref,en,es"), resolve)
    assert (src, tgt) == (SRC, TGT)


def test_csv_jsonl_parquet(tmp_path: Path) -> None:
    import datasets

    table = datasets.Dataset.from_dict({"source": SRC, "target": TGT})
    table.to_csv(str(tmp_path / "c.csv"), index=False)
    table.to_json(str(tmp_path / "c.jsonl"))
    table.to_parquet(str(tmp_path / "c.parquet"))
    cfg = DataConfig(src_column="source", tgt_column="target")
    for name in ("c.csv", "c.jsonl", "c.parquet"):
        assert load_split(str(tmp_path / name), cfg, resolve) == (SRC, TGT), name


def test_translation_dict_column(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"translation": {"en": s, "es": t}}) + "\n" for s, t in zip(SRC, TGT)), encoding="utf-8")
    assert load_split(str(path), DataConfig(), resolve) == (SRC, TGT)


def test_aligned_text_files(tmp_path: Path) -> None:
    (tmp_path / "train.en").write_text("\n".join(SRC) + "\n", encoding="utf-8")
    (tmp_path / "train.es").write_text("\n".join(TGT) + "\n", encoding="utf-8")
    assert load_split(str(tmp_path / "train.{lang}"), DataConfig(), resolve) == (SRC, TGT)


def test_misaligned_text_files_name_both(tmp_path: Path) -> None:
    (tmp_path / "train.en").write_text("\n".join(SRC) + "\n", encoding="utf-8")
    (tmp_path / "train.es").write_text("\n".join(TGT[:2]) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"train\.es has 2 lines but .*train\.en has 3"):
        load_split(str(tmp_path / "train.{lang}"), DataConfig(), resolve)


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_bytes(b"en\tes\nok\tbien\nbad\tcaf\xe9\n")
    with pytest.raises(InputDataError, match=r"c\.tsv:3: invalid UTF-8"):
        load_split(str(path), DataConfig(), resolve)
    (tmp_path / "t.en").write_bytes(b"a\nb\xff\n")
    (tmp_path / "t.es").write_bytes(b"a\nb\n")
    with pytest.raises(InputDataError, match=r"t\.en:2: invalid UTF-8"):
        load_split(str(tmp_path / "t.{lang}"), DataConfig(), resolve)


def test_missing_file_and_column(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match=r"nope\.tsv: file not found"):
        load_split(str(tmp_path / "nope.tsv"), DataConfig(), resolve)
    path = tmp_path / "c.tsv"
    path.write_text("english\tspanish\na\tb\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"no column 'en' \(columns: english, spanish\)"):
        load_split(str(path), DataConfig(), resolve)


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "c.xlsx"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"unknown file type '\.xlsx'"):
        load_split(str(path), DataConfig(), resolve)


def test_normalize() -> None:
    assert normalize_text("  fue\u0301   a\u00a0la\tcasa \n", "NFKC") == "fué a la casa"
    assert normalize_text("ﬁn", "none") == "ﬁn"


def test_filter_counts_each_kind() -> None:
    src = ["a b c", "", "x " * 200, "one", "a b c d e"]
    tgt = ["d e f", "x", "y", "uno dos tres cuatro cinco seis siete ocho nueve diez", "f g h i j"]
    (keep_src, keep_tgt), drops = filter_pairs(src, tgt, DataConfig(max_words=150, max_ratio=3.0))
    assert keep_src == ["a b c", "a b c d e"]
    assert drops == {"empty": 1, "too_long": 1, "length_ratio": 1}


def test_context_prefix() -> None:
    assert add_context(["a", "b", "c"], "<sep>", 1) == ["<sep> a", "a <sep> b", "b <sep> c"]


def test_context_is_not_counted_against_the_length_limits() -> None:
    src = ["one two three four", "five six seven eight"]
    tgt = ["uno dos tres cuatro", "cinco seis siete ocho"]
    with_context = add_context(src, "<sep>", 1)
    cfg = DataConfig(max_words=5, max_ratio=1.5)
    (keep_src, _), drops = filter_pairs(with_context, tgt, cfg, measured=src)
    assert keep_src == with_context and not drops
    assert filter_pairs(with_context, tgt, cfg)[1] == {"too_long": 1}


def test_run_prepare_writes_splits_and_summary(tiny_corpus: Path, tmp_path: Path) -> None:
    cfg = DataConfig(train=str(tiny_corpus / "train.tsv"), dev="", test=str(tiny_corpus / "test.tsv"), dev_size=30)
    out = tmp_path / "prepare"
    summary = run_prepare(cfg, out, resolve, seed=1)
    assert summary["pairs"] == {"train": 370, "dev": 30, "test": 20}
    for split in ("train", "dev", "test"):
        src = artifacts.split_text(out, split, "src").read_text(encoding="utf-8").splitlines()
        tgt = artifacts.split_text(out, split, "tgt").read_text(encoding="utf-8").splitlines()
        assert len(src) == len(tgt) == summary["pairs"][split]
    assert json.loads((out / artifacts.PREPARE_SUMMARY).read_text())["read_train"] == 400


def test_empty_corpus_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text("en\tes\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"c\.tsv: no usable training pairs"):
        run_prepare(DataConfig(train=str(path), dev="", test=""), tmp_path / "out", resolve, seed=1)


def test_hub_name_or_local_dataset_folder(tmp_path: Path) -> None:
    folder = tmp_path / "mydataset"
    folder.mkdir()
    rows = "".join(json.dumps({"translation": {"en": s, "es": t}}) + "\n" for s, t in zip(SRC, TGT))
    (folder / "train.jsonl").write_text(rows, encoding="utf-8")
    (folder / "test.jsonl").write_text(rows, encoding="utf-8")
    cfg = DataConfig(hub=str(folder))
    assert load_split("train", cfg, resolve) == (SRC, TGT)
    with pytest.raises(InputDataError, match=r"split 'validation': could not load"):
        load_split("validation", cfg, resolve)
