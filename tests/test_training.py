from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from stages.corpus.batching import collate, token_batches
from stages.corpus.config import TokenizerConfig
from stages.corpus.token_ids import load_id_columns
from stages.corpus.tokenization import run_tokenize
from stages.corpus.vocab import EOS_ID
from stages.decode.search import beam_search, greedy_search
from stages.errors import ArtifactError
from stages.model.checkpoint import check_tokenizer, load_checkpoint, save_checkpoint
from stages.model.config import ModelConfig
from stages.model.seq2seq import Seq2Seq, sequence_loss
from stages.train.config import TrainConfig
from stages.train.schedule import lr_factor


def test_token_batches_respect_budget_and_cover_everything() -> None:
    rng = np.random.default_rng(0)
    src = rng.integers(1, 30, 200)
    tgt = rng.integers(1, 30, 200)
    batches = token_batches(src, tgt, 256, rng)
    seen = np.sort(np.concatenate(batches))
    assert np.array_equal(seen, np.arange(200))
    for b in batches:
        longest = max(max(src[b]), max(tgt[b]) + 1)
        assert len(b) == 1 or longest * len(b) <= 256


def test_collate_shifts_target() -> None:
    b = collate([np.array([5, 6, 7]), np.array([8])], [np.array([9, 10]), np.array([11, 12, 13])])
    assert b.src.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert b.tgt_in.tolist() == [[2, 9, 10, 0], [2, 11, 12, 13]]
    assert b.tgt_out.tolist() == [[9, 10, EOS_ID, 0], [11, 12, 13, EOS_ID]]
    assert b.n_tokens == 7


def test_label_smoothing_zero_is_cross_entropy() -> None:
    logits = torch.randn(2, 3, 10)
    target = torch.tensor([[4, 5, 0], [6, 0, 0]])
    expected = -torch.log_softmax(logits, -1)[[0, 0, 1], [0, 1, 0], [4, 5, 6]].sum()
    torch.testing.assert_close(sequence_loss(logits, target, 0.0), expected)
    assert sequence_loss(logits, target, 0.1) != sequence_loss(logits, target, 0.0)


def test_linear_schedule_warms_up_and_decays() -> None:
    cfg = TrainConfig(warmup_steps=10, schedule="linear")
    assert lr_factor(0, cfg, 100) == pytest.approx(0.1)
    assert lr_factor(9, cfg, 100) == pytest.approx(0.91)
    assert lr_factor(50, cfg, 100) == pytest.approx(0.5)
    assert lr_factor(100, cfg, 100) == pytest.approx(0.02)


def test_model_overfits_twenty_pairs_to_exact_copies() -> None:
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(1)
    src = [torch.randint(4, 30, (int(n),), generator=gen).numpy() for n in torch.randint(3, 8, (20,), generator=gen)]
    tgt = [s[::-1] + 1 for s in src]  # reverse and shift: needs attention, not copying
    cfg = ModelConfig(embedding_size=32, encoder_hidden=32, decoder_hidden=64, dropout=0.0)
    model = Seq2Seq(cfg, 32, 32)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    batch = collate(src, tgt)
    for _ in range(300):
        loss = sequence_loss(model(batch.src, batch.src_lens, batch.tgt_in), batch.tgt_out, 0.0) / batch.n_tokens
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    hyps = greedy_search(model, batch.src, batch.src_lens)
    assert [h.tokens for h in hyps] == [t.tolist() for t in tgt]
    beams = beam_search(model, batch.src, batch.src_lens, beam_size=4, alpha=0.0)
    assert [b[0].tokens for b in beams] == [t.tolist() for t in tgt]


def _prepared(folder: Path, src_text: str, tgt_text: str) -> Path:
    """A prepare/ folder whose three splits all hold the same text (as text files and
    as the Arrow tables tokenize reads)."""
    import datasets

    folder.mkdir()
    pairs = {"src": src_text.splitlines(), "tgt": tgt_text.splitlines()}
    for split in ("train", "dev", "test"):
        (folder / f"{split}.src").write_text(src_text, encoding="utf-8")
        (folder / f"{split}.tgt").write_text(tgt_text, encoding="utf-8")
        datasets.Dataset.from_dict(pairs).save_to_disk(str(folder / "arrow" / split))
    return folder


