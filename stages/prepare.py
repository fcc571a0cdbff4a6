"""Stage 1, prepare: load parallel data through Hugging Face `datasets`, clean, split.

Inputs are local TSV/CSV/JSONL/Parquet files (optionally gzipped), two line-aligned
text files (a path holding `{lang}`), or a `datasets` hub name / local dataset folder.
Outputs are line-aligned UTF-8 text files `prepare/{split}.{src,tgt}`.
Only the training split is filtered; dev and test are normalised but kept whole, so
that scores stay comparable.
"""

from __future__ import annotations

import random
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stages import artifacts
from stages.errors import InputDataError
from stages.files import check_utf8, open_bytes, read_lines_strict, write_json_atomic, write_lines_atomic


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


Pairs = tuple[list[str], list[str]]

_LOADERS = {".tsv": "csv", ".csv": "csv", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def _suffix(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return suffixes[-1].lower() if suffixes else ""


def _column_values(table: Any, column: str, lang: str, where: str) -> list[str]:
    names = list(table.column_names)
    if column in names:
        values = table[column]
    elif "translation" in names:
        values = [row.get(lang) if isinstance(row, dict) else None for row in table["translation"]]
    else:
        raise InputDataError(
            f"{where}: no column {column!r} (columns: {', '.join(map(str, names))}); "
            f"set data.src_column / data.tgt_column to the right names"
        )
    return ["" if value is None else str(value) for value in values]


def _load_table(path: Path, cfg: DataConfig) -> Any:
    import datasets

    suffix = _suffix(path)
    if suffix not in _LOADERS:
        raise InputDataError(
            f"{path}: unknown file type {suffix or '(none)'!r}; use .tsv, .csv, .jsonl, "
            f".json or .parquet (optionally .gz), or a path with '{{lang}}' for two text files"
        )
    if not path.exists():
        raise InputDataError(f"{path}: file not found (check data.train/dev/test in your config)")
    if suffix != ".parquet":
        check_utf8(path)
        rows = sum(1 for line in open_bytes(path).splitlines() if line.strip())
        if rows <= (1 if suffix in (".tsv", ".csv") and not cfg.columns else 0):
            return None  # header only, or nothing at all
    kwargs: dict[str, Any] = {}
    if suffix in (".tsv", ".csv"):
        kwargs["quoting"] = 3  # csv.QUOTE_NONE: quotes are text in parallel corpora
        if suffix == ".tsv":
            kwargs["delimiter"] = "\t"
        if cfg.columns:
            kwargs["column_names"] = [c.strip() for c in cfg.columns.split(",")]
        kwargs["na_filter"] = False  # an empty cell is an empty sentence, not NaN
    datasets.disable_progress_bars()
    try:
        return datasets.load_dataset(
            _LOADERS[suffix], data_files=str(path), split="train", keep_in_memory=True, **kwargs
        )
    except Exception as exc:  # datasets wraps parser errors in many types
        raise InputDataError(f"{path}: could not be read as {suffix} ({exc})") from exc


def load_split(spec: str, cfg: DataConfig, resolve: Any) -> Pairs:
    """Load one split as (sources, targets). `resolve` maps a config path to a Path."""
    src_col = cfg.src_column or cfg.src_lang
    tgt_col = cfg.tgt_column or cfg.tgt_lang
    if cfg.hub:
        import datasets

        try:
            table = datasets.load_dataset(cfg.hub, cfg.hub_config or None, split=spec)
        except Exception as exc:
            raise InputDataError(f"data.hub={cfg.hub!r} split {spec!r}: could not load ({exc})") from exc
        where = f"{cfg.hub}[{spec}]"
        return _column_values(table, src_col, cfg.src_lang, where), _column_values(
            table, tgt_col, cfg.tgt_lang, where
        )
    if "{lang}" in spec:
        src_path = resolve(spec.replace("{lang}", cfg.src_lang))
        tgt_path = resolve(spec.replace("{lang}", cfg.tgt_lang))
        src, tgt = read_lines_strict(src_path), read_lines_strict(tgt_path)
        if len(src) != len(tgt):
            raise InputDataError(
                f"{tgt_path} has {len(tgt)} lines but {src_path} has {len(src)}; "
                f"the two files must be line-aligned"
            )
        return src, tgt
    path = resolve(spec)
    table = _load_table(path, cfg)
    if table is None:
        return [], []
    return _column_values(table, src_col, cfg.src_lang, str(path)), _column_values(
        table, tgt_col, cfg.tgt_lang, str(path)
    )


def input_files(cfg: DataConfig, resolve: Any) -> list[Path]:
    """The local files the data section reads (for fingerprinting); none for a hub dataset."""
    if cfg.hub:
        return []
    files = []
    for split in artifacts.SPLITS:
        spec = getattr(cfg, split)
        if spec and "{lang}" in spec:
            files += [resolve(spec.replace("{lang}", lang)) for lang in (cfg.src_lang, cfg.tgt_lang)]
        elif spec:
            files.append(resolve(spec))
    return files


def normalize_text(text: str, form: str) -> str:
    if form != "none":
        text = unicodedata.normalize(form, text)  # type: ignore[arg-type]
    return " ".join(text.split())


def add_context(src: list[str], sep: str, size: int) -> list[str]:
    """Prefix each source line with its `size` predecessors, behind a separator token."""
    if size <= 0:
        return src
    out = []
    for i, line in enumerate(src):
        previous = src[max(0, i - size) : i]
        out.append(" ".join([*previous, sep, line]) if previous else f"{sep} {line}")
    return out


def filter_pairs(
    src: list[str], tgt: list[str], cfg: DataConfig, measured: list[str] | None = None
) -> tuple[Pairs, Counter[str]]:
    """Drop empty, over-long and badly length-mismatched training pairs; count each kind.

    `measured` holds the source sentences the limits apply to when `src` carries extra
    context in front of them (the context is not part of the pair being checked).
    """
    drops: Counter[str] = Counter()
    keep_src, keep_tgt = [], []
    for s, m, t in zip(src, measured or src, tgt):
        ns, nt = len(m.split()), len(t.split())
        if ns == 0 or nt == 0:
            drops["empty"] += 1
        elif ns > cfg.max_words or nt > cfg.max_words:
            drops["too_long"] += 1
        elif max(ns, nt) > 3 and max(ns, nt) / max(1, min(ns, nt)) > cfg.max_ratio:
            drops["length_ratio"] += 1
        else:
            keep_src.append(s)
            keep_tgt.append(t)
    return (keep_src, keep_tgt), drops


CONTEXT_SEP = "<sep>"


def run_prepare(cfg: DataConfig, out_dir: Path, resolve: Any, seed: int) -> dict[str, Any]:
    """Load, clean and write every split; return the stage summary."""
    splits: dict[str, Pairs] = {}
    for split in artifacts.SPLITS:
        spec = getattr(cfg, split)
        if not spec:
            continue
        src, tgt = load_split(spec, cfg, resolve)
        src = [normalize_text(s, cfg.normalize) for s in src]
        tgt = [normalize_text(t, cfg.normalize) for t in tgt]
        splits[split] = (src, tgt)
    if "train" not in splits:
        raise InputDataError("data.train is empty; set it to a file with training pairs")
    raw_train = len(splits["train"][0])
    sentences = splits["train"][0]
    for split, (src, tgt) in splits.items():
        splits[split] = (add_context(src, CONTEXT_SEP, cfg.context), tgt)
    splits["train"], drops = filter_pairs(*splits["train"], cfg, measured=sentences)
    if not splits["train"][0]:
        raise InputDataError(
            f"{cfg.train}: no usable training pairs ({raw_train} read, dropped: {dict(drops)}); "
            f"check data.src_column/tgt_column and the file's contents"
        )
    if "dev" not in splits:
        splits["train"], splits["dev"] = _carve_dev(splits["train"], cfg.dev_size, seed)
    summary: dict[str, Any] = {"read_train": raw_train, "dropped": dict(drops), "pairs": {}}
    for split, (src, tgt) in splits.items():
        write_lines_atomic(artifacts.split_text(out_dir, split, artifacts.SRC_SUFFIX), src)
        write_lines_atomic(artifacts.split_text(out_dir, split, artifacts.TGT_SUFFIX), tgt)
        summary["pairs"][split] = len(src)
    write_json_atomic(out_dir / artifacts.PREPARE_SUMMARY, summary)
    return summary


def _carve_dev(train: Pairs, size: int, seed: int) -> tuple[Pairs, Pairs]:
    if len(train[0]) < 2 * size:
        size = max(1, len(train[0]) // 10)
    order = list(range(len(train[0])))
    random.Random(seed).shuffle(order)
    dev_ids = set(order[:size])
    pick = lambda side, keep: [x for i, x in enumerate(side) if (i in dev_ids) == keep]  # noqa: E731
    return (pick(train[0], False), pick(train[1], False)), (pick(train[0], True), pick(train[1], True))
