"""Ensembles: the log of the mean of the models' step probabilities."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pipeline.api import ArtifactError, Translator
from pipeline.cli import main
from stages.corpus.vocab import BOS_ID
from stages.decode.ensemble import Ensemble
from stages.decode.search import beam_search, greedy_search
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq

LINES = ["In the beginning God created the heavens.", "", "Jesus wept.", "And God said, Let there be light."]


def tiny_models(count: int) -> list[Seq2Seq]:
    cfg = ModelConfig(embedding_size=16, encoder_hidden=16, decoder_hidden=24, dropout=0.0)
    models = []
    for seed in range(count):
        torch.manual_seed(seed)
        models.append(Seq2Seq(cfg, 30, 25).eval())
    return models


def test_a_step_is_the_log_of_the_mean_probability() -> None:
    first, second = tiny_models(2)
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0]])
    lens = torch.tensor([4, 3])
    prev = torch.full((2,), BOS_ID)
    ensemble = Ensemble([first, second])
    with torch.inference_mode():
        state = ensemble.encode(src, lens)
        for _ in range(3):  # several steps: the members' states move on together
            lp, state_next = ensemble.step(prev, state)
            p1 = first.step(prev, state.states[0])[0].exp()
            p2 = second.step(prev, state.states[1])[0].exp()
            torch.testing.assert_close(lp, ((p1 + p2) / 2).log(), rtol=1e-5, atol=1e-5)
            prev, state = lp.argmax(-1), state_next


def test_greedy_search_follows_the_mean_distribution() -> None:
    first, second = tiny_models(2)
    src, lens = torch.tensor([[5, 6, 7, 8]]), torch.tensor([4])
    [hyp] = greedy_search(Ensemble([first, second]), src, lens, ratio=1.0, extra=4)
    with torch.inference_mode():  # the same search written out by hand
        states = [first.encode(src, lens), second.encode(src, lens)]
        prev, tokens = torch.tensor([BOS_ID]), []
        for _ in range(8):
            outputs = [m.step(prev, s) for m, s in zip((first, second), states)]
            states = [s for _, s in outputs]
            mean = (outputs[0][0].exp() + outputs[1][0].exp()) / 2
            prev = mean.argmax(-1)
            if int(prev) == 2:  # EOS
                break
            tokens.append(int(prev))
    assert hyp.tokens == tokens


def test_an_ensemble_of_one_model_with_itself_is_that_model() -> None:
    [model] = tiny_models(1)
    src = torch.tensor([[5, 6, 7, 8], [9, 10, 11, 0], [12, 13, 0, 0]])
    lens = torch.tensor([4, 3, 2])
    alone = beam_search(model, src, lens, beam_size=3, n_best=3, keep_attention=True)
    twice = beam_search(Ensemble([model, model]), src, lens, beam_size=3, n_best=3, keep_attention=True)
    assert [[h.tokens for h in n] for n in twice] == [[h.tokens for h in n] for n in alone]
    for a, b in zip(sum(alone, []), sum(twice, [])):
        assert a.score == pytest.approx(b.score, abs=1e-4)
        assert torch.allclose(torch.tensor(a.attention), torch.tensor(b.attention))


def test_a_run_with_itself_translates_as_the_run(shared_run: Path) -> None:
    alone = Translator.load(shared_run)
    twice = Translator.load([shared_run, shared_run])
    assert twice.translate(LINES) == alone.translate(LINES)
    assert [[h.text for h in n] for n in twice.translate_nbest(LINES, 3)] == \
        [[h.text for h in n] for n in alone.translate_nbest(LINES, 3)]
    greedy = Translator.load([shared_run, shared_run], beam_size=1)
    assert greedy.translate(LINES) == Translator.load(shared_run, beam_size=1).translate(LINES)
    [[best, *_]] = twice.translate_nbest(["Jesus wept."], 2, alignments=True)
    [[reference, *_]] = alone.translate_nbest(["Jesus wept."], 2, alignments=True)
    assert best.attention == reference.attention  # the first model's


def test_an_ensemble_is_batch_invariant(shared_run: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(shared_run, copy)
    ensemble = Translator.load([shared_run, copy], checkpoint="last")  # best and last: two different models
    assert ensemble.translate(LINES) == [ensemble.translate(line) for line in LINES]


def test_the_cli_takes_several_runs(shared_run: Path, tmp_path: Path) -> None:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    outputs = []
    for runs in ([shared_run], [shared_run, shared_run / "train" / "best"]):
        out = tmp_path / f"out{len(runs)}.txt"
        args = ["translate", str(src), "-o", str(out)] + [a for r in runs for a in ("--run", str(r))]
        result = CliRunner().invoke(main, args)
        assert result.exit_code == 0, result.output
        outputs.append(out.read_text(encoding="utf-8"))
    assert outputs[0] == outputs[1]


def test_models_with_other_tokenizers_are_refused(shared_run: Path, tmp_path: Path) -> None:
    config = tmp_path / "other.yaml"
    text = (shared_run.parent.parent / "tiny.yaml").read_text(encoding="utf-8")
    config.write_text(re.sub(r"(?m)^seed: .*$", "seed: 99", text).replace(str(shared_run.parent),
                                                                          str(tmp_path / "runs")), encoding="utf-8")
    result = CliRunner().invoke(main, ["train", str(config), "--set", "tokenizer.vocab_size=190"])
    assert result.exit_code == 0, result.output
    with pytest.raises(ArtifactError, match=r"spm\.tgt\.model differs from .*must share the target vocabulary"):
        Translator.load([shared_run, tmp_path / "runs" / "tiny"])


def test_a_checkpoint_folder_first_does_not_replace_the_runs_after_it(shared_run: Path) -> None:
    last = shared_run / "train" / "last"
    mixed = Translator.load([last, shared_run])  # the run contributes its best, not the folder given first
    alike = Translator.load([shared_run, shared_run], checkpoint="last")
    assert mixed.model.members[1] is not mixed.model.members[0]
    best = Translator.load(shared_run)
    assert torch.equal(next(mixed.model.members[1].parameters()), next(best.model.parameters()))
    assert torch.equal(next(mixed.model.members[0].parameters()), next(alike.model.members[0].parameters()))
