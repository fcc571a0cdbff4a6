"""data.target_context: training targets behind their previous lines' targets (2+2
concatenation); the search's output is cut after the separator; context dropout drops
both sides together; the contrastive test scores targets behind the previous reference."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config_text, write_tiny_corpus

from pipeline.api import Translator
from pipeline.cli import main
from pipeline.config import load_config
from stages import artifacts
from stages.corpus.batching import TrainData, collate
from stages.corpus.config import DataConfig
from stages.corpus.vocab import SEP_ID, after_context, join_context
from stages.decode import translation
from stages.decode.config import DecodeConfig
from stages.decode.contrastive import Contrast, context_gain, contrastive_accuracy
from stages.decode.search import CharBudget, Hypothesis
from stages.errors import ConfigError
from stages.model.checkpoint import load_checkpoint
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq


def test_the_translation_starts_after_the_last_separator() -> None:
    assert after_context([7, 8, SEP_ID, 9]) == 3
    assert after_context([SEP_ID, 9, SEP_ID, 10, 11]) == 3
    assert after_context([7, 8]) == 0 and after_context([]) == 0
    assert after_context([7, SEP_ID]) == 2  # nothing after it: an empty translation


def test_target_context_needs_a_source_context() -> None:
    problems = DataConfig(target_context=True).problems()
    assert any("data.target_context" in p and "data.context" in p for p in problems)
    assert DataConfig(context=1, target_context=True).problems() == []


def test_context_dropout_drops_a_pairs_target_context_with_its_source_context() -> None:
    rng = np.random.default_rng(0)
    src, tgt = [], []
    for i in range(300):
        context = [] if i % 7 == 0 else list(rng.integers(10, 50, rng.integers(1, 9)))
        src.append(np.array([*context, SEP_ID, *rng.integers(10, 50, 4)], dtype=np.int32))
        tgt.append(np.array([*([60] * len(context)), SEP_ID, 100 + i], dtype=np.int32))  # last id names the pair
    data = TrainData(src, tgt)
    kept = dropped = 0
    for batch in data.batches(256, np.random.default_rng(5), context_dropout=0.5):
        for s, n, t in zip(batch.src, batch.src_lens, batch.tgt_out):
            s, t = s[: int(n)].tolist(), [x for x in t.tolist() if x > 3]
            pair = t[-1] - 100
            source_context, target_context = s.index(SEP_ID), t.index(SEP_ID)
            assert source_context == target_context  # the two sides lose their context together
            full = len(src[pair]) - 5
            kept += source_context == full > 0
            dropped += source_context == 0 < full
    assert kept > 50 and dropped > 50


class _Fixed(torch.nn.Module):
    """Stands in for a model: the search is patched, so it is never called."""


def test_the_search_output_is_cut_after_the_separator(monkeypatch: pytest.MonkeyPatch) -> None:
    def search(*args: object, **kwargs: object) -> list[Hypothesis]:
        return [Hypothesis([20, 21, SEP_ID, 30, 31], -1.0, -1.0, [[0.1], [0.2], [0.3], [0.4], [0.5]]),
                Hypothesis([40, 41], -2.0, -2.0, [[0.6], [0.7]])]

    monkeypatch.setattr(translation, "greedy_search", search)
    found = translation.translate_ids_nbest(_Fixed(), [[5, 6], [7]], DecodeConfig(beam_size=1), "cpu", 1,
                                            keep_attention=True)
    tokens = sorted((h[0].tokens, h[0].attention) for h in found)
    assert tokens == [([30, 31], [[0.4], [0.5]]), ([40, 41], [[0.6], [0.7]])]


def test_a_target_context_models_output_without_separator_is_no_translation(monkeypatch: pytest.MonkeyPatch) -> None:
    """It stopped (at the length limit) while still translating the previous lines."""
    def search(*args: object, **kwargs: object) -> list[Hypothesis]:
        assert kwargs.get("sep", args[-1] if args else None) == SEP_ID  # the search is told of the separator
        return [Hypothesis([20, 21], -1.0, -1.0), Hypothesis([20, SEP_ID, 22], -1.0, -1.0)]

    model = _Fixed()
    model.output_pieces = torch.arange(30)  # type: ignore[assignment]
    model.target_context = True  # as prepare_for_inference marks a model whose recorded pieces hold the separator
    monkeypatch.setattr(translation, "greedy_search", search)
    found = translation.translate_ids(model, [[5, 6], [7]], DecodeConfig(beam_size=1), "cpu")
    assert sorted(found) == [[], [22]]


@pytest.fixture(scope="module")
def target_context_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run with data.context 1 and data.target_context, context dropout 0.5."""
    tmp = tmp_path_factory.mktemp("target-context")
    path = tmp / "tiny.yaml"
    path.write_text(tiny_config_text(write_tiny_corpus(tmp / "corpus"), tmp / "runs"), encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(path), "--set", "data.context=1", "--set", "data.target_context=true",
                                       "--set", "training.context_dropout=0.5"])
    assert result.exit_code == 0, result.output
    return tmp / "runs" / "tiny"


