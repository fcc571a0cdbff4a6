"""Stage 1, prepare: load parallel data through Hugging Face `datasets`, clean, split.

Inputs are local TSV/CSV/JSONL/Parquet files (optionally gzipped), two line-aligned
text files (a path holding `{lang}`), or a `datasets` hub name / local dataset folder.
Outputs, per split: the cleaned pairs as a memory-mapped Arrow table
`prepare/arrow/{split}/` (what tokenize reads) and as line-aligned UTF-8 text files
`prepare/{split}.{src,tgt}` (what people, decoding and scoring read). Every pass runs
over Arrow files in batches (stages/corpus/tables.py), so memory stays flat as the corpus grows.
Only the training split is filtered; dev and test are normalised but kept whole, so
that scores stay comparable.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Optional

import numpy as np

from stages import artifacts
from stages.corpus import tables
from stages.corpus.config import DataConfig
from stages.corpus.halves import cut_pair
from stages.corpus.loading import check_sentences, load_file
from stages.corpus.vocab import CONTEXT_SEP, join_context, user_text, with_context
from stages.errors import InputDataError
from stages.files import (
    write_json_atomic,
)

log = logging.getLogger(__name__)
_BOOKKEEPING = {"half", "line", "plain"}  # training columns prepare keeps until dev is carved out


def _pairs(table: Any, src_col: str, tgt_col: str, cfg: DataConfig, where: str, work: Path, num_proc: int,
           path: Optional[Path] = None) -> Any:
    """The table's source and target columns (or `translation` dict column) as a pair
    table; for a table read from a local file (`path`), every sentence must be text."""
    names = list(table.column_names)
    for column in (src_col, tgt_col):
        if column not in names and "translation" not in names:
            raise InputDataError(
                f"{where}: no column {column!r} (columns: {', '.join(map(str, names))}); "
                f"set data.src_column / data.tgt_column to the right names, or name the columns of a "
                f"file without a header line with data.columns (e.g. \"{cfg.src_lang},{cfg.tgt_lang}\")"
            )
    columns = {"src": (src_col, cfg.src_lang), "tgt": (tgt_col, cfg.tgt_lang)}
    if path is not None:
        check_sentences(table, path, columns)
    return tables.apply(
        table, _pick_columns, work, f"pairs-{uuid.uuid4().hex}", num_proc,
        fn_kwargs={"columns": columns}, remove_columns=names,
    )


def _pick_columns(batch: dict[str, list[Any]], columns: dict[str, tuple[str, str]]) -> dict[str, list[str]]:
    out = {}
    for side, (column, lang) in columns.items():
        if column in batch:
            values = batch[column]
        else:
            values = [row.get(lang) if isinstance(row, dict) else None for row in batch["translation"]]
        out[side] = ["" if value is None else str(value) for value in values]
    return out


def load_split(spec: str, cfg: DataConfig, resolve: Any, work: Path, num_proc: int = 0) -> Any:
    """Load one split as a pair table (columns src, tgt), memory-mapped from Arrow files
    under `work`. `resolve` maps a config path to a Path."""
    import datasets

    src_col = cfg.src_column or cfg.src_lang
    tgt_col = cfg.tgt_column or cfg.tgt_lang
    if cfg.hub:
        tables.quiet()
        try:
            table = datasets.load_dataset(cfg.hub, cfg.hub_config or None, split=spec)
        except Exception as exc:
            raise InputDataError(f"data.hub={cfg.hub!r} split {spec!r}: could not load ({exc})") from exc
        return _pairs(table, src_col, tgt_col, cfg, f"{cfg.hub}[{spec}]", work, num_proc)
    if "{lang}" in spec:
        src_path = resolve(spec.replace("{lang}", cfg.src_lang))
        tgt_path = resolve(spec.replace("{lang}", cfg.tgt_lang))
        return tables.aligned_text_table(src_path, tgt_path, work)
    path = resolve(spec)
    table = load_file(path, cfg, work)
    if table is None:
        return tables.empty_pairs()
    return _pairs(table, src_col, tgt_col, cfg, str(path), work, num_proc, path)


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
    """Unicode normal form, single spaces, and no reserved symbol typed in the text."""
    if form != "none":
        text = unicodedata.normalize(form, text)  # type: ignore[arg-type]
    return user_text(" ".join(text.split()))


def drop_reason(src: str, tgt: str, cfg: DataConfig) -> str:
    """Why a training pair is dropped ('' when it is kept): empty, too long or badly
    length-mismatched. `src` is the sentence alone, without any context in front."""
    ns, nt = len(src.split()), len(tgt.split())
    if ns == 0 or nt == 0:
        return "empty"
    if ns > cfg.max_words or nt > cfg.max_words:
        return "too_long"
    if max(ns, nt) > 3 and max(ns, nt) / max(1, min(ns, nt)) > cfg.max_ratio:
        return "length_ratio"
    return ""


def _previous_lines(raw: Any, first: int, cfg: DataConfig, side: str = "src") -> list[str]:
    """The last `data.context` non-blank normalised lines of column `side` before row `first`."""
    found: list[str] = []
    end = first
    while end > 0 and len(found) < cfg.context:
        start = max(0, end - 4 * cfg.context)
        window = [normalize_text(s, cfg.normalize) for s in raw[start:end][side]]
        found = [s for s in window if s.strip()] + found
        end = start
    return found[-cfg.context :]


def _clean_batch(
    batch: dict[str, list[str]], indices: list[int], cfg: DataConfig, raw: Any, training: bool
) -> dict[str, list[Any]]:
    """Normalise a batch of pairs, put the previous source lines in front of each source
    sentence (`data.context`), and for training say why a pair is dropped. With
    `data.target_context`, each training target gets its previous target lines in front
    too (the "2+2" concatenation of Tiedemann and Scherrer (2017), "Neural Machine
    Translation with Extended Context"): the model then translates the previous lines
    and the sentence, and the translation is what follows the separator (`after_context`).
    Dev and test targets stay plain: they are the references. With
    `data.context_halves`, each training pair that `cut_pair` cuts in two is followed by
    a pair of its second half, behind its first half as context (`_with_halves`)."""
    src = [normalize_text(s, cfg.normalize) for s in batch["src"]]
    tgt = [normalize_text(t, cfg.normalize) for t in batch["tgt"]]
    out: dict[str, list[Any]] = {"src": src, "tgt": tgt}
    if cfg.context > 0:
        before = _previous_lines(raw, indices[0], cfg)  # batches of an unfiltered table are contiguous rows
        out["src"] = list(with_context(src, cfg.context, CONTEXT_SEP, before))
        if cfg.target_context and training:
            before = _previous_lines(raw, indices[0], cfg, "tgt")
            out["tgt"] = list(with_context(tgt, cfg.context, CONTEXT_SEP, before))
    if training:
        out["drop"] = [drop_reason(s, t, cfg) for s, t in zip(src, tgt)]
        if cfg.target_context:
            out["plain"] = tgt  # the targets without context: a dev split carved out of training takes these
        if cfg.context_halves:
            out = _with_halves(out, src, tgt, indices, cfg)
    return out


def _with_halves(out: dict[str, list[Any]], src: list[str], tgt: list[str], indices: list[int],
                 cfg: DataConfig) -> dict[str, list[Any]]:
    """`out` with the second half of each pair that cuts in two right after the pair (so
    the order does not depend on how the table is split into batches or processes), its
    first half as its context (on the target side too with `data.target_context`),
    marked as a half (`half`) of its line (`line`)."""
    grown: dict[str, list[Any]] = {key: [] for key in (*out, "half", "line")}
    for k, (line, pair) in enumerate(zip(indices, map(cut_pair, src, tgt))):
        for key in out:
            grown[key].append(out[key][k])
        grown["half"].append(False)
        grown["line"].append(line)
        if pair is None:
            continue
        src_first, src_second, tgt_first, tgt_second = pair
        half = {"src": join_context([src_first], src_second), "plain": tgt_second,
                "tgt": join_context([tgt_first], tgt_second) if cfg.target_context else tgt_second,
                "drop": drop_reason(src_second, tgt_second, cfg), "half": True, "line": line}
        for key in grown:
            grown[key].append(half[key])
    return grown


def _clean(table: Any, cfg: DataConfig, split: str, work: Path, num_proc: int) -> tuple[Any, Counter[str], int]:
    """Normalise (and add context to) a split; filter the training split. Returns the
    table, the count of dropped pairs by reason and the number of pairs added as context
    halves (before the filter)."""
    training = split == "train"
    if len(table) == 0:
        return table, Counter(), 0
    cleaned = tables.apply(
        table, _clean_batch, work, f"clean-{split}", num_proc, with_indices=True,
        fn_kwargs={"cfg": cfg, "raw": table, "training": training},
        remove_columns=table.column_names,  # a batch may grow (data.context_halves)
    )
    if not training:
        return cleaned, Counter(), 0
    added = len(cleaned) - len(table)
    reasons = cleaned.data.column("drop").value_counts().to_pylist()
    drops = Counter({r["values"]: r["counts"] for r in reasons if r["values"]})
    if drops:
        cleaned = tables.keep_rows(cleaned, _kept, work, "kept", num_proc, input_columns=["drop"])
    return cleaned.remove_columns(["drop"]), drops, added


def _kept(reasons: list[str]) -> list[bool]:
    return [not reason for reason in reasons]


def run_prepare(cfg: DataConfig, out_dir: Path, resolve: Any, seed: int, num_proc: int = 0) -> dict[str, Any]:
    """Load, clean and write every split; return the stage summary."""
    with tables.scratch(out_dir) as work:
        split_tables: dict[str, Any] = {}
        drops: Counter[str] = Counter()
        raw_train = halves = 0
        for split in artifacts.SPLITS:
            spec = getattr(cfg, split)
            if not spec:
                continue
            raw = load_split(spec, cfg, resolve, work, num_proc)
            raw_train = len(raw) if split == "train" else raw_train
            split_tables[split], split_drops, added = _clean(raw, cfg, split, work, num_proc)
            drops += split_drops
            halves += added
        if "train" not in split_tables:
            raise InputDataError("data.train is empty; set it to a file with training pairs")
        if len(split_tables["train"]) == 0:
            raise InputDataError(
                f"{cfg.train}: no usable training pairs ({raw_train} read, dropped: {dict(drops)}); "
                f"check data.src_column/tgt_column and the file's contents"
            )
        if "dev" not in split_tables:
            split_tables["train"], split_tables["dev"] = _carve_dev(split_tables["train"], cfg.dev_size, seed)
        kept = split_tables["train"]
        split_tables["train"] = kept.remove_columns(sorted(_BOOKKEEPING & set(kept.column_names)))
        summary: dict[str, Any] = {"read_train": raw_train, "dropped": dict(drops), "pairs": {}}
        if cfg.context_halves:
            summary["context_halves"] = halves  # second halves added to the training pairs, before the filter
            if not halves:
                log.warning("data.context_halves: no training pair has a clause mark (. ; : ? ! before a space) "
                            "that both sides share, so no halves were added")
        for split, table in split_tables.items():
            saved = tables.save_table(table, artifacts.split_table(out_dir, split))
            tables.write_column(saved, "src", artifacts.split_text(out_dir, split, artifacts.SRC_SUFFIX))
            tables.write_column(saved, "tgt", artifacts.split_text(out_dir, split, artifacts.TGT_SUFFIX))
            summary["pairs"][split] = len(saved)
    write_json_atomic(out_dir / artifacts.PREPARE_SUMMARY, summary)
    return summary


def _carve_dev(train: Any, size: int, seed: int) -> tuple[Any, Any]:
    """Split `size` random pairs (a tenth, for a small corpus) off the training table.
    With context halves (columns `half` and `line`), dev takes whole pairs only, and a
    dev pair's half leaves training with it. With target context (column `plain`), dev
    takes the plain targets, as its references."""
    halves = "half" in train.column_names
    whole = ~np.asarray(train["half"]) if halves else np.ones(len(train), dtype=bool)
    rows = int(whole.sum())
    if rows < 2 * size:
        size = max(1, rows // 10)
    is_dev = np.zeros(len(train), dtype=bool)
    is_dev[np.flatnonzero(whole)[np.random.default_rng(seed).permutation(rows)[:size]]] = True
    leaves = is_dev
    if halves:
        lines = np.asarray(train["line"])
        leaves = np.isin(lines, lines[is_dev])
    dev = train.select(np.flatnonzero(is_dev))
    if "plain" in dev.column_names:
        dev = dev.remove_columns(["tgt"]).rename_column("plain", "tgt")
    return train.select(np.flatnonzero(~leaves)), dev.remove_columns(sorted(_BOOKKEEPING & set(dev.column_names)))
