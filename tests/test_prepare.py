from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from stages import artifacts
from stages.corpus.config import DataConfig
from stages.corpus.prepare import drop_reason, load_split, normalize_text, run_prepare
from stages.corpus.vocab import with_context
from stages.errors import InputDataError

SRC = ["Hello world.", "In the beginning.", "Jesus wept."]
TGT = ["Hola mundo.", "En el principio.", "Y lloró Jesús."]


def resolve(spec: str) -> Path:
    return Path(spec)


def pairs(spec: str, cfg: DataConfig, work: Path) -> tuple[list[str], list[str]]:
    """A split loaded through `load_split`, as (sources, targets)."""
    table = load_split(spec, cfg, resolve, work / "work")
    return table["src"], table["tgt"]


def test_tsv_with_quotes_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv.gz"
    rows = "en\tes\n" + "".join(f'"{s}\t{t}\n' for s, t in zip(SRC, TGT))
    path.write_bytes(gzip.compress(rows.encode("utf-8")))
    src, tgt = pairs(str(path), DataConfig(), tmp_path)
    assert src == [f'"{s}' for s in SRC] and tgt == TGT


def test_headerless_tsv_with_columns(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_text("".join(f"Gen.1.{i}\t{s}\t{t}\n" for i, (s, t) in enumerate(zip(SRC, TGT))), encoding="utf-8")
    src, tgt = pairs(str(path), DataConfig(columns="ref,en,es"), tmp_path)
    assert (src, tgt) == (SRC, TGT)


def test_csv_jsonl_parquet(tmp_path: Path) -> None:
    import datasets

    table = datasets.Dataset.from_dict({"source": SRC, "target": TGT})
    table.to_csv(str(tmp_path / "c.csv"), index=False)
    table.to_json(str(tmp_path / "c.jsonl"))
    table.to_parquet(str(tmp_path / "c.parquet"))
    cfg = DataConfig(src_column="source", tgt_column="target")
    for name in ("c.csv", "c.jsonl", "c.parquet"):
        assert pairs(str(tmp_path / name), cfg, tmp_path) == (SRC, TGT), name


def test_translation_dict_column(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text("".join(json.dumps({"translation": {"en": s, "es": t}}) + "\n" for s, t in zip(SRC, TGT)), encoding="utf-8")
    assert pairs(str(path), DataConfig(), tmp_path) == (SRC, TGT)


def test_aligned_text_files(tmp_path: Path) -> None:
    (tmp_path / "train.en").write_text("\n".join(SRC) + "\n", encoding="utf-8")
    (tmp_path / "train.es").write_text("\n".join(TGT) + "\n", encoding="utf-8")
    assert pairs(str(tmp_path / "train.{lang}"), DataConfig(), tmp_path) == (SRC, TGT)


def test_misaligned_text_files_name_both(tmp_path: Path) -> None:
    (tmp_path / "train.en").write_text("\n".join(SRC) + "\n", encoding="utf-8")
    (tmp_path / "train.es").write_text("\n".join(TGT[:2]) + "\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"train\.es has 2 lines but .*train\.en has 3"):
        pairs(str(tmp_path / "train.{lang}"), DataConfig(), tmp_path)


def test_invalid_utf8_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "c.tsv"
    path.write_bytes(b"en\tes\nok\tbien\nbad\tcaf\xe9\n")
    with pytest.raises(InputDataError, match=r"c\.tsv:3: invalid UTF-8"):
        pairs(str(path), DataConfig(), tmp_path)
    (tmp_path / "t.en").write_bytes(b"a\nb\xff\n")
    (tmp_path / "t.es").write_bytes(b"a\nb\n")
    with pytest.raises(InputDataError, match=r"t\.en:2: invalid UTF-8"):
        pairs(str(tmp_path / "t.{lang}"), DataConfig(), tmp_path)


def test_missing_file_and_column(tmp_path: Path) -> None:
    with pytest.raises(InputDataError, match=r"nope\.tsv: file not found"):
        pairs(str(tmp_path / "nope.tsv"), DataConfig(), tmp_path)
    path = tmp_path / "c.tsv"
    path.write_text("english\tspanish\na\tb\n", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"no column 'en' \(columns: english, spanish\).*data\.columns"):
        pairs(str(path), DataConfig(), tmp_path)


@pytest.mark.parametrize("name,text,message", [
    ("c.jsonl", '{"en": "Hello", "es": "Hola"}\n{"en": "Bye", "es": \n{"en": "Amen", "es": "Amén"}\n',
     r"c\.jsonl:2: not valid JSON \(Expecting value at column 21\)"),
    ("c.tsv", "en\tes\nHello\tHola\nBye\t now\tAdiós\nAmen\tAmén\n",
     r"c\.tsv:3: 3 tab-separated fields where the first line has 2"),
    ("c.csv", "en,es\nHello,Hola\nBye, now,Adiós\nAmen,Amén\n",
     r"c\.csv:3: 3 comma-separated fields where the first line has 2.*needs \.tsv or \.jsonl"),
    ("c.tsv", "en\tes\nHello\tHola\n\nBye\nAmen\tAmén\n",
     r"c\.tsv:4: 1 tab-separated fields where the first line has 2: a missing tab or sentence"),
    ("c.tsv", "Gen.1\tHello\tHola\nGen.2\tBye\n",
     r"c\.tsv:2: 2 tab-separated fields where data\.columns names 3"),
    ("c.csv", "en,es\nHello,Hola\nBye\n", r"c\.csv:3: 1 comma-separated fields where the first line has 2"),
    ("c.tsv", "en\tes\r\nHello\tHola\r\nBy\re\tAdiós\r\n", r"c\.tsv:3: a carriage return \(\\r\) inside the line"),
    ("c.jsonl", '{"en": "Hello", "es": "Hola"}\n{"en": "Bye", "es": "Adiós"} {"en": "Amen", "es": "Amén"}\n',
     r"c\.jsonl:2: not valid JSON \(Extra data at column 30; two objects on one line\)"),
    ("c.jsonl", '{"en": "Hello", "es": "Hola"}\n\n{"en": "Bye", "es": {"text": "Adiós"}}\n',
     r"c\.jsonl:3: 'es' is an object \(\{\"text\": \"Adiós\"\}\), not text"),
    ("c.jsonl", '{"en": "Hello", "es": "Hola"}\n{"en": 3, "es": "tres"}\n', r"c\.jsonl:2: 'en' is a number \(3\)"),
    ("c.jsonl", '{"en": "Hello", "es": "Hola"}\n{"en": "Bye"}\n', r"c\.jsonl:2: no 'es' sentence"),
    ("c.jsonl", '{"en": "Hello", "es": "Hola"}\n{"en": "Bye", "es": null}\n', r"c\.jsonl:2: no 'es' sentence"),
    ("c.jsonl", '{"translation": {"en": "Hello", "es": "Hola"}}\n{"translation": {"en": "Bye"}}\n',
     r"c\.jsonl:2: no 'es' sentence"),
    ("c.jsonl", '{"en": "Hello", "es": "Hola"}\n["Bye", "Adiós"]\n', r"c\.jsonl:2: not a JSON object"),
    ("c.json", '[\n {"en": "Hello", "es": "Hola"}\n {"en": "Bye", "es": "Adiós"}\n]\n',
     r"c\.json:3: not valid JSON \(Expecting ',' delimiter at column 2\)"),
    ("c.json", '[{"en": "Hello", "es": "Hola"}, {"en": "Bye", "es": 7}]\n', r"c\.json: row 2: 'es' is a number \(7\)"),
    ("c.json", '[{"en": "Hello", "es": "Hola"}, {"en": "Bye", "es": {"t": "Adiós"}}]\n',
     r"c\.json: row 2: 'es' is an object"),
], ids=["jsonl", "tsv", "csv", "tsv-short", "tsv-columns-short", "csv-short", "tsv-stray-cr", "jsonl-two-objects", "jsonl-object",
        "jsonl-number", "jsonl-missing", "jsonl-null", "jsonl-translation-missing", "jsonl-array", "json",
        "json-number", "json-object"])
def test_a_malformed_row_is_named_by_its_line(tmp_path: Path, name: str, text: str, message: str,
                                              capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    with pytest.raises(InputDataError, match=message):
        pairs(str(path), DataConfig(columns="ref,en,es" if "Gen.1" in text else ""), tmp_path)
    out, err = capfd.readouterr()
    assert "Failed to read" not in out + err + caplog.text  # the loader's own report stays quiet: ours says it


def test_unknown_extension(tmp_path: Path) -> None:
    path = tmp_path / "c.xlsx"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(InputDataError, match=r"unknown file type '\.xlsx'"):
        pairs(str(path), DataConfig(), tmp_path)


def test_normalize() -> None:
    assert normalize_text("  fue\u0301   a\u00a0la\tcasa \n", "NFKC") == "fué a la casa"
    assert normalize_text("ﬁn", "none") == "ﬁn"


def test_drop_reasons() -> None:
    cfg = DataConfig(max_words=150, max_ratio=3.0)
    assert drop_reason("a b c", "d e f", cfg) == ""
    assert drop_reason("", "x", cfg) == "empty"
    assert drop_reason("x " * 200, "y", cfg) == "too_long"
    assert drop_reason("one", "uno dos tres cuatro cinco seis siete ocho nueve diez", cfg) == "length_ratio"


def test_context_prefix() -> None:
    assert list(with_context(["a", "b", "c"], 1)) == ["<sep> a", "a <sep> b", "b <sep> c"]
    # A line without a letter is copied by translation and is no context for the next.
    assert list(with_context(["a", "...", "b"], 1)) == ["<sep> a", "a <sep> ...", "a <sep> b"]
    assert list(with_context(["b"], 1, before=["a", "♪"])) == ["a <sep> b"]


def _write_tsv(path: Path, src: list[str], tgt: list[str]) -> Path:
    path.write_text("en\tes\n" + "".join(f"{s}\t{t}\n" for s, t in zip(src, tgt)), encoding="utf-8")
    return path


def test_run_prepare_filters_training_pairs_and_counts_each_kind(tmp_path: Path) -> None:
    src = ["a b c", "", "x " * 200, "one", "a b c d e"]
    tgt = ["d e f", "x", "y", "uno dos tres cuatro cinco seis siete ocho nueve diez", "f g h i j"]
    train = _write_tsv(tmp_path / "train.tsv", src, tgt)
    test = _write_tsv(tmp_path / "test.tsv", src, tgt)
    out = tmp_path / "prepare"
    summary = run_prepare(DataConfig(train=str(train), dev=str(test), test=str(test)), out, resolve, seed=1)
    assert summary["dropped"] == {"empty": 1, "too_long": 1, "length_ratio": 1}
    assert artifacts.split_text(out, "train", "src").read_text(encoding="utf-8") == "a b c\na b c d e\n"
    assert summary["pairs"] == {"train": 2, "dev": 5, "test": 5}  # dev and test are kept whole
    assert not (out / ".work").exists()


def test_context_is_not_counted_against_the_length_limits(tmp_path: Path) -> None:
    src = ["one two three four", "five six seven eight"]
    tgt = ["uno dos tres cuatro", "cinco seis siete ocho"]
    train = _write_tsv(tmp_path / "train.tsv", src, tgt)
    cfg = DataConfig(train=str(train), dev=str(train), test="", max_words=5, max_ratio=1.5, context=1)
    summary = run_prepare(cfg, tmp_path / "prepare", resolve, seed=1)
    assert not summary["dropped"]
    lines = artifacts.split_text(tmp_path / "prepare", "train", "src").read_text(encoding="utf-8").splitlines()
    assert lines == list(with_context(src, 1))


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
    assert pairs("train", cfg, tmp_path) == (SRC, TGT)
    with pytest.raises(InputDataError, match=r"split 'validation': could not load"):
        pairs("validation", cfg, tmp_path)


@pytest.mark.parametrize("halves", [False, True])
def test_parallel_passes_write_what_one_process_writes(tmp_path: Path, halves: bool) -> None:
    """num_proc 2 (datasets' worker processes, each over a contiguous shard) gives the
    same text files and token ids as one process, over a table of several Arrow chunks;
    with context halves and target context too (halves, and dev carved out of them)."""
    from stages.corpus.config import TokenizerConfig
    from stages.corpus.token_ids import load_id_columns
    from stages.corpus.tokenization import run_tokenize

    rows = 4400
    src = [f"verse {i} of {i % 7} the book{'; and the law ' * (i % 3)}" for i in range(rows)]
    tgt = [f"versículo {i} del libro{'; y la ley ' * (i % 3)}" for i in range(rows)]
    train = _write_tsv(tmp_path / "train.tsv", src, tgt)
    cfg = DataConfig(train=str(train), dev="", test="", dev_size=100, context=1, context_halves=halves,
                     target_context=halves)
    outputs = []
    for num_proc in (1, 2):
        prepared, tokenized = tmp_path / f"prepare{num_proc}", tmp_path / f"tokenize{num_proc}"
        summary = run_prepare(cfg, prepared, resolve, seed=1, num_proc=num_proc)
        run_tokenize(TokenizerConfig(vocab_size=100), prepared, tokenized, seed=1, num_proc=num_proc)
        text = [artifacts.split_text(prepared, s, side).read_bytes() for s in ("train", "dev") for side in ("src", "tgt")]
        ids = load_id_columns(artifacts.split_ids(tokenized, "train"))
        outputs.append((text, [[ids[side][i].tolist() for i in range(len(ids[side]))] for side in (0, 1)]))
        assert len(ids[0]._values) > 1  # several chunks: rows are found across chunk boundaries
    assert outputs[0] == outputs[1]
    # With halves: 4,400 pairs and 2,933 halves, less 100 dev pairs and the 69 halves among them.
    assert len(outputs[0][1][0]) == summary["pairs"]["train"] == (rows - 100 if not halves else 7164)
    if halves:  # dev references are plain, as always
        assert "<sep>" not in outputs[0][0][3].decode() and "<sep>" in outputs[0][0][1].decode()


def test_header_only_split_gives_empty_tables_that_load_back(tmp_path: Path) -> None:
    from stages.corpus.config import TokenizerConfig
    from stages.corpus.token_ids import load_id_columns
    from stages.corpus.tokenization import run_tokenize

    src = [f"verse {i} of the book" for i in range(60)]
    train = _write_tsv(tmp_path / "train.tsv", src, [s.upper() for s in src])
    test = _write_tsv(tmp_path / "test.tsv", [], [])
    summary = run_prepare(DataConfig(train=str(train), dev="", test=str(test)), tmp_path / "prepare", resolve, seed=1)
    assert summary["pairs"]["test"] == 0
    assert artifacts.split_text(tmp_path / "prepare", "test", "src").read_text(encoding="utf-8") == ""
    run_tokenize(TokenizerConfig(vocab_size=40), tmp_path / "prepare", tmp_path / "tokenize", seed=1)
    src_ids, tgt_ids = load_id_columns(artifacts.split_ids(tmp_path / "tokenize", "test"))
    assert len(src_ids) == len(tgt_ids) == 0


def test_a_parquet_row_without_a_sentence_is_named_by_its_row(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "c.parquet"
    pq.write_table(pa.table({"en": ["Hello", "Bye", "Amen"], "es": ["Hola", None, "Amén"]}), path)
    with pytest.raises(InputDataError, match=r"c\.parquet: row 2: no 'es' sentence"):
        pairs(str(path), DataConfig(), tmp_path)
    pq.write_table(pa.table({"en": ["Hello", "Bye"], "es": [1, 2]}), path)
    with pytest.raises(InputDataError, match=r"c\.parquet: row 1: 'es' is a number \(1\)"):
        pairs(str(path), DataConfig(), tmp_path)


def test_a_stray_carriage_return_keeps_two_text_files_aligned(tmp_path: Path) -> None:
    (tmp_path / "t.en").write_bytes(b"Hello\rworld.\nJesus wept.\n")
    (tmp_path / "t.es").write_bytes("Hola mundo.\nY lloró Jesús.\n".encode("utf-8"))
    src, tgt = pairs(str(tmp_path / "t.{lang}"), DataConfig(), tmp_path)
    assert len(src) == len(tgt) == 2 and tgt[1] == "Y lloró Jesús." and src[1] == "Jesus wept."
