"""Reading one local data file (TSV, CSV, JSONL, JSON, Parquet; optionally gzipped) into
a `datasets` table, and naming its faults by file and line.

A file is taken only when every row holds both sentences as text: a TSV/CSV line with
fewer or more fields than the first line, a JSON(L) row without a sentence or with a
number or object where the sentence should be, or two JSON objects on one line, is an
`InputDataError` naming the line (the row, for .json and .parquet) and the fix. The
checks run once over the file as it is streamed for its UTF-8 check, or over the
loaded columns; the slower line-by-line search for the culprit runs only once a fault
is known to be there.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Iterator

from stages.corpus import tables
from stages.corpus.config import DataConfig
from stages.errors import InputDataError
from stages.files import iter_lines_strict, write_error, write_failure

LOADERS = {".tsv": "csv", ".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}
SEPARATORS = {".tsv": ("\t", "tab"), ".csv": (",", "comma")}


def suffix_of(path: Path) -> str:
    """The file type of `path`, lower case, past any .gz: ".tsv", ".jsonl", ..."""
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return suffixes[-1].lower() if suffixes else ""


def load_file(path: Path, cfg: DataConfig, work: Path) -> Any:
    """`path` as a `datasets` table (its cache under `work`), or None for a file with
    no rows (nothing, or a header line alone). Raises InputDataError for a file of an
    unknown type, missing, not UTF-8, or with a row of the wrong shape."""
    import datasets

    suffix = suffix_of(path)
    if suffix not in LOADERS:
        raise InputDataError(
            f"{path}: unknown file type {suffix or '(none)'!r}; use .tsv, .csv, .jsonl, "
            f".json or .parquet (optionally .gz), or a path with '{{lang}}' for two text files"
        )
    if not path.exists():
        raise InputDataError(f"{path}: file not found (check data.train/dev/test in your config)")
    rows = 0
    if suffix in SEPARATORS:
        rows = _check_fields(path, suffix, len(cfg.columns.split(",")) if cfg.columns else 0)
        if rows == 0:
            return None  # header only, or nothing at all
    elif suffix != ".parquet":
        rows = sum(1 for line in iter_lines_strict(path) if line.strip())
        if rows == 0:
            return None
    kwargs: dict[str, Any] = {}
    if suffix in SEPARATORS:
        kwargs["quoting"] = 3  # csv.QUOTE_NONE: quotes are text in parallel corpora
        kwargs["delimiter"] = SEPARATORS[suffix][0]
        if cfg.columns:
            kwargs["column_names"] = [c.strip() for c in cfg.columns.split(",")]
        kwargs["na_filter"] = False  # an empty cell is an empty sentence, not NaN
    tables.quiet()
    loader_log = datasets.logging.get_logger("datasets")
    level = loader_log.level
    loader_log.setLevel(logging.CRITICAL)  # a bad file is reported below, once, with its line and fix
    try:
        table = datasets.load_dataset(
            LOADERS[suffix], data_files=str(path), split="train", cache_dir=str(work / "load"), **kwargs
        )
    except Exception as exc:  # datasets wraps parser errors in many types
        failed = write_failure(exc)
        if failed is not None:  # the cache it writes, not the input, is at fault
            raise write_error(work / "load", failed) from exc
        raise InputDataError(_load_problem(path, suffix, exc, _sides(cfg))) from exc
    finally:
        loader_log.setLevel(level)
    if suffix == ".jsonl" and len(table) != rows:  # a line held more than one object
        raise InputDataError(_first_bad_json_line(path, ()) or f"{path}: {rows} lines but {len(table)} rows")
    return table


def _sides(cfg: DataConfig) -> tuple[tuple[str, str], ...]:
    """(column, language) of the source and the target sentence."""
    return ((cfg.src_column or cfg.src_lang, cfg.src_lang), (cfg.tgt_column or cfg.tgt_lang, cfg.tgt_lang))


def _check_fields(path: Path, suffix: str, named: int) -> int:
    """The number of data rows of a TSV/CSV file; raises InputDataError at the first
    non-empty line whose field count differs from the first line's (or from the
    `data.columns` count, `named`, for a file without a header line)."""
    sep = SEPARATORS[suffix][0]
    want = named
    rows = 0
    for number, line in enumerate(iter_lines_strict(path), start=1):
        if not line.strip():
            continue
        if "\r" in line:  # the TSV/CSV reader ends a row at a lone CR: the pair would be split in two
            raise InputDataError(f"{path}:{number}: a carriage return (\\r) inside the line, where the reader "
                                 f"would end the row; remove it, e.g. with `tr -d '\\r'`")
        fields = line.count(sep) + 1
        if not want:
            want = fields
            continue
        if fields != want:
            raise InputDataError(_fields_problem(path, suffix, number, want, fields, named > 0))
        rows += 1
    return rows


def _fields_problem(path: Path, suffix: str, line: int, want: int, saw: int, named: bool) -> str:
    sep, word = SEPARATORS[suffix]
    where = "data.columns names" if named else "the first line has"
    if saw > want:
        why = f"a {word} inside a sentence or an extra column"
        hint = "" if suffix == ".tsv" else "; quotes are read as text, so a sentence with a comma needs .tsv or .jsonl"
    else:
        why = f"a missing {word} or sentence"
        hint = ""
    return f"{path}:{line}: {saw} {word}-separated fields where {where} {want}: {why}; fix that line{hint}"


def _load_problem(path: Path, suffix: str, exc: BaseException, sides: tuple[tuple[str, str], ...]) -> str:
    """The message for a file `datasets` could not read: its line where we can find it,
    else the innermost cause."""
    inner: BaseException = exc
    while inner.__cause__ is not None or inner.__context__ is not None:
        inner = inner.__cause__ or inner.__context__  # type: ignore[assignment]
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(inner))
    if fields and suffix in SEPARATORS:
        want, line, saw = map(int, fields.groups())
        return _fields_problem(path, suffix, line, want, saw, False)
    if suffix == ".jsonl":
        bad = _first_bad_json_line(path, sides)
        if bad:
            return bad
    if suffix == ".json":
        bad = _json_document_problem(path, sides)
        if bad:
            return bad
    return f"{path}: could not be read as {suffix} ({inner})"


def _json_document_problem(path: Path, sides: tuple[tuple[str, str], ...]) -> str:
    """`file:line: ...` where a .json file stops being valid JSON, or `file: row N: ...`
    for its first row without both sentences as text, or "" (read only after `datasets`
    failed: its own message gives a byte offset, or a type change in a column)."""
    try:
        rows = json.loads("\n".join(iter_lines_strict(path)))
    except json.JSONDecodeError as exc:
        return (f"{path}:{exc.lineno}: not valid JSON ({exc.msg} at column {exc.colno}); "
                f"a .json file must be one list of objects (or use .jsonl, one object per line)")
    for number, row in enumerate(rows if isinstance(rows, list) else [], start=1):
        if not isinstance(row, dict):
            return f"{path}: row {number}: not a JSON object; a .json file must be one list of objects"
        bad = _row_problem(row, sides)
        if bad:
            return f"{path}: row {number}: {bad}"
    return ""


def _first_bad_json_line(path: Path, sides: tuple[tuple[str, str], ...]) -> str:
    """`file:line: ...` for the first non-empty line of a JSONL file that is not one JSON
    object, or (for each (column, language) of `sides`) lacks that sentence as text;
    "" when every line is good."""
    for number, line in enumerate(iter_lines_strict(path), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            extra = "; two objects on one line" if exc.msg == "Extra data" else ""
            return (f"{path}:{number}: not valid JSON ({exc.msg} at column {exc.colno}{extra}); "
                    f"each line must be one JSON object")
        if not isinstance(row, dict):
            return f"{path}:{number}: not a JSON object; each line must be one JSON object"
        bad = _row_problem(row, sides)
        if bad:
            return f"{path}:{number}: {bad}"
    return ""


def _row_problem(row: dict[str, Any], sides: tuple[tuple[str, str], ...]) -> str:
    """What is wrong with the first of `sides` ((column, language) pairs) whose sentence
    `row` lacks or holds as something other than text; "" when none."""
    for column, lang in sides:
        bad = _value_problem(_sentence_of(row, column, lang), column if column in row else lang)
        if bad:
            return bad
    return ""


def _sentence_of(row: dict[str, Any], column: str, lang: str) -> Any:
    if column in row:
        return row[column]
    nested = row.get("translation")
    return nested.get(lang) if isinstance(nested, dict) else None


def _value_problem(value: Any, name: str) -> str:
    if value is None:
        return f"no {name!r} sentence; every row needs both sentences (an empty one is \"\")"
    if not isinstance(value, str):
        shown = json.dumps(value, ensure_ascii=False)[:60]
        kind = {dict: "an object", list: "an array", bool: "true or false"}.get(type(value), "a number")
        return f"{name!r} is {kind} ({shown}), not text; write the sentence as a JSON string"
    return ""


def check_sentences(table: Any, path: Path, columns: dict[str, tuple[str, str]]) -> None:
    """Raise InputDataError naming the first row of `table` (read from `path`) whose
    sentence in one of `columns` ({side: (column, language)}, the language being the key
    inside a `translation` column) is missing or is not text."""
    faulty = [(column, lang) for column, lang in columns.values() if not _all_text(table, column, lang)]
    if not faulty:
        return
    suffix = suffix_of(path)
    if suffix == ".jsonl":
        bad = _first_bad_json_line(path, tuple(faulty))
        if bad:
            raise InputDataError(bad)
    for number, row in enumerate(_rows(table), start=1):
        bad = _row_problem(row, tuple(faulty))
        if bad:
            raise InputDataError(f"{path}: row {number}: {bad}")


def _all_text(table: Any, column: str, lang: str) -> bool:
    """Whether the column (or the `translation` column's `lang` field) holds strings only."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column in table.column_names:
        values = table.data.column(column)
    else:
        nested = table.data.column("translation")
        if not pa.types.is_struct(nested.type) or nested.type.get_field_index(lang) < 0:
            return False
        values = pc.struct_field(nested, lang)
    return (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)) and values.null_count == 0


def _rows(table: Any) -> Iterator[dict[str, Any]]:
    """The table's rows as Python values (JSON columns decoded), in batches."""
    for start in range(0, len(table), 1000):
        batch = table[start : start + 1000]
        names = list(batch)
        yield from (dict(zip(names, values)) for values in zip(*batch.values()))