def _tokenizer(folder: Path, prepared: Path, vocab: int, kind: str = "unigram") -> Path:
    run_tokenize(TokenizerConfig(vocab_size=vocab, model_type=kind), prepared, folder, seed=1)  # type: ignore[arg-type]
    return folder


def test_checkpoint_round_trip_and_tokenizer_check(tmp_path: Path) -> None:
    lines = ["in the beginning god created the heavens and the earth"] * 3 + ["and the earth was formless and empty"] * 3
    text = "\n".join(lines) + "\n"
    prepared = _prepared(tmp_path / "prepare", text, text)
    tok_a = _tokenizer(tmp_path / "tok_a", prepared, 40)
    tok_b = _tokenizer(tmp_path / "tok_b", prepared, 40, "bpe")
    import sentencepiece as spm

    vocab = spm.SentencePieceProcessor(model_file=str(tok_a / "spm.src.model")).get_piece_size()
    cfg = ModelConfig(embedding_size=8, encoder_hidden=8, decoder_hidden=8, tie_embeddings=True)
    model = Seq2Seq(cfg, vocab, vocab)
    save_checkpoint(tmp_path / "ckpt", model, tok_a, {"step": 3})
    loaded, sp_src, _, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta["step"] == 3 and sp_src.get_piece_size() == vocab
    for (name, a), b in zip(model.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), name
    check_tokenizer(tmp_path / "ckpt", tok_a)
    with pytest.raises(ArtifactError, match=r"tok_b/spm.src.model differs from the tokenizer"):
        check_tokenizer(tmp_path / "ckpt", tok_b)
    (tmp_path / "ckpt" / "spm.tgt.model").write_bytes(b"not a model")
    with pytest.raises(ArtifactError, match="not the one this checkpoint was trained with"):
        load_checkpoint(tmp_path / "ckpt")


def test_tokenizer_is_deterministic(tmp_path: Path) -> None:
    text = "\n".join(f"verse {i} of the book of the law" for i in range(50)) + "\n"
    prepared = _prepared(tmp_path / "prepare", text, text.upper())
    one = _tokenizer(tmp_path / "one", prepared, 60)
    two = _tokenizer(tmp_path / "two", prepared, 60)
    import sentencepiece as spm

    sp, sp2 = (spm.SentencePieceProcessor(model_file=str(d / "spm.src.model")) for d in (one, two))
    pieces = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    assert pieces == [(sp2.id_to_piece(i), sp2.get_score(i)) for i in range(sp2.get_piece_size())]
    assert sp.pad_id() == 0 and sp.unk_id() == 1 and sp.bos_id() == 2 and sp.eos_id() == 3
    src_ids, tgt_ids = load_id_columns(one / "ids" / "train")
    assert len(src_ids) == len(tgt_ids) == 50
    assert sp.decode(src_ids[7].tolist()) == "verse 7 of the book of the law"
    assert sp.decode(tgt_ids[49].tolist()) == "VERSE 49 OF THE BOOK OF THE LAW"


