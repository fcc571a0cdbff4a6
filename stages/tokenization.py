"""Stage 2, tokenize: train SentencePiece model(s) and encode every split to ids.

Special ids are fixed for every model: pad 0, unk 1, bos 2, eos 3.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import sentencepiece as spm

from stages import artifacts
from stages.errors import ArtifactError
from stages.files import atomic_path, read_lines_strict

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3


@dataclass(frozen=True, kw_only=True)
class TokenizerConfig:
    model_type: Literal["unigram", "bpe"] = "unigram"
    vocab_size: int = 4000
    joint: bool = True
    character_coverage: float = 1.0


def _train_spm(texts: list[Path], model_path: Path, cfg: TokenizerConfig, seed: int) -> None:
    lines: list[str] = []
    for path in texts:
        lines.extend(line for line in read_lines_strict(path) if line)
    with atomic_path(model_path) as tmp:
        prefix = str(tmp)[: -len(".tmp")] + ".spmtmp"
        spm.set_random_generator_seed(seed)
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(lines),
                model_prefix=prefix,
                model_type=cfg.model_type,
                vocab_size=cfg.vocab_size,
                character_coverage=cfg.character_coverage,
                pad_id=PAD_ID,
                unk_id=UNK_ID,
                bos_id=BOS_ID,
                eos_id=EOS_ID,
                user_defined_symbols=["<sep>"],
                shuffle_input_sentence=False,
                input_sentence_size=0,
                seed_sentencepiece_size=1_000_000,
                minloglevel=2,
                hard_vocab_limit=False,
            )
        except RuntimeError as exc:
            raise ArtifactError(
                f"tokenizer: SentencePiece could not train on {', '.join(map(str, texts))} "
                f"({exc}); if the corpus is small, lower tokenizer.vocab_size (now {cfg.vocab_size})"
            ) from exc
        shutil.move(prefix + ".model", tmp)
        Path(prefix + ".vocab").unlink(missing_ok=True)


def load_processor(path: Path) -> spm.SentencePieceProcessor:
    if not path.exists():
        raise ArtifactError(f"{path}: tokenizer model not found; rerun the tokenize stage")
    return spm.SentencePieceProcessor(model_file=str(path))


def encode_lines(sp: spm.SentencePieceProcessor, lines: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Encode to one flat id array plus offsets (len(lines)+1), no bos/eos."""
    pieces = sp.encode(lines)
    lengths = np.fromiter((len(p) for p in pieces), dtype=np.int64, count=len(pieces))
    offsets = np.zeros(len(pieces) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.fromiter((i for p in pieces for i in p), dtype=np.int32, count=int(offsets[-1]))
    return flat, offsets


def run_tokenize(cfg: TokenizerConfig, prepare_dir: Path, out_dir: Path, seed: int) -> dict[str, Any]:
    out_dir.mkdir(parents=True, exist_ok=True)
    src_train = artifacts.split_text(prepare_dir, "train", artifacts.SRC_SUFFIX)
    tgt_train = artifacts.split_text(prepare_dir, "train", artifacts.TGT_SUFFIX)
    src_model, tgt_model = out_dir / artifacts.SPM_SRC, out_dir / artifacts.SPM_TGT
    if cfg.joint:
        _train_spm([src_train, tgt_train], src_model, cfg, seed)
        with atomic_path(tgt_model) as tmp:
            shutil.copyfile(src_model, tmp)
    else:
        _train_spm([src_train], src_model, cfg, seed)
        _train_spm([tgt_train], tgt_model, cfg, seed)
    sp_src, sp_tgt = load_processor(src_model), load_processor(tgt_model)
    summary: dict[str, Any] = {"src_vocab": sp_src.get_piece_size(), "tgt_vocab": sp_tgt.get_piece_size()}
    for split in artifacts.SPLITS:
        src_text = artifacts.split_text(prepare_dir, split, artifacts.SRC_SUFFIX)
        if not src_text.exists():
            continue
        tgt_text = artifacts.split_text(prepare_dir, split, artifacts.TGT_SUFFIX)
        src_ids, src_off = encode_lines(sp_src, read_lines_strict(src_text))
        tgt_ids, tgt_off = encode_lines(sp_tgt, read_lines_strict(tgt_text))
        target = artifacts.split_ids(out_dir, split)
        with atomic_path(target) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, src_ids=src_ids, src_offsets=src_off, tgt_ids=tgt_ids, tgt_offsets=tgt_off)
        summary[f"{split}_src_tokens"] = int(src_off[-1])
        summary[f"{split}_tgt_tokens"] = int(tgt_off[-1])
    return summary


def load_ids(path: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Load a split's ids as per-sentence arrays (source, target)."""
    if not path.exists():
        raise ArtifactError(f"{path}: token ids not found; rerun the tokenize stage")
    with np.load(path) as data:
        src = np.split(data["src_ids"], data["src_offsets"][1:-1])
        tgt = np.split(data["tgt_ids"], data["tgt_offsets"][1:-1])
    return src, tgt
