"""Stage 4, translate: decode whole files with a trained checkpoint.

Input is sorted by length into batches, decoded, and put back in source order; one
output line per input line, empty lines kept empty.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
import unicodedata
from pathlib import Path
from typing import Any, Callable, ContextManager, Optional

import sentencepiece as spm
import torch

from stages import artifacts
from stages.corpus.token_ids import load_id_columns, output_pieces, writes_separator
from stages.corpus.vocab import (
    CONTEXT_SEP,
    PAD_ID,
    SEP_ID,
    UNK_ID,
    after_context,
    has_words,
)
from stages.decode.config import DecodeConfig, precision_problem
from stages.decode.search import (
    CharBudget,
    Constraints,
    Hypothesis,
    beam_search,
    greedy_search,
)
from stages.decode.shortlist import Shortlist, learn_shortlist
from stages.decode.unknowns import (
    describe,
    piece_texts,
    restore_unknowns,
    unknown_characters,
    unknown_words,
)
from stages.devices import device_type, pick_device
from stages.errors import ConfigError
from stages.files import read_lines_strict, write_lines_atomic
from stages.model.checkpoint import check_tokenizer, load_checkpoint
from stages.model.fast import cpu_kernels, record, search_step
from stages.model.seq2seq import Seq2Seq

log = logging.getLogger(__name__)


def _run_training_ids(folder: Path) -> Path:
    """Where the training ids of the run a checkpoint folder sits in (`<run>/train/<name>/`)
    are: `<run>/tokenize/ids/train/`, if it is such a folder."""
    return artifacts.split_ids(folder.parent.parent / artifacts.TOKENIZE_DIR, "train")


def _in_a_run(folder: Path) -> bool:
    return folder.parent.name == artifacts.TRAIN_DIR and _run_training_ids(folder).is_dir()


def checkpoint_output_pieces(folder: Path, meta: dict[str, Any]) -> Optional[list[int]]:
    """The target pieces a checkpoint's model was trained to produce: from its meta.json,
    or, for a checkpoint written before s2s recorded them, from the training ids of the
    run it sits in (`<run>/train/<name>/`); None when neither is there."""
    if isinstance(meta.get("output_pieces"), list):
        return [int(i) for i in meta["output_pieces"]]
    if not _in_a_run(folder):
        return None
    return output_pieces(load_id_columns(_run_training_ids(folder))[1])


def run_shortlist(folder: Path, meta: dict[str, Any], cfg: DecodeConfig) -> Optional[Shortlist]:
    """The lexical shortlist `decoding.shortlist` asks for, learned from the training
    ids of the run the checkpoint sits in (`<run>/train/<name>/`); None when it is off.
    A checkpoint folder outside a run has no training ids: ConfigError."""
    if not cfg.shortlist:
        return None
    ids = _run_training_ids(folder)
    if not _in_a_run(folder):
        raise ConfigError(f"decoding.shortlist={cfg.shortlist} learns from the run's training ids, and {folder} is not "
                          f"in a run with them ({ids} is missing); use a run's checkpoint or set decoding.shortlist=0")
    for key, value in (("shortlist", cfg.shortlist), ("shortlist_frequent", cfg.shortlist_frequent)):
        if value > int(meta["tgt_vocab"]):
            raise ConfigError(f"decoding.{key}={value}: must be at most the target vocabulary ({meta['tgt_vocab']} "
                              f"pieces); a shortlist of 20 to 100 translations per source piece is usual")
    src, tgt = load_id_columns(ids)
    return learn_shortlist(src, tgt, int(meta["src_vocab"]), int(meta["tgt_vocab"]), cfg.shortlist_frequent,
                           cfg.shortlist)


def joint_output_pieces(lists: list[Optional[list[int]]]) -> Optional[list[int]]:
    """What an ensemble can produce: the union of its models' pieces (None: all)."""
    if not lists or any(p is None for p in lists):
        return None
    return sorted(set().union(*lists))  # type: ignore[arg-type]


