"""Stage 2, tokenize: train SentencePiece model(s) and encode every split to ids.

SentencePiece learns from the prepared training table, streamed (a random sample of
`tokenizer.max_sentences` sentences for a larger corpus); every split is then encoded
in `num_proc` processes into a memory-mapped Arrow table `tokenize/ids/{split}/` that
training reads. Special ids are fixed for every model: pad 0, unk 1, bos 2, eos 3.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece as spm

from stages import artifacts
from stages.corpus import tables
from stages.corpus.config import TokenizerConfig
from stages.corpus.token_ids import IdColumn
from stages.corpus.vocab import BOS_ID, CONTEXT_SEP, EOS_ID, PAD_ID, UNK_ID
from stages.errors import ArtifactError
from stages.files import atomic_path


def _train_spm(table: Any, columns: tuple[str, ...], model_path: Path, cfg: TokenizerConfig, seed: int) -> None:
    # Above max_sentences, SentencePiece learns from a seeded random sample, drawn here
    # (its own reservoir sampling gave other samples for the same seed), so its memory
    # stops growing with the corpus.
    with atomic_path(model_path) as tmp:
        spm.set_random_generator_seed(seed)
        model = io.BytesIO()  # written from memory: a model_prefix would be recorded in the model
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=tables.column_lines(table, columns, cfg.max_sentences, seed),
                model_writer=model,
                model_type=cfg.model_type,
                vocab_size=cfg.vocab_size,
                character_coverage=cfg.character_coverage,
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                user_defined_symbols=[CONTEXT_SEP],
                input_sentence_size=0,
                shuffle_input_sentence=False,
                seed_sentencepiece_size=1_000_000,
                minloglevel=2,
                hard_vocab_limit=False,
            )
        except RuntimeError as exc:
            raise ArtifactError(
                f"tokenizer: SentencePiece could not train on the {'/'.join(columns)} side of the training pairs "
                f"({exc}); if the corpus is small, lower tokenizer.vocab_size (now {cfg.vocab_size})"
            ) from exc
        tmp.write_bytes(model.getvalue())  # the same bytes for the same data, settings and seed


def load_processor(path: Path) -> spm.SentencePieceProcessor:
    if not path.exists():
        raise ArtifactError(f"{path}: tokenizer model not found; rerun the tokenize stage")
    return spm.SentencePieceProcessor(model_file=str(path))


_PROCESSORS: dict[str, spm.SentencePieceProcessor] = {}


def _encode_batch(batch: dict[str, list[str]], src_model: str, tgt_model: str) -> dict[str, list[list[int]]]:
    """Token ids of a batch of pairs, no bos/eos (runs in `datasets`' worker processes,
    so each loads the models once)."""
    for path in (src_model, tgt_model):
        if path not in _PROCESSORS:
            _PROCESSORS[path] = spm.SentencePieceProcessor(model_file=path)
    return {"src_ids": _PROCESSORS[src_model].encode(batch["src"]), "tgt_ids": _PROCESSORS[tgt_model].encode(batch["tgt"])}


def run_tokenize(
    cfg: TokenizerConfig, prepare_dir: Path, out_dir: Path, seed: int, num_proc: int = 0,
    reuse: Path | None = None,
) -> dict[str, Any]:
    """Train the SentencePiece models (or, with `reuse`, copy those of that checkpoint or
    tokenize folder) and encode every prepared split with them."""
    import datasets

    out_dir.mkdir(parents=True, exist_ok=True)
    _PROCESSORS.clear()  # the models about to be trained may replace ones loaded from these paths
    train = tables.load_table(artifacts.split_table(prepare_dir, "train"), "the prepared training pairs")
    src_model, tgt_model = out_dir / artifacts.SPM_SRC, out_dir / artifacts.SPM_TGT
    if reuse is not None:
        for name in (artifacts.SPM_SRC, artifacts.SPM_TGT):
            if not (reuse / name).is_file():
                raise ArtifactError(f"{reuse / name}: not found; tokenizer.from_run must name a trained run or a "
                                    f"checkpoint folder, which holds {artifacts.SPM_SRC} and {artifacts.SPM_TGT}")
            with atomic_path(out_dir / name) as tmp:
                shutil.copyfile(reuse / name, tmp)
    elif cfg.joint:
        _train_spm(train, ("src", "tgt"), src_model, cfg, seed)
        with atomic_path(tgt_model) as tmp:
            shutil.copyfile(src_model, tmp)
    else:
        _train_spm(train, ("src",), src_model, cfg, seed)
        _train_spm(train, ("tgt",), tgt_model, cfg, seed)
    sp_src, sp_tgt = load_processor(src_model), load_processor(tgt_model)
    summary: dict[str, Any] = {"src_vocab": sp_src.get_piece_size(), "tgt_vocab": sp_tgt.get_piece_size()}
    if reuse is not None:
        summary["tokenizer_from"] = str(reuse)
    ids = datasets.Sequence(datasets.Value("int32"))
    features = datasets.Features({"src_ids": ids, "tgt_ids": ids})
    with tables.scratch(out_dir) as work:
        for split in artifacts.SPLITS:
            folder = artifacts.split_table(prepare_dir, split)
            if not folder.exists():
                continue
            table = tables.load_table(folder, f"the prepared {split} pairs")
            encoded = tables.apply(
                table, _encode_batch, work, f"ids-{split}", num_proc, features=features,
                remove_columns=list(table.column_names),
                fn_kwargs={"src_model": str(src_model), "tgt_model": str(tgt_model)},
            ) if len(table) else datasets.Dataset.from_dict({"src_ids": [], "tgt_ids": []}, features=features)
            saved = tables.save_table(encoded, artifacts.split_ids(out_dir, split))
            for side in ("src", "tgt"):
                summary[f"{split}_{side}_tokens"] = int(np.sum(IdColumn.of(saved, f"{side}_ids").lengths))
    return summary