def test_a_target_context_run_trains_on_targets_behind_their_context(target_context_run: Path) -> None:
    prepared = target_context_run / artifacts.PREPARE_DIR
    train = artifacts.split_text(prepared, "train", artifacts.TGT_SUFFIX).read_text(encoding="utf-8").splitlines()
    dev = artifacts.split_text(prepared, "dev", artifacts.TGT_SUFFIX).read_text(encoding="utf-8").splitlines()
    assert all(" <sep> " in line or line.startswith("<sep> ") for line in train)
    assert sum(line.startswith("<sep> ") for line in train) < len(train) // 10  # a book's first verse only
    assert not any("<sep>" in line for line in dev)  # references stay plain
    hyps = (target_context_run / artifacts.TRANSLATE_DIR / artifacts.TEST_HYP).read_text(encoding="utf-8")
    assert "<sep>" not in hyps


def test_a_target_context_model_is_scored_behind_the_previous_reference(target_context_run: Path) -> None:
    translator = Translator.load(target_context_run)
    outputs = translator.translate(["In the beginning God created the heaven and the earth.",
                                    "And the earth was without form, and void."])
    assert len(outputs) == 2 and not any("<sep>" in o for o in outputs)
    model, sp_src, sp_tgt, _ = load_checkpoint(target_context_run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST)
    example = Contrast(1, "la", "And she drank it.", "And she took the cup.", "Y la bebió.", "Y tomó la copa.",
                       "Y lo bebió.", True)
    for context in (1, 0):
        result = contrastive_accuracy(model, sp_src, sp_tgt, [example], context, True, target_context=True)
        assert result["examples"] == 1
    # What the test scores: the reference behind the previous reference, which changes its score.
    targets = [join_context(["Y tomó la copa."], "Y la bebió."), join_context([], "Y la bebió.")]
    source = sp_src.encode(join_context(["And she took the cup."], "And she drank it."))
    batch = collate([np.array(source)] * 2, [np.array(sp_tgt.encode(t)) for t in targets])
    assert sp_tgt.encode(targets[0]).count(SEP_ID) == 1
    with torch.no_grad():
        scores = model.sequence_log_probs(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out)
    assert float(scores[0]) != float(scores[1])
    # CXMI counts the sentence's own pieces only, behind the previous reference or the separator alone.
    sources, references = ["And she took the cup.", "And she drank it."], ["Y tomó la copa.", "Y la bebió."]
    gain = context_gain(model, sp_src, sp_tgt, sources, references, target_context=True)
    assert gain["tokens"] == len(sp_tgt.encode(references[1])) + 1
    pair = collate([np.array(sp_src.encode(join_context(c, sources[1]))) for c in ([sources[0]], [])],
                   [np.array(sp_tgt.encode(join_context(c, references[1]))) for c in ([references[0]], [])])
    skip = torch.tensor([sp_tgt.encode(join_context(c, references[1])).index(SEP_ID) + 1 for c in ([references[0]], [])])
    with torch.no_grad():
        own = model.sequence_log_probs(pair.src, pair.src_lens, pair.tgt_in, pair.tgt_out, skip)
    assert gain["cxmi"] == pytest.approx(float(own[0] - own[1]) / gain["tokens"], abs=1e-5)




