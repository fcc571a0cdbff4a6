"""The contrastive pronoun test (stages/decode/contrastive.py): building the examples,
scoring a reference against its contrast, and a tiny context model trained with context
dropout taking the test with and without its context."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config_text, write_tiny_corpus

from pipeline.cli import main
from stages import artifacts
from stages.corpus.batching import collate
from stages.decode.contrastive import (
    FEMININE,
    Contrast,
    context_gain,
    contrastive_accuracy,
    controlled_pairs,
    find_contrasts,
    verb_like,
)
from stages.errors import ConfigError
from stages.model.checkpoint import load_checkpoint
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq

TRAIN_TARGETS = ["y se levantó temprano", "no la tomes", "se tomó el pan", "la casa de su padre", "una casa grande"]
SOURCES = ["And she took the cup in her hand.", "And she drank it.", "He sat there.", "And he took it."]
REFERENCES = ["Y tomó la copa en su mano.", "Y la bebió.", "Él se sentó allí.", "Y lo tomó."]


def test_verbs_are_words_found_more_often_after_a_clitic_than_after_a_determiner() -> None:
    verbs = verb_like(TRAIN_TARGETS)
    assert {"levantó", "tomó"} <= verbs and "casa" not in verbs and "tomes" not in verbs  # "la" is no marker


def test_a_contrast_swaps_one_pronoun_decided_by_the_previous_sentence() -> None:
    verbs = {"bebió", "tomó"}
    found = find_contrasts(SOURCES, REFERENCES, verbs)
    assert [(c.line, c.pronoun, c.contrast, c.previous_only) for c in found] == [(1, "la", "Y lo bebió.", True)]
    assert found[0].previous == SOURCES[0]
    # Line 3's "lo" has no masculine noun in line 2's reference ("allí" is no noun): not an example.
    assert find_contrasts(SOURCES, ["Y tomó el pan.", *REFERENCES[1:]], verbs) == []  # "la" not decided by line 0


def test_an_article_is_not_a_pronoun_and_a_gendered_source_is_no_example() -> None:
    verbs = {"bebió"}
    assert find_contrasts(["The cup.", "She saw the house."], ["La copa.", "Vio la casa."], verbs) == []
    assert find_contrasts(["The cup.", "She drank her."], ["La copa.", "La bebió."], verbs) == []
    with pytest.raises(ConfigError, match="en->de"):
        find_contrasts(SOURCES, REFERENCES, verbs, tgt_lang="de")


def test_sequence_log_probs_are_the_teacher_forced_loss_with_its_sign_changed() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(embedding_size=8, encoder_hidden=8, decoder_hidden=16, dropout=0.0), 30, 30).eval()
    src = [torch.randint(5, 30, (n,)).numpy() for n in (3, 7, 5)]
    tgt = [torch.randint(5, 30, (n,)).numpy() for n in (4, 2, 6)]
    batch = collate(src, tgt)
    with torch.no_grad():
        each = model.sequence_log_probs(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out)
        total = model(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out, 0.0)
        alone = [model.sequence_log_probs(*[t[i : i + 1, : (len(src[i]) if k == 0 else len(tgt[i]) + 1)]
                                           if t.dim() == 2 else t[i : i + 1]
                                           for k, t in enumerate((batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out))])
                 for i in range(3)]
    assert float(each.sum()) == pytest.approx(-float(total), rel=1e-5)
    assert [float(a) for a in alone] == pytest.approx(each.tolist(), rel=1e-5)


@pytest.fixture(scope="module")
def context_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run with data.context 1, trained with context dropout 0.5."""
    tmp = tmp_path_factory.mktemp("context")
    path = tmp / "tiny.yaml"
    path.write_text(tiny_config_text(write_tiny_corpus(tmp / "corpus"), tmp / "runs"), encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(path), "--set", "data.context=1",
                                       "--set", "training.context_dropout=0.5"])
    assert result.exit_code == 0, result.output
    return tmp / "runs" / "tiny"


def test_a_context_model_takes_the_test_with_and_without_its_context(context_run: Path) -> None:
    model, sp_src, sp_tgt, _ = load_checkpoint(context_run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST)
    examples = [Contrast(1, "la", SOURCES[1], SOURCES[0], REFERENCES[1], REFERENCES[0], "Y lo bebió.", True),
                Contrast(3, "lo", SOURCES[3], SOURCES[2], REFERENCES[3], REFERENCES[2], "Y la tomó.", False)]
    with_context = contrastive_accuracy(model, sp_src, sp_tgt, examples, 1, True)
    without = contrastive_accuracy(model, sp_src, sp_tgt, examples, 0, True)
    plain = contrastive_accuracy(model, sp_src, sp_tgt, examples, 0, False)
    for result in (with_context, without, plain):
        assert result["examples"] == 2 and 0 <= result["correct"] <= 2
        assert result["previous_only"]["examples"] == 1
        assert result["feminine"]["examples"] == result["masculine"]["examples"] == 1
        passed = (result["feminine"]["correct"], result["masculine"]["correct"])
        assert result["balanced_accuracy"] == sum(passed) / 2 and result["correct"] == sum(passed)
    assert contrastive_accuracy(model, sp_src, sp_tgt, examples[:1], 1, True)["balanced_accuracy"] is None
    longer = Contrast(1, "la", SOURCES[1], SOURCES[0], REFERENCES[1], REFERENCES[0], "Y lo bebió todo entero.", True)
    unequal = [contrastive_accuracy(model, sp_src, sp_tgt, e, 1, True)["unequal_pieces"]
               for e in (examples, [*examples, longer])]
    assert unequal[1] == unequal[0] + 1  # (the tiny tokenizer splits "lo" and "la" differently)
    # The context reaches the model: the reference scores differently with it.
    from stages.corpus.vocab import join_context

    sources = [join_context([SOURCES[0]], SOURCES[1]), join_context([], SOURCES[1])]
    batch = collate([torch.tensor(sp_src.encode(s)).numpy() for s in sources],
                    [torch.tensor(sp_tgt.encode(REFERENCES[1])).numpy()] * 2)
    with torch.no_grad():
        scores = model.sequence_log_probs(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out)
    assert float(scores[0]) != float(scores[1])