def prepare_for_inference(model: Seq2Seq, cfg: DecodeConfig, device: str,
                          output_pieces: Optional[list[int]] = None,
                          shortlist: Optional[Shortlist] = None) -> Seq2Seq:
    """Apply `decoding.output_vocab` and `decoding.quantize`.

    output_vocab=target restricts the output layer to `output_pieces` (the pieces of
    the training targets, `checkpoint_output_pieces`): search scores V' pieces instead
    of the whole SentencePiece vocabulary (`Seq2Seq.restrict_output`); with None it
    scores them all. `shortlist` (`run_shortlist`) narrows that per batch. quantize=int8:
    the search step multiplies the decoder's weights in int8 (`Seq2Seq.int8_search`,
    stages/model/fast/int8.py; CPU only), batch-invariant like fp32. Speed and BLEU of
    both: docs/decoding.md.
    Also refuses `decoding.precision: fp16` on the CPU, where PyTorch's recurrent layers
    have no half-precision kernels.
    """
    problem = precision_problem(cfg, device)
    if problem:
        raise ConfigError(problem)
    restricted = cfg.output_vocab == "target" and output_pieces is not None
    model.restrict_output(torch.tensor(output_pieces, dtype=torch.long) if restricted else None)
    if cfg.quantize != "none" and device != "cpu":
        raise ConfigError(f"decoding.quantize={cfg.quantize} runs on the CPU only; set decoding.device=cpu")
    model.int8_search = cfg.quantize == "int8"
    model.target_context = writes_separator(output_pieces)
    model.shortlist = shortlist if cfg.shortlist else None
    return model


