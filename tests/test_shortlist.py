"""The lexical shortlist (stages/decode/shortlist.py): learned from co-occurrences, applied per batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from stages.corpus.token_ids import IdColumn
from stages.decode.config import DecodeConfig
from stages.decode.shortlist import learn_shortlist
from stages.decode.translation import (
    prepare_for_inference,
    run_shortlist,
    translate_ids_nbest,
)
from stages.errors import ConfigError
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq


def corpus() -> tuple[IdColumn, IdColumn]:
    """Source piece 10 always comes with target 20, 11 with 21; target 5 is in every sentence."""
    src = [np.array([10, 12]), np.array([10, 13]), np.array([11, 12]), np.array([11, 10]), np.array([14])]
    tgt = [np.array([20, 5]), np.array([20, 5, 5]), np.array([21, 5]), np.array([21, 20, 5]), np.array([5, 22])]
    return IdColumn.from_arrays(src), IdColumn.from_arrays(tgt)


def test_translations_are_ranked_by_dice_and_rare_pairs_left_out() -> None:
    lexical = learn_shortlist(*corpus(), src_vocab=16, tgt_vocab=24, frequent=1, per_source=2)
    assert lexical.frequent.tolist() == [5]
    assert lexical.translations[10].tolist() == [20, 5]  # Dice 2*3/(3+3) = 1, then 2*3/(3+5)
    assert lexical.translations[11, 0] == 21
    assert lexical.translations[14].tolist() == [-1, -1]  # 14 and 22 meet once: noise
    assert lexical.translations[15].tolist() == [-1, -1]  # never seen
    pieces = lexical.pieces([[10, 14], [3]])
    assert pieces.tolist() == [0, 1, 2, 3, 5, 20]
    assert lexical.pieces([[11]], allowed=torch.tensor([0, 1, 2, 3, 21])).tolist() == [0, 1, 2, 3, 21]


def test_search_with_a_shortlist_produces_only_the_batchs_pieces() -> None:
    torch.manual_seed(1)
    model = Seq2Seq(ModelConfig(embedding_size=16, encoder_hidden=16, decoder_hidden=24, dropout=0.0), 16, 24).eval()
    with torch.no_grad():
        model.generator.bias[4:] += 3.0  # an untrained model would mostly say <pad>
    lexical = learn_shortlist(*corpus(), src_vocab=16, tgt_vocab=24, frequent=1, per_source=2)
    cfg = DecodeConfig(beam_size=3, shortlist=2, shortlist_frequent=1, max_len_extra=5)
    ready = prepare_for_inference(model, cfg, "cpu", list(range(24)), lexical)
    sources = [[10, 12], [11, 13, 12], [14]]
    found = translate_ids_nbest(ready, sources, cfg, "cpu", 1)  # one batch: one shortlist for all three
    allowed = set(lexical.pieces(sources).tolist())
    produced = {t for n in found for t in n[0].tokens}
    assert produced and produced <= allowed and produced - {0, 1, 2, 3}
    assert ready.output_pieces is not None and len(ready.output_pieces) == 24  # the base is back after the batch


def test_a_shortlist_needs_the_runs_training_ids(tmp_path: Path) -> None:
    assert run_shortlist(tmp_path / "best", {}, DecodeConfig()) is None  # off
    with pytest.raises(ConfigError, match="decoding.shortlist=20 learns from the run's training ids"):
        run_shortlist(tmp_path / "best", {"src_vocab": 8, "tgt_vocab": 8}, DecodeConfig(shortlist=20))


def test_a_shortlist_larger_than_the_vocabulary_is_refused(shared_run: Path) -> None:
    from pipeline.api import ConfigError as ApiConfigError
    from pipeline.api import Translator

    with pytest.raises(ApiConfigError, match=r"decoding.shortlist=99999999999: must be at most the target vocabulary"):
        Translator.load(shared_run, shortlist=99999999999)


@pytest.mark.parametrize("quantize", ["none", "int8"])
def test_the_step_tables_are_built_once_for_every_batchs_shortlist(quantize: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from stages.model.fast import search_step

    torch.manual_seed(2)
    model = Seq2Seq(ModelConfig(embedding_size=16, encoder_hidden=16, decoder_hidden=24, dropout=0.0,
                                input_feeding=True), 16, 24).eval()
    lexical = learn_shortlist(*corpus(), src_vocab=16, tgt_vocab=24, frequent=1, per_source=2)
    cfg = DecodeConfig(beam_size=3, batch_size=1, shortlist=2, shortlist_frequent=1, max_len_extra=5,
                       quantize=quantize)
    ready = prepare_for_inference(model, cfg, "cpu", list(range(24)), lexical)
    built, rows = [], []
    build, output_rows = search_step._build_tables, search_step._output_rows
    monkeypatch.setattr(search_step, "_build_tables", lambda *a: built.append(1) or build(*a))
    monkeypatch.setattr(search_step, "_output_rows", lambda *a: rows.append(1) or output_rows(*a))
    sources = [[10, 12], [11, 13, 12], [14], [12]]  # one batch each, four shortlists
    found = translate_ids_nbest(ready, sources, cfg, "cpu", 1)
    assert len(built) == 1  # the weight tables (int8: the packed weights) once, over all the output pieces
    assert len(rows) == 1 + len(sources)  # the output rows: all the pieces, then each batch's shortlist
    assert found == translate_ids_nbest(ready, sources, cfg, "cpu", 1)
    # An ensemble's members: the same, each once.
    from stages.decode.ensemble import Ensemble

    second = prepare_for_inference(Seq2Seq(model.cfg, 16, 24).eval(), cfg, "cpu", list(range(24)), lexical)
    built.clear(), rows.clear()
    translate_ids_nbest(Ensemble([ready, second]), sources, cfg, "cpu", 1)
    assert len(built) == 1  # `second`'s; `ready` keeps its tables
    assert len(rows) == 1 + 2 * len(sources)