def test_averaging_gives_the_mean_and_refuses_one_checkpoint_twice(tmp_path: Path) -> None:
    from stages.model.checkpoint import average_checkpoints

    text = "\n".join(f"verse {i} of the book of the law" for i in range(30)) + "\n"
    prepared = _prepared(tmp_path / "prepare", text, text)
    tok = _tokenizer(tmp_path / "tok", prepared, 40)
    import sentencepiece as spm

    vocab = spm.SentencePieceProcessor(model_file=str(tok / "spm.src.model")).get_piece_size()
    torch.manual_seed(0)
    cfg = ModelConfig(embedding_size=8, encoder_hidden=8, decoder_hidden=16)
    one = Seq2Seq(cfg, vocab, vocab)
    save_checkpoint(tmp_path / "a", one, tok, {"step": 1})
    save_checkpoint(tmp_path / "b", one, tok, {"step": 1})
    with pytest.raises(ArtifactError, match="holds the same weights as"):  # best and last of one step
        average_checkpoints([tmp_path / "a", tmp_path / "b"], tmp_path / "avg")
    assert not (tmp_path / "avg").exists()
    torch.manual_seed(1)
    two = Seq2Seq(cfg, vocab, vocab)
    save_checkpoint(tmp_path / "c", two, tok, {"step": 2})
    average_checkpoints([tmp_path / "a", tmp_path / "c"], tmp_path / "avg2")
    mixed, _, _, _ = load_checkpoint(tmp_path / "avg2")
    expected = (one.generator.weight + two.generator.weight) / 2
    torch.testing.assert_close(mixed.generator.weight, expected)
    other = Seq2Seq(ModelConfig(embedding_size=8, encoder_hidden=8, decoder_hidden=24), vocab, vocab)
    save_checkpoint(tmp_path / "d", other, tok, {"step": 3})
    with pytest.raises(ArtifactError, match=r"its model \(decoder_hidden: 16 against 24\) differs"):
        average_checkpoints([tmp_path / "a", tmp_path / "d"], tmp_path / "avg3")
    before = (tmp_path / "a" / "model.safetensors").read_bytes()
    with pytest.raises(ArtifactError, match="is, holds or lies in .*one of the checkpoints being averaged"):
        average_checkpoints([tmp_path / "a", tmp_path / "c"], tmp_path / "a")
    assert (tmp_path / "a" / "model.safetensors").read_bytes() == before
    run_best = tmp_path / "runs" / "r" / "train" / "best"  # a run's own checkpoint, in its manifest
    run_best.mkdir(parents=True)
    (tmp_path / "runs" / "r" / "manifest.json").write_text("{}", encoding="utf-8")
    with pytest.raises(ArtifactError, match="already exists"):
        average_checkpoints([tmp_path / "a", tmp_path / "c"], run_best)
    assert list(run_best.iterdir()) == []


def test_clip_value_bounds_each_gradient_element_and_norms_are_per_layer() -> None:
    from stages.train.step import train_step

    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(embedding_size=8, encoder_hidden=8, decoder_hidden=16, dropout=0.0), 20, 20)
    batch = collate([np.array([5, 6, 7]), np.array([8, 9])], [np.array([10, 11]), np.array([12, 13, 14])])
    cfg = TrainConfig(optimizer="sgd", lr=1.0, clip_value=1e-3, clip_norm=0.0, label_smoothing=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    before = [p.detach().clone() for p in model.parameters()]
    loss, norms = train_step(model, optimizer, batch, cfg, None, "cpu", want_norms=True)
    assert loss > 0
    assert max(float((p.detach() - b).abs().max()) for p, b in zip(model.parameters(), before)) <= 1e-3 + 1e-7
    assert {"encoder.embed", "encoder.layers.0.0", "encoder.layers.0.1", "decoder_rnn", "generator"} <= set(norms)
    assert all(v > 0 for v in norms.values())


def test_out_of_patience() -> None:
    from stages.train.validation import out_of_patience

    assert not out_of_patience([10.0, 12.0, 11.0], True, 0)
    assert not out_of_patience([10.0, 12.0, 11.0], True, 2)
    assert out_of_patience([10.0, 12.0, 11.0, 12.0], True, 2)
    assert not out_of_patience([10.0, 12.0, 11.0, 12.5], True, 2)
    assert out_of_patience([3.0, 2.5, 2.6, 2.5], False, 2)
    assert not out_of_patience([3.0, 2.5, 2.6, 2.4], False, 2)


def test_sentence_batches_hold_batch_sentences_length_bucketed_pairs() -> None:
    from stages.corpus.batching import TrainData, sentence_batches
    from stages.train.trainer import epoch_batches

    rng = np.random.default_rng(0)
    src, tgt = rng.integers(1, 30, 100), rng.integers(1, 30, 100)
    batches = sentence_batches(src, tgt, 16, rng)
    assert sorted(len(b) for b in batches) == [4] + [16] * 6
    assert np.array_equal(np.sort(np.concatenate(batches)), np.arange(100))
    spans = sorted((int(tgt[b].min()), int(tgt[b].max())) for b in batches)
    assert all(hi <= lo_next for (_, hi), (lo_next, _) in zip(spans, spans[1:]))  # target lengths do not interleave
    data = TrainData([np.arange(1, int(n) + 1) for n in src], [np.arange(1, int(n) + 1) for n in tgt])
    by_sentences = epoch_batches(data, TrainConfig(batch_type="sentences", batch_sentences=7), rng)
    assert sorted(b.src.shape[0] for b in by_sentences) == [2] + [7] * 14
    by_tokens = epoch_batches(data, TrainConfig(batch_type="tokens", batch_tokens=120, batch_sentences=7), rng)
    assert all(b.tgt_in.numel() <= 120 or b.src.shape[0] == 1 for b in by_tokens)
    assert {b.src.shape[0] for b in by_tokens} != {7}


def _step_model() -> tuple[Seq2Seq, object]:
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(embedding_size=8, encoder_hidden=8, decoder_hidden=16, dropout=0.0), 20, 20)
    batch = collate([np.array([5, 6, 7]), np.array([8, 9])], [np.array([10, 11]), np.array([12, 13, 14])])
    return model, batch