def test_context_gain_compares_each_reference_with_and_without_its_previous_sentence(context_run: Path) -> None:
    model, sp_src, sp_tgt, _ = load_checkpoint(context_run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST)
    gain = context_gain(model, sp_src, sp_tgt, SOURCES, REFERENCES)
    assert gain["sentences"] == 3 and gain["tokens"] == sum(len(sp_tgt.encode(r)) + 1 for r in REFERENCES[1:])
    from stages.corpus.vocab import join_context

    expected = 0.0
    for i in range(1, 4):
        batch = collate([np.array(sp_src.encode(join_context(c, SOURCES[i]))) for c in ([SOURCES[i - 1]], [])],
                        [np.array(sp_tgt.encode(REFERENCES[i]))] * 2)
        with torch.no_grad():
            scores = model.sequence_log_probs(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out)
        expected += float(scores[0] - scores[1])
    assert gain["cxmi"] == pytest.approx(expected / gain["tokens"], abs=1e-5)
    assert context_gain(model, sp_src, sp_tgt, SOURCES[:1], REFERENCES[:1])["sentences"] == 0
    own = context_gain(model, sp_src, sp_tgt, SOURCES, REFERENCES, against=[0, 0, 1, 2])  # its own previous one
    assert own["cxmi"] == 0.0 and own["tokens"] == gain["tokens"]
    other = context_gain(model, sp_src, sp_tgt, SOURCES, REFERENCES, against=[0, 2, 0, 0])
    expected = 0.0
    for i, k in ((1, 2), (2, 0), (3, 0)):
        batch = collate([np.array(sp_src.encode(join_context([SOURCES[c]], SOURCES[i]))) for c in (i - 1, k)],
                        [np.array(sp_tgt.encode(REFERENCES[i]))] * 2)
        with torch.no_grad():
            scores = model.sequence_log_probs(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out)
        expected += float(scores[0] - scores[1])
    assert other["cxmi"] == pytest.approx(expected / other["tokens"], abs=1e-5)


def test_skipped_target_tokens_condition_but_do_not_count() -> None:
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(embedding_size=8, encoder_hidden=8, decoder_hidden=8), 20, 20).eval()
    batch = collate([np.array([5, 6, 7])] * 2, [np.array([8, 9, 10, 11]), np.array([12, 9, 10, 11])])
    with torch.no_grad():
        tokens = torch.log_softmax(model(batch.src, batch.src_lens, batch.tgt_in).float(), -1)
        picked = tokens.gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1)
        skipped = model.sequence_log_probs(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out, torch.tensor([2, 0]))
    assert skipped.tolist() == pytest.approx([float(picked[0, 2:].sum()), float(picked[1].sum())], rel=1e-6)


def test_the_controlled_pairs_are_twins_balanced_by_gender_across_and_within_a_sentence() -> None:
    path = Path(__file__).resolve().parents[1] / "data" / "contrastive" / "agreement.tsv"
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    across, within = controlled_pairs(rows)
    assert len(across) == len(within) == len(rows) == 16
    assert sum(e.pronoun in FEMININE["es"] for e in across) == 8
    for a, b in zip(across[::2], across[1::2]):  # twins: the same sentence, contexts of opposite genders
        assert a.source == b.source and a.reference == b.contrast and a.contrast == b.reference
        assert a.previous != b.previous
    first = within[0]
    assert first.source == "He planted the vine, and he watered it." and not first.previous
    assert (first.reference, first.contrast) == ("Y plantó la vid, y la regó.", "Y plantó la vid, y lo regó.")


@pytest.mark.parametrize("name", ["number.tsv", "cohesion.tsv"])
def test_the_number_and_cohesion_pairs_are_twins(name: str) -> None:
    """A model that ignores the context passes exactly one of each twin."""
    path = Path(__file__).resolve().parents[1] / "data" / "contrastive" / name
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()[1:]]
    across, within = controlled_pairs(rows)
    assert len(across) == len(within) == 16
    for a, b in zip(across[::2], across[1::2]):
        assert a.source == b.source and a.reference == b.contrast and a.contrast == b.reference
        assert a.previous == b.previous if name == "cohesion.tsv" else a.previous != b.previous
        assert a.previous_reference != b.previous_reference


def test_a_checkpoint_folder_of_a_context_model_knows_its_context(context_run: Path, tmp_path: Path) -> None:
    import json
    import shutil

    from pipeline.api import Translator

    folder = tmp_path / "best"
    shutil.copytree(context_run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST, folder)
    lines = ["In the beginning God created the heavens.", "And the earth was waste."]
    alone = Translator.load(folder)
    assert (alone.context, alone.context_model) == (1, True)
    assert alone.translate(lines) == Translator.load(context_run).translate(lines)
    meta = json.loads((folder / artifacts.CKPT_META).read_text(encoding="utf-8"))
    assert meta["data"] == {"src_lang": "en", "tgt_lang": "es", "context": 1, "target_context": False}
    del meta["data"]  # a folder written before checkpoints recorded their data keys: the user says
    (folder / artifacts.CKPT_META).write_text(json.dumps(meta), encoding="utf-8")
    assert Translator.load(folder, context=1).translate(lines) == alone.translate(lines)
    assert Translator.load(folder).context_model is False