@pytest.mark.parametrize("beam", [1, 4])
def test_the_searchs_character_limit_starts_after_the_separator(beam: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose output pieces hold the separator (trained with target context): the
    limit holds for the pieces after it, which is what the translation keeps."""
    torch.manual_seed(3)
    model = Seq2Seq(ModelConfig(embedding_size=16, encoder_hidden=16, decoder_hidden=32, init_range=0.5), 12, 12)
    model = model.double().eval()
    with torch.no_grad():
        model.generator.bias[SEP_ID] += 1.5  # separators in most outputs
    model = translation.prepare_for_inference(model, DecodeConfig(), "cpu", list(range(12)))  # SEP_ID among them
    assert model.target_context
    chars = torch.tensor([0, 3, 0, 0, 0, 2, 3, 4, 5, 6, 7, 8], dtype=torch.long)
    gen = torch.Generator().manual_seed(11)
    seqs = [torch.randint(5, 12, (int(n),), generator=gen).tolist() for n in torch.randint(3, 12, (16,), generator=gen)]
    limits = [6 + i for i in range(16)]
    raw: list[list[int]] = []
    monkeypatch.setattr(translation, "after_context", lambda tokens: raw.append(list(tokens)) or after_context(tokens))
    found = translation.translate_ids_nbest(model, seqs, DecodeConfig(beam_size=beam), "cpu", 1,
                                            budget=CharBudget(chars, limits))
    for limit, hyps in zip(limits, found):
        assert sum(int(chars[t]) for t in hyps[0].tokens) <= limit
    assert sum(after_context(tokens) > 0 for tokens in raw) >= 4  # most outputs had a context's translation to cut
    # Their whole outputs may pass the limit: the context's translation did not count against it.
    assert max(sum(int(chars[t]) for t in tokens) for tokens in raw) > max(limits)


def test_the_separator_adds_no_characters_to_a_translation(target_context_run: Path) -> None:
    _, _, sp_tgt, _ = load_checkpoint(target_context_run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST)
    assert sp_tgt.id_to_piece(SEP_ID) == "<sep>" and int(translation.piece_chars(sp_tgt)[SEP_ID]) == 0


def test_an_ensemble_of_runs_with_and_without_target_context_is_refused(target_context_run: Path, tmp_path: Path) -> None:
    other = tmp_path / "plain"
    shutil.copytree(target_context_run, other)
    for name in ("config.json", "config.yaml"):
        path = other / name
        path.write_text(path.read_text(encoding="utf-8").replace("target_context: true", "target_context: false")
                        .replace('"target_context": true', '"target_context": false'), encoding="utf-8")
    with pytest.raises(ConfigError, match="data.target_context"):
        Translator.load([target_context_run, other])


@pytest.mark.parametrize("keys", [["training.valid_bleu=false"],
                                  ["training.schedule=plateau", "training.plateau_metric=loss"],
                                  ["training.patience=2", "training.early_stopping_metric=loss"]])
def test_a_target_context_run_chooses_nothing_by_dev_loss(keys: list[str]) -> None:
    with pytest.raises(ConfigError, match="data.target_context=true.*dev loss"):
        load_config(None, ["data.context=1", "data.target_context=true", *keys])
    load_config(None, ["data.context=1", "data.target_context=true"])  # dev BLEU picks: accepted