def test_grad_scaler_step_unscales_before_clipping_and_skips_overflow() -> None:
    from stages.train.step import train_step

    cfg = TrainConfig(clip_norm=0.5, label_smoothing=0.0)
    plain, batch = _step_model()
    train_step(plain, torch.optim.Adam(plain.parameters()), batch, cfg, None, "cpu")  # type: ignore[arg-type]
    scaled, _ = _step_model()
    scaler = torch.amp.GradScaler("cpu")
    train_step(scaled, torch.optim.Adam(scaled.parameters()), batch, cfg, None, "cpu", scaler=scaler)  # type: ignore[arg-type]
    for (name, a), b in zip(plain.state_dict().items(), scaled.state_dict().values()):
        assert torch.equal(a, b), name  # a power-of-two scale, unscaled before clipping: the same step
    overflow, _ = _step_model()
    before = [p.detach().clone() for p in overflow.parameters()]
    overflow.generator.bias.register_hook(lambda grad: grad * float("inf"))  # as an fp16 overflow would
    scaler = torch.amp.GradScaler("cpu")
    train_step(overflow, torch.optim.Adam(overflow.parameters()), batch, cfg, None, "cpu", scaler=scaler)  # type: ignore[arg-type]
    assert all(torch.equal(p, b) for p, b in zip(overflow.parameters(), before))  # step skipped
    assert scaler.get_scale() == 2.0**15  # and the scale halved