def pad_batch(seqs: list[list[int]], device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad id lists into (B, S) plus lengths (B,)."""
    lens = torch.tensor([len(s) for s in seqs], dtype=torch.long)
    out = torch.full((len(seqs), int(lens.max())), PAD_ID, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out.to(device), lens.to(device)


def translate_ids(model: Seq2Seq, seqs: list[list[int]], cfg: DecodeConfig, device: str) -> list[list[int]]:
    """Translate id sequences (non-empty) in length-sorted batches; results in input order."""
    return [n[0].tokens for n in translate_ids_nbest(model, seqs, cfg, device, 1)]


def translate_ids_nbest(
    model: Seq2Seq, seqs: list[list[int]], cfg: DecodeConfig, device: str, n_best: int,
    keep_attention: bool = False, budget: Optional[CharBudget] = None,
) -> list[list[Hypothesis]]:
    """The `n_best` best hypotheses of each (non-empty) id sequence, in input order;
    with `budget` (`piece_chars` over the whole target vocabulary, a limit per
    sequence), each within its sequence's character limit."""
    order = sorted(range(len(seqs)), key=lambda i: len(seqs[i]), reverse=True)
    results: list[list[Hypothesis]] = [[] for _ in seqs]
    rules = Constraints(min_len=cfg.min_len, no_repeat_ngram=cfg.no_repeat_ngram)
    alpha = -1.0 if cfg.length_norm == "average" else cfg.length_penalty
    with _autocast(cfg.precision, device):
        for start in range(0, len(order), cfg.batch_size):
            _search_chunk(model, seqs, order[start : start + cfg.batch_size], cfg, device, n_best,
                          keep_attention, rules, alpha, results, budget)
    return results


def _autocast(precision: str, device: str) -> ContextManager[Any]:
    """bf16/fp16 autocast for inference (weights stay fp32). fp32 adds no context, so a
    caller's own autocast (training's validation) stays in force."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type(device), dtype=dtype)


def _search_chunk(
    model: Seq2Seq, seqs: list[list[int]], chunk: list[int], cfg: DecodeConfig, device: str, n_best: int,
    keep_attention: bool, rules: Constraints, alpha: float, results: list[list[Hypothesis]],
    budget: Optional[CharBudget] = None,
) -> None:
    """Search one batch of sentences (indices into `seqs`) and store their n-best lists."""
    sources = [seqs[i] for i in chunk]
    src, lens = pad_batch(sources, device)
    lexical, base = getattr(model, "shortlist", None), getattr(model, "output_pieces", None)
    if lexical is not None:  # this batch's shortlist, within the model's output pieces
        with torch.inference_mode():  # as in the search
            # The step tables' rows over all the output pieces, built once (for each member
            # of an ensemble): every batch's shortlist lies within them, so a batch
            # rebuilds only its output rows.
            for member in getattr(model, "members", [model]):
                if isinstance(member, Seq2Seq) and search_step.applies(member):
                    search_step.step_tables(member, output_rows=False)
        model.restrict_output(lexical.pieces(sources, base).to(src.device))  # type: ignore[operator]
    try:
        if budget is not None:  # the chunk's limits, over the pieces the search runs on
            pieces: Optional[torch.Tensor] = getattr(model, "output_pieces", None)
            chars = budget.piece_chars if pieces is None else budget.piece_chars.index_select(0, pieces.cpu())
            budget = CharBudget(chars.to(src.device), [budget.limits[i] for i in chunk],
                                None if budget.unknown is None else [budget.unknown[i] for i in chunk])
        _search_restricted(model, src, lens, chunk, cfg, n_best, keep_attention, rules, alpha, results, budget)
    finally:
        if lexical is not None:
            model.restrict_output(base)  # type: ignore[operator]


def _search_restricted(
    model: Seq2Seq, src: torch.Tensor, lens: torch.Tensor, chunk: list[int], cfg: DecodeConfig, n_best: int,
    keep_attention: bool, rules: Constraints, alpha: float, results: list[list[Hypothesis]],
    budget: Optional[CharBudget] = None,
) -> None:
    """Search one padded batch and store its n-best lists as vocabulary ids. A model
    trained with `data.target_context` first translates the previous lines: its output
    may not end before the separator, has the length allowance `max_len_extra` for each
    of its two parts, and only what follows the separator is kept (nothing, if the
    length limit came first)."""
    pieces: Optional[torch.Tensor] = getattr(model, "output_pieces", None)
    sep = separator_index(model)
    extra = cfg.max_len_extra * (2 if sep >= 0 else 1)
    if cfg.beam_size <= 1:
        greedy = greedy_search(model, src, lens, cfg.max_len_ratio, extra, rules, keep_attention, budget, sep)
        nbest = [[h] for h in greedy]
    else:
        nbest = beam_search(
            model, src, lens, cfg.beam_size, alpha, cfg.max_len_ratio, extra,
            n_best=min(n_best, cfg.beam_size), constraints=rules, keep_attention=keep_attention, budget=budget,
            sep=sep, stopping=cfg.stopping,
        )
    table = pieces.tolist() if pieces is not None else None  # the search ran over the output pieces' indices
    unfinished = 0
    for hyps in nbest:
        for hyp in hyps:
            if table is not None:
                hyp.tokens = [table[t] for t in hyp.tokens]
            start = after_context(hyp.tokens)  # a target-context model's translation of the previous lines
            if sep >= 0 and not start:
                start, unfinished = len(hyp.tokens), unfinished + 1
            if start:
                hyp.tokens, hyp.attention = hyp.tokens[start:], hyp.attention[start:]
    if unfinished:
        log.warning("%d hypotheses reached the length limit before the context separator and are left empty; "
                    "raise decoding.max_len_ratio", unfinished)
    for i, hyps in zip(chunk, nbest):
        results[i] = hyps


def separator_index(model: Any) -> int:
    """For a model trained with `data.target_context` (`prepare_for_inference` marks
    it), the context separator's index among the pieces its search scores; -1 for other
    models, which never write it."""
    if not getattr(model, "target_context", False):
        return -1
    pieces: Optional[torch.Tensor] = getattr(model, "output_pieces", None)
    if pieces is None:
        return SEP_ID
    at = int(torch.searchsorted(pieces.cpu(), SEP_ID))  # pieces are sorted
    return at if at < len(pieces) and int(pieces[at]) == SEP_ID else -1


def translate_lines(
    model: Seq2Seq,
    sp_src: spm.SentencePieceProcessor,
    sp_tgt: spm.SentencePieceProcessor,
    lines: list[str],
    cfg: DecodeConfig,
    device: str,
    where: str = "input",
) -> list[str]:
    """Translate model inputs; empty or blank lines come back empty. User text gets
    there through `stages.corpus.vocab` (`with_context` or `without_context`), so that
    a reserved symbol typed in it never becomes a control token."""
    return [n[0]["text"] if n else "" for n in translate_lines_nbest(model, sp_src, sp_tgt, lines, cfg, device, where, 1)]


def _in_parts(lines: list[str], parts: dict[int, list[str]], search: Callable[[list[str]], list[list[dict[str, Any]]]],
              where: str, first_line: int, limit: int) -> list[list[dict[str, Any]]]:
    """Translate `lines` with those in `parts` replaced by their parts (`search` over the
    flat list), each such line one hypothesis: its parts' best texts joined by spaces,
    scores and log-probabilities summed."""
    flat: list[str] = []
    spans: list[tuple[int, int]] = []
    for number, line in enumerate(lines):
        pieces = parts.get(number, [line])
        if number in parts:
            log.warning("%s:%d: over decoding.max_input_tokens=%d pieces; translated in %d parts cut at sentence "
                        "ends", where, number + first_line, limit, len(pieces))
        spans.append((len(flat), len(flat) + len(pieces)))
        flat += pieces
    found = search(flat)
    out: list[list[dict[str, Any]]] = []
    for number, (start, end) in enumerate(spans):
        if number not in parts:
            out.append(found[start])
            continue
        best = [hyps[0] for hyps in found[start:end] if hyps]
        out.append([{"text": " ".join(h["text"] for h in best if h["text"]),
                     "score": round(sum(h["score"] for h in best), 4),
                     "log_prob": round(sum(h["log_prob"] for h in best), 4)}])
    return out


_SENTENCE_END = re.compile(r"(?<=[.!?;:\u2026])\s+")
_CLAUSE_END = re.compile(r"(?<=,)\s+")


def _parts_of_long_lines(sp_src: spm.SentencePieceProcessor, texts: list[str], long: list[int],
                         limit: int) -> dict[int, list[str]]:
    """For each line of `texts` numbered in `long` (over `limit` pieces), the model
    inputs of its parts: its sentence cut at sentence ends, then commas, then between
    words, packed greedily into parts within the limit, each behind the line's context (a
    context that leaves the sentence under half the limit is dropped, the separator
    kept). A line that cannot be cut so (one word over the limit) is left out: it is
    truncated as before."""
    out: dict[int, list[str]] = {}
    for number in long:
        before, sep, sentence = texts[number].rpartition(CONTEXT_SEP)
        prefix = f"{before}{sep} " if sep else ""
        if sep and len(sp_src.encode(prefix)) > limit // 2:
            prefix = f"{CONTEXT_SEP} "

        def fits(part: str) -> bool:
            return len(sp_src.encode(prefix + part)) <= limit

        units: list[str] = []
        for chunk in _SENTENCE_END.split(sentence.strip()):
            for clause in ([chunk] if fits(chunk) else _CLAUSE_END.split(chunk)):
                units += [clause] if fits(clause) else clause.split()
        if not all(fits(unit) for unit in units):
            continue
        packed: list[str] = []
        for unit in units:
            if packed and fits(f"{packed[-1]} {unit}"):
                packed[-1] = f"{packed[-1]} {unit}"
            else:
                packed.append(unit)
        out[number] = [prefix + part for part in packed]
    return out


def translate_lines_nbest(
    model: Seq2Seq,
    sp_src: spm.SentencePieceProcessor,
    sp_tgt: spm.SentencePieceProcessor,
    lines: list[str],
    cfg: DecodeConfig,
    device: str,
    where: str = "input",
    n_best: int = 1,
    alignments: bool = False,
    first_line: int = 1,
    max_chars: Optional[list[int]] = None,
    warned: Optional[set[tuple[str, str]]] = None,
) -> list[list[dict[str, Any]]]:
    """Per line, its best hypotheses as {text, score, log_prob}; [] for an empty line.
    A line without a letter ("...", "♪", "3:16", "—") is not searched: it comes back as
    it is, spaces included, as the one hypothesis, with score and log_prob 0 (its context, if any, left
    out).

    The hypotheses of a line are distinct texts: the search keeps all `beam_size`
    finished ones (for `n_best` above 1), and of those that read the same (another
    segmentation into pieces, or for a `data.target_context` model another translation
    of the previous lines) only the best-scoring one stays, so a line may have fewer
    than `n_best`.

    With `alignments`, each hypothesis also holds `source_pieces`, `target_pieces` and
    `attention` (one row per target piece, one column per source piece). With
    `max_chars` (one limit per line), each line's hypotheses grow only while their text
    stays within its limit in characters (`CharBudget`, `piece_chars`). `warned` (a set
    kept across calls) limits the warning about unknown characters to new ones.

    A line of more than `decoding.max_input_tokens` pieces is translated in parts cut at
    sentence ends (then at commas, then between words), each within the limit and behind
    the line's context, and comes back as one hypothesis: the parts' best translations
    joined by spaces, their scores and log-probabilities summed, no alignments. With
    `max_chars` (a subtitle cue's box) such a line is cut to the limit instead.
    """
    texts = [" ".join(line.split()) for line in lines]
    encoded = sp_src.encode(texts)
    long = [i for i, ids in enumerate(encoded) if len(ids) > cfg.max_input_tokens]
    parts = _parts_of_long_lines(sp_src, texts, long, cfg.max_input_tokens) if long and max_chars is None else {}
    if parts:  # the parts all fit: this recursion goes one level deep
        return _in_parts(lines, parts, lambda flat: translate_lines_nbest(
            model, sp_src, sp_tgt, flat, cfg, device, where, n_best, alignments, first_line, None, warned),
            where, first_line, cfg.max_input_tokens)
    todo = []
    for number, ids in enumerate(encoded, start=1):
        if len(ids) > cfg.max_input_tokens:
            log.warning(
                "%s:%d: %d tokens, truncated to decoding.max_input_tokens=%d",
                where, number + first_line - 1, len(ids), cfg.max_input_tokens,
            )
            encoded[number - 1] = ids[: cfg.max_input_tokens]
        if encoded[number - 1]:
            todo.append(number - 1)
    outputs: list[list[dict[str, Any]]] = [[] for _ in lines]
    copied = [i for i in todo if not has_words(_sentence(texts[i]))]
    for i in copied:
        outputs[i] = [{"text": _as_given(lines[i]), "score": 0.0, "log_prob": 0.0}]
        if alignments:
            outputs[i][0].update(source_pieces=[sp_src.id_to_piece(t) for t in encoded[i]], target_pieces=[],
                                 attention=[])
    todo = sorted(set(todo) - set(copied))
    spans = _unknown_spans(sp_src, encoded, texts, todo, cfg, where, warned)
    attend = [i for i in todo if alignments or spans[i] is not None]  # restoring unknowns needs attention
    plain = [i for i in todo if not (alignments or spans[i] is not None)]
    found: dict[int, list[Hypothesis]] = {}
    chars = None if max_chars is None else piece_chars(sp_tgt)
    for rows, keep in ((attend, True), (plain, False)):
        budget = None if chars is None else _char_budget(chars, [max_chars[i] for i in rows],  # type: ignore[index]
                                                         [spans[i] for i in rows], [encoded[i] for i in rows],
                                                         cfg.replace_unk)
        searched = n_best if n_best == 1 else max(n_best, cfg.beam_size)  # spares for the texts that repeat
        found.update(zip(rows, translate_ids_nbest(model, [encoded[i] for i in rows], cfg, device, searched, keep,
                                                   budget)))
    for i in todo:
        hyps, texts = [], []
        for hyp in found[i]:  # best first: the best of each text stays
            text = _text(sp_tgt, hyp, encoded[i], spans[i])
            if text not in texts:
                hyps.append(hyp)
                texts.append(text)
        outputs[i] = [
            {"text": text, "score": round(h.score, 4), "log_prob": round(h.log_prob, 4)}
            for h, text in zip(hyps[:n_best], texts)
        ]
        if alignments:
            for out, h in zip(outputs[i], hyps):
                out["source_pieces"] = [sp_src.id_to_piece(t) for t in encoded[i]]
                out["target_pieces"] = [sp_tgt.id_to_piece(t) for t in h.tokens]
                out["attention"] = [[round(w, 4) for w in row] for row in h.attention]
    return outputs


def _sentence(text: str) -> str:
    """A model input without its context (what follows the last separator)."""
    return text.rsplit(CONTEXT_SEP, 1)[-1].strip()


def _as_given(line: str) -> str:
    """A model input without its context, spaces and all: the line as the user wrote it
    (`join_context` puts one space after the separator), without a line end (a line read
    from a file object keeps its newline; a translated one never has one)."""
    before, sep, after = line.rpartition(CONTEXT_SEP)
    return (after[1:] if sep and after.startswith(" ") else after).rstrip("\r\n")


def piece_chars(sp_tgt: spm.SentencePieceProcessor) -> torch.Tensor:
    """(V,) the characters each target piece adds to a translation's text: its length,
    the word-start marker counting one (the space before the word); 0 for the special
    tokens and the context separator, 3 for the unknown piece (written " ⁇ ";
    `decoding.replace_unk` may put a longer source word in its place)."""
    chars = torch.tensor([3 if sp_tgt.is_unknown(i) else 0 if sp_tgt.is_control(i) else len(sp_tgt.id_to_piece(i))
                          for i in range(sp_tgt.get_piece_size())], dtype=torch.long)
    if SEP_ID < len(chars):
        chars[SEP_ID] = 0  # the context separator is never part of a translation's text
    return chars


def _unknown_spans(
    sp_src: spm.SentencePieceProcessor, encoded: list[list[int]], texts: list[str], todo: list[int],
    cfg: DecodeConfig, where: str, warned: Optional[set[tuple[str, str]]] = None,
) -> list[Optional[list[str]]]:
    """Per line, the text of each source piece where the line holds unknown pieces
    (else None); warns once about the characters the tokenizer does not know (with
    `warned`, the (where, character) pairs already warned about: only about new ones)."""
    spans: list[Optional[list[str]]] = [None] * len(texts)
    lost = 0
    for i in todo:
        if UNK_ID in encoded[i]:
            # SentencePiece reads the text NFKC-normalised (its nmt_nfkc rule): align the pieces with that
            normal = unicodedata.normalize("NFKC", texts[i])
            spans[i] = piece_texts(encoded[i], [sp_src.id_to_piece(t) for t in encoded[i]], normal)
            lost += spans[i] is None
    if lost:
        log.warning("%s: %d line(s) hold characters the tokenizer never saw that could not be located in the "
                    "text; they are left out of the translation", where, lost)
    characters = unknown_characters(spans, encoded)
    if warned is not None:
        characters = [c for c in characters if (where, c) not in warned]
        warned.update((where, c) for c in characters)
    if characters:
        lines = sum(s is not None for s in spans)
        what = ("copied into the translation by attention (decoding.replace_unk)" if cfg.replace_unk else
                "left out of the translation; set decoding.replace_unk: true to copy them")
        log.warning("%s: %d line(s) hold %s the tokenizer never saw; they are %s", where, lines,
                    describe(characters), what)
    return spans if cfg.replace_unk else [None] * len(texts)


def _char_budget(chars: torch.Tensor, limits: list[int], spans: list[Optional[list[str]]],
                 encoded: list[list[int]], replace_unk: bool) -> CharBudget:
    """The character budget of lines with `limits`. Under `decoding.replace_unk` every
    unknown source word of a line comes back in its translation (`restore_unknowns`),
    taken by an unknown target piece or inserted: its room (a space and the word) is kept
    out of the line's limit, and each unknown target piece costs a space and the line's
    longest unknown word. That counts a word twice when an unknown piece takes it, so a
    line with unknown words gets a shorter translation than it might, never one over its
    limit (unless its unknown words alone pass it)."""
    if not replace_unk or all(s is None for s in spans):
        return CharBudget(chars, limits)
    words = [[] if s is None else unknown_words(ids, s, after_context(ids)) for s, ids in zip(spans, encoded)]
    return CharBudget(chars, [max(0, limit - sum(1 + len(w) for w in line)) for limit, line in zip(limits, words)],
                      [max([int(chars[UNK_ID])] + [1 + len(w) for w in line]) for line in words])


def _text(sp_tgt: spm.SentencePieceProcessor, hyp: Hypothesis, source: list[int],
          spans: Optional[list[str]]) -> str:
    """The hypothesis as text: single spaces, none at either end."""
    if spans is None:
        text = str(sp_tgt.decode(hyp.tokens))
    else:
        pieces = ["" if sp_tgt.is_control(t) else sp_tgt.id_to_piece(t) for t in hyp.tokens]  # as decode drops them
        text = restore_unknowns(pieces, hyp.tokens, hyp.attention, source, spans,
                                after_context(source))  # a context model's previous lines are not this line
    return " ".join(text.split())


def run_translate(
    cfg: DecodeConfig, train_dir: Path, tokenize_dir: Path, prepare_dir: Path, out_dir: Path
) -> dict[str, Any]:
    """Translate the prepared test split with the chosen checkpoint."""
    ckpt = train_dir / cfg.checkpoint
    check_tokenizer(ckpt, tokenize_dir)
    device = pick_device(cfg.device)
    model, sp_src, sp_tgt, meta = load_checkpoint(ckpt, device)
    model = prepare_for_inference(model, cfg, device, checkpoint_output_pieces(ckpt, meta),
                                  run_shortlist(ckpt, meta, cfg))
    src_path = artifacts.split_text(prepare_dir, "test", artifacts.SRC_SUFFIX)
    lines = read_lines_strict(src_path)
    record.reset()
    start = time.perf_counter()
    hyps = translate_lines(model, sp_src, sp_tgt, lines, cfg, device, where=str(src_path))
    seconds = time.perf_counter() - start
    write_lines_atomic(out_dir / artifacts.TEST_HYP, hyps)
    return {
        "sentences": len(lines),
        "seconds": round(seconds, 2),
        "sentences_per_s": round(len(lines) / max(seconds, 1e-9), 1),
        "checkpoint_step": meta.get("step"),
        "paths": {"cpu_kernels": cpu_kernels.status(), "ran": record.tally()},
    }
