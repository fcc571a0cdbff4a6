"""model.decoder_self_attention: each decoder step attends over the embeddings of the
target tokens fed so far. Step-by-step decoding equals teacher-forced decoding, a step
never sees a later token, beams carry their own history, and a whole run trains,
translates and resumes with it."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from conftest import tiny_config_text, write_tiny_corpus

from pipeline.api import Translator
from pipeline.cli import main
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq


def make_model(cell: str = "lstm", layers: int = 1) -> Seq2Seq:
    torch.manual_seed(3)
    cfg = ModelConfig(cell=cell, embedding_size=12, encoder_hidden=8, decoder_hidden=16, decoder_layers=layers,
                      dropout=0.0, init_range=0.4, decoder_self_attention=True)
    return Seq2Seq(cfg, 30, 30).double().eval()


def source() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    src = torch.randint(4, 30, (3, 6), generator=gen)
    src[1, 4:] = 0
    return src, torch.tensor([6, 4, 6])


@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("layers", [1, 2])
def test_stepwise_decoding_equals_teacher_forcing(cell: str, layers: int) -> None:
    model = make_model(cell, layers)
    src, lens = source()
    tgt = torch.randint(4, 30, (3, 7), generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        whole, _, _ = model._decode(tgt, model.encode(src, lens))
        state = model.encode(src, lens)
        for t in range(tgt.size(1)):
            log_probs, state = model.step(tgt[:, t], state)
            torch.testing.assert_close(log_probs, torch.log_softmax(whole[:, t].float(), -1), rtol=0, atol=1e-6)
        assert state.history is not None and torch.equal(state.history, tgt)


def test_a_step_never_sees_a_later_token() -> None:
    model = make_model()
    src, lens = source()
    tgt = torch.randint(4, 30, (3, 7), generator=torch.Generator().manual_seed(4))
    later = tgt.clone()
    later[:, 4:] = 5
    with torch.no_grad():
        a = model(src, lens, tgt)
        b = model(src, lens, later)
    torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=0)
    assert not torch.allclose(a[:, 4:], b[:, 4:])


def test_the_history_changes_the_prediction() -> None:
    """The same decoder state with another earlier token in its history gives other
    scores: the step reads the tokens written, not only the recurrent state."""
    model = make_model()
    src, lens = source()
    with torch.no_grad():
        state = model.encode(src, lens)
        _, state = model.step(torch.tensor([7, 7, 7]), state)
        other = replace(state, history=torch.tensor([[7], [20], [7]]))
        a, _ = model.step(torch.tensor([9, 9, 9]), state)
        b, _ = model.step(torch.tensor([9, 9, 9]), other)
    torch.testing.assert_close(a[[0, 2]], b[[0, 2]], rtol=0, atol=0)
    assert (a[1] - b[1]).abs().max() > 1e-3


def test_beams_carry_their_own_history() -> None:
    model = make_model()
    src, lens = source()
    with torch.no_grad():
        state = model.encode(src, lens).expand_beams(2)
        _, state = model.step(torch.arange(10, 16), state)
        moved = state.reorder_hypotheses(torch.tensor([1, 0, 3, 2, 5, 4]))
        assert torch.equal(moved.history[0], state.history[1])
        kept = state.reorder(torch.tensor([4, 5, 0, 1]))  # a sentence leaves the batch
        assert torch.equal(kept.history, state.history[[4, 5, 0, 1]])


def test_it_is_refused_with_input_feeding() -> None:
    problems = ModelConfig(decoder_self_attention=True, input_feeding=True).problems()
    assert any("decoder_self_attention" in p and "input_feeding" in p for p in problems)


def test_a_run_trains_translates_and_resumes(tmp_path: Path) -> None:
    corpus = write_tiny_corpus(tmp_path / "corpus")
    config = tmp_path / "tiny.yaml"
    text = tiny_config_text(corpus, tmp_path / "runs")
    config.write_text(text.replace("  dropout: 0.0\n", "  dropout: 0.0\n  decoder_self_attention: true\n"),
                      encoding="utf-8")
    result = CliRunner().invoke(main, ["run", str(config)])
    assert result.exit_code == 0, result.output
    run = tmp_path / "runs" / "tiny"
    translator = Translator.load(run)
    assert translator.model.cfg.decoder_self_attention
    out = translator.translate(["In the beginning, God created the heavens and the earth.", "And God saw."])
    assert len(out) == 2
    status = CliRunner().invoke(main, ["status", str(run)])
    assert status.exit_code == 0 and "stale" not in status.output, status.output
    resumed = CliRunner().invoke(main, ["train", str(config), "--set", "training.max_steps=30", "--resume",
                                                "--allow-lr-change"])
    assert resumed.exit_code == 0, resumed.output