def test_precision_choices() -> None:
    from stages.errors import ConfigError
    from stages.train.precision import make_scaler, pick_precision
    from stages.train.step import train_step

    assert pick_precision("fp32", "cuda") is None and pick_precision("auto", "cuda") is None
    assert pick_precision("bf16", "cpu") == torch.bfloat16 and pick_precision("fp16", "cuda:1") == torch.float16
    with pytest.raises(ConfigError, match="training.precision=fp16 needs a CUDA device.*use precision bf16 or fp32"):
        pick_precision("fp16", "cpu")
    assert make_scaler(torch.bfloat16, "cuda") is None and make_scaler(None, "cuda") is None
    fp16_scaler = make_scaler(torch.float16, "cpu")
    assert fp16_scaler is not None and fp16_scaler.is_enabled()
    model, batch = _step_model()
    before = [p.detach().clone() for p in model.parameters()]
    loss, _ = train_step(model, torch.optim.Adam(model.parameters()), batch, TrainConfig(), torch.bfloat16, "cpu")  # type: ignore[arg-type]
    assert math.isfinite(loss) and loss > 0
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert any(not torch.equal(p, b) for p, b in zip(model.parameters(), before))


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_accumulated_batches_step_like_one_big_batch(cell: str) -> None:
    from stages.train.step import train_step

    rng = np.random.default_rng(3)
    src = [rng.integers(4, 40, n) for n in (3, 7, 5, 2, 9, 4)]
    tgt = [rng.integers(4, 40, n) for n in (4, 2, 6, 3, 5, 8)]
    cfg = TrainConfig(optimizer="adam", lr=0.01, clip_norm=1.0, label_smoothing=0.1)

    def fresh() -> tuple[Seq2Seq, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = Seq2Seq(ModelConfig(cell=cell, embedding_size=8, encoder_hidden=8, decoder_hidden=16, dropout=0.0), 40, 40)
        return model, torch.optim.Adam(model.parameters(), lr=cfg.lr)

    big, big_opt = fresh()
    small, small_opt = fresh()
    for _ in range(3):  # three optimizer steps, so Adam's moments are compared too
        big_loss, _ = train_step(big, big_opt, collate(src, tgt), cfg, None, "cpu")
        parts = [collate(src[:2], tgt[:2]), collate(src[2:5], tgt[2:5]), collate(src[5:], tgt[5:])]
        small_loss, _ = train_step(small, small_opt, parts, cfg, None, "cpu")
        assert small_loss == pytest.approx(big_loss, rel=1e-5)
    for (name, a), b in zip(big.named_parameters(), small.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6, msg=name)


def test_accumulate_trains_through_the_stage(tokenized_run: Path, tmp_path: Path) -> None:
    import json

    from stages.train.trainer import run_train

    run = tokenized_run.parent / "runs" / "tiny"
    tok, prep = run / "tokenize", run / "prepare"
    model_cfg = ModelConfig(embedding_size=16, encoder_hidden=16, decoder_hidden=32, dropout=0.0)
    cfg = TrainConfig(batch_tokens=400, accumulate=3, max_steps=4, valid_every=2, valid_bleu=False,
                      warmup_steps=1, precision="fp32", max_minutes=0)
    summary = run_train(model_cfg, cfg, tok, prep, tmp_path / "train", 1)
    assert summary["steps"] == 4
    history = [json.loads(line) for line in (tmp_path / "train" / "history.jsonl").read_text().splitlines()]
    assert [h["step"] for h in history] == [2, 4]


def test_retokenizing_into_the_same_folder_encodes_with_the_new_model(tmp_path: Path) -> None:
    import sentencepiece as spm

    text = "\n".join(f"verse {i} of the book of the law" for i in range(50)) + "\n"
    prepared = _prepared(tmp_path / "prepare", text, text)
    for vocab in (40, 60):  # the same model path, a different model each time
        tok = _tokenizer(tmp_path / "tok", prepared, vocab)
        sp = spm.SentencePieceProcessor(model_file=str(tok / "spm.src.model"))
        src_ids, _ = load_id_columns(tok / "ids" / "train")
        assert src_ids[7].tolist() == sp.encode("verse 7 of the book of the law")


def test_validation_searches_with_the_weights_a_fused_optimizer_just_changed(tokenized_run: Path) -> None:
    """Fused Adam updates the weights without moving their version counters, which the
    search step's cached tables watch; the validator drops them, so every validation
    scores the current weights (a stale cache once kept each dev BLEU at the first
    validation's tables)."""
    import copy

    from stages import artifacts
    from stages.model.fast import search_step
    from stages.train.validation import Validator

    run = tokenized_run.parent / "runs" / "tiny"
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(embedding_size=32, encoder_hidden=32, decoder_hidden=64, dropout=0.0), 200, 200)
    validate = Validator(run / artifacts.TOKENIZE_DIR, run / artifacts.PREPARE_DIR, TrainConfig(device="cpu"), "cpu")
    validate(model, None)  # builds the tables
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05, fused=True)
    versions = [p._version for p in model.parameters()]
    for p in model.parameters():
        p.grad = torch.randn_like(p)
    optimizer.step()
    assert [p._version for p in model.parameters()] == versions  # what the cache cannot see
    fresh = copy.deepcopy(model)
    search_step.forget_tables(fresh)
    src, lens = _padded([validate.src[i] for i in range(8)])
    validate(model, None)
    model.eval(), fresh.eval()  # validation leaves the model training
    with torch.inference_mode():
        prev = torch.full((8,), 2, dtype=torch.long)
        after, _ = model.step(prev, model.encode(src, lens))  # with the tables the validation left
        expected, _ = fresh.step(prev, fresh.encode(src, lens))
    assert torch.allclose(after, expected, atol=1e-5)


def _padded(seqs: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    from stages.decode.translation import pad_batch

    return pad_batch(seqs, "cpu")
