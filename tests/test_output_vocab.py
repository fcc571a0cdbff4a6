"""decoding.output_vocab: search scores only the target pieces seen in training."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline.api import Translator
from stages import artifacts
from stages.corpus.token_ids import IdColumn, output_pieces
from stages.decode.config import DecodeConfig
from stages.decode.translation import (
    checkpoint_output_pieces,
    joint_output_pieces,
    prepare_for_inference,
    translate_ids_nbest,
)
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq

SOURCES = [[5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 5, 6, 7, 20], [21, 22, 23]]


def tiny_model(input_feeding: bool = False) -> Seq2Seq:
    torch.manual_seed(3)
    cfg = ModelConfig(embedding_size=16, encoder_hidden=16, decoder_hidden=24, dropout=0.0, input_feeding=input_feeding)
    return Seq2Seq(cfg, 30, 40).eval()


def test_output_pieces_are_the_specials_and_every_target_id() -> None:
    column = IdColumn.from_arrays([np.array([9, 5, 9]), np.array([], dtype=np.int32), np.array([30, 5])])
    assert column.vocabulary().tolist() == [5, 9, 30]
    assert output_pieces(column) == [0, 1, 2, 3, 5, 9, 30]
    assert joint_output_pieces([[0, 1, 2, 3, 5], [0, 1, 2, 3, 7]]) == [0, 1, 2, 3, 5, 7]
    assert joint_output_pieces([[0, 1, 2, 3, 5], None]) is None  # a member that may produce anything


@pytest.mark.parametrize("beam", [1, 4])
@pytest.mark.parametrize("input_feeding", [False, True])
def test_all_pieces_allowed_translates_exactly_as_the_whole_vocabulary(beam: int, input_feeding: bool) -> None:
    cfg = DecodeConfig(beam_size=beam, max_len_extra=6)
    model = tiny_model(input_feeding)
    whole = DecodeConfig(beam_size=beam, max_len_extra=6, output_vocab="all")  # the same model, every piece scored
    full = translate_ids_nbest(prepare_for_inference(model, whole, "cpu", list(range(40))), SOURCES, cfg, "cpu", 2)
    model = prepare_for_inference(tiny_model(input_feeding), cfg, "cpu", list(range(40)))
    assert model.output_pieces is not None
    same = translate_ids_nbest(model, SOURCES, cfg, "cpu", 2)
    assert [[h.tokens for h in n] for n in same] == [[h.tokens for h in n] for n in full]
    for a, b in zip(same, full):
        assert [h.score for h in a] == pytest.approx([h.score for h in b], abs=1e-5)


@pytest.mark.parametrize("beam", [1, 4])
def test_a_restricted_search_produces_only_the_output_pieces_as_vocabulary_ids(beam: int) -> None:
    pieces = [0, 1, 2, 3] + list(range(20, 40, 2))
    cfg = DecodeConfig(beam_size=beam, max_len_extra=6)
    model = tiny_model()
    with torch.no_grad():
        model.generator.bias[20:] += 4.0  # an untrained model would mostly say <pad>
    model = prepare_for_inference(model, cfg, "cpu", pieces)
    found = translate_ids_nbest(model, SOURCES, cfg, "cpu", 1)
    produced = {t for n in found for t in n[0].tokens}
    assert produced and produced <= set(pieces) and max(produced) >= 20  # ids, not indices into pieces
    unrestricted = DecodeConfig(beam_size=beam, max_len_extra=6, output_vocab="all")
    model = prepare_for_inference(model, unrestricted, "cpu", pieces)
    assert model.output_pieces is None


def test_a_trained_checkpoint_records_its_pieces_and_translation_uses_them(shared_run: Path) -> None:
    folder = shared_run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST
    meta = json.loads((folder / artifacts.CKPT_META).read_text(encoding="utf-8"))
    pieces = meta["output_pieces"]
    assert pieces[:4] == [0, 1, 2, 3] and pieces == sorted(set(pieces)) and len(pieces) < meta["tgt_vocab"]
    # a checkpoint from before s2s recorded them: read from its run's training ids
    assert checkpoint_output_pieces(folder, {k: v for k, v in meta.items() if k != "output_pieces"}) == pieces
    assert checkpoint_output_pieces(Path("elsewhere/best"), {}) is None
    translator = Translator.load(shared_run)
    assert translator.model.output_pieces is not None and translator.model.output_pieces.tolist() == pieces
    assert Translator.load(shared_run, output_vocab="all").model.output_pieces is None
