"""A contrastive pronoun test for context models: does the previous sentence decide?

From a held-out parallel text (sentences in order), each example is a reference
translation and a contrast: the same sentence with one third-person pronoun's gender
swapped (Spanish `lo`/`la`, `los`/`las`, `ellos`/`ellas`), where the English source has
a gender-neutral pronoun (`it`, `they`, `them`) and the previous sentence's reference
has a noun of the pronoun's gender (a determiner of that gender marks one). When the
reference itself has no such noun before the pronoun (`previous_only`), the gender is
most likely decided by the previous sentence alone. A model passes an example when it
scores the reference above the contrast (teacher-forced log-probability); accuracy with
and without the previous sentence as context shows whether the model uses it.

This follows the contrastive evaluation of Sennrich (2017), "How grammatical is
character-level neural machine translation?", and the pronoun test sets built on it for
context models: Müller et al. (2018), ContraPro (English-German), and Voita et al.
(2018). ContraPro finds antecedents with a coreference tool; here the rule above stands
in for one, and a word counts as a verb (so that `la` before it is a clitic pronoun, not
the article) when the training targets put it more often after a clitic (`se`, `me`,
`le` ...) than after a determiner (`el`, `una`, `su` ...).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np
import torch

from stages.corpus.batching import collate
from stages.corpus.vocab import after_context, join_context, user_text
from stages.errors import ConfigError

# Per target language: each pronoun, its other-gender form, and the determiners that mark
# a noun of its own gender and number (a possible antecedent).
SWAPS = {
    "es": {
        "lo": ("la", ("el", "un", "este", "aquel", "del", "al")),
        "la": ("lo", ("la", "una", "esta", "aquella")),
        "los": ("las", ("los", "unos", "estos", "aquellos")),
        "las": ("los", ("las", "unas", "estas", "aquellas")),
        "ellos": ("ellas", ("los", "unos", "estos", "aquellos")),
        "ellas": ("ellos", ("las", "unas", "estas", "aquellas")),
    },
}
ALWAYS_PRONOUNS = {"es": {"ellos", "ellas"}}  # never an article
FEMININE = {"es": {"la", "las", "ellas"}}
CLITIC_MARKERS = {"es": {"se", "me", "te", "le", "les", "nos", "os"}}
DETERMINERS = {"es": {"el", "un", "una", "unos", "unas", "mi", "mis", "tu", "tus", "su", "sus", "este", "esta",
                      "estos", "estas", "aquel", "aquella", "nuestro", "nuestra", "vuestro", "vuestra"}}
NEUTER_AFTER = {"es": {"que", "cual", "mismo"}}  # `lo que`: the neuter article, no gender to swap
NEUTRAL_SOURCE = {"en": re.compile(r"\b(it|they|them)\b", re.IGNORECASE)}
WORD = re.compile(r"\w+", re.UNICODE)


@dataclass(frozen=True)
class Contrast:
    line: int  # the sentence's index in the text (0-based); line - 1 is its context
    pronoun: str  # as written in the reference
    source: str
    previous: str  # the previous source sentence
    reference: str
    previous_reference: str  # the previous sentence's reference (a target-context model's context)
    contrast: str  # the reference with the pronoun's gender swapped
    previous_only: bool  # no noun of the pronoun's gender before it in its own sentence


def verb_like(targets: Iterable[str], lang: str = "es") -> set[str]:
    """Lower-cased words the training targets put more often after a clitic pronoun than
    after a determiner: before them, `la`, `lo` ... are pronouns."""
    after_clitic: Counter[str] = Counter()
    after_determiner: Counter[str] = Counter()
    clitics, determiners = CLITIC_MARKERS[lang], DETERMINERS[lang]
    for line in targets:
        words = WORD.findall(line.lower())
        for prev, word in zip(words, words[1:]):
            if prev in clitics:
                after_clitic[word] += 1
            elif prev in determiners:
                after_determiner[word] += 1
    return {w for w, n in after_clitic.items() if n > after_determiner[w]}


def find_contrasts(sources: Sequence[str], references: Sequence[str], verbs: set[str],
                   src_lang: str = "en", tgt_lang: str = "es") -> list[Contrast]:
    """The examples of a text's consecutive (source, reference) sentences: at most one per
    sentence, its first pronoun that qualifies (module docstring). Raises ConfigError for
    a language pair without rules."""
    if tgt_lang not in SWAPS or src_lang not in NEUTRAL_SOURCE:
        raise ConfigError(f"contrastive pronouns: no rules for {src_lang}->{tgt_lang}; "
                          f"sources {sorted(NEUTRAL_SOURCE)}, targets {sorted(SWAPS)}")
    swaps, always, neuter = SWAPS[tgt_lang], ALWAYS_PRONOUNS[tgt_lang], NEUTER_AFTER[tgt_lang]
    found = []
    for i in range(1, len(sources)):
        if not NEUTRAL_SOURCE[src_lang].search(sources[i]):
            continue
        matches = list(WORD.finditer(references[i]))
        previous_words = set(WORD.findall(references[i - 1].lower()))
        for k, match in enumerate(matches):
            word = match.group().lower()
            if word not in swaps:
                continue
            following = matches[k + 1].group().lower() if k + 1 < len(matches) else ""
            if word not in always and (following not in verbs or following in neuter):
                continue
            other, marks = swaps[word]
            if not previous_words & set(marks):
                break
            previous_only = not {m.group().lower() for m in matches[:k]} & set(marks)
            swapped = other.capitalize() if match.group()[0].isupper() else other
            contrast = references[i][: match.start()] + swapped + references[i][match.end() :]
            found.append(Contrast(i, match.group(), sources[i], sources[i - 1], references[i], references[i - 1],
                                 contrast, previous_only))
            break
    return found


def controlled_pairs(rows: Iterable[Sequence[str]]) -> tuple[list[Contrast], list[Contrast]]:
    """A hand-built, gender-balanced pronoun test from rows of (context_en, context_es,
    sentence_en, reference, contrast), in twins whose sentences are the same and whose
    contexts hold nouns of opposite genders (`data/contrastive/agreement.tsv`): a model
    that ignores the context passes exactly half. Returns the examples twice: across
    sentences (the context is the previous sentence) and within one sentence (context
    and sentence joined by a comma), which tells whether a model can make the pronoun
    agree with its antecedent at all. The contexts end in a clause mark (`;`)."""
    across: list[Contrast] = []
    within: list[Contrast] = []
    for line, (context_en, context_es, sentence, reference, contrast) in enumerate(rows):
        pronoun = next(a for a, b in zip(WORD.findall(reference), WORD.findall(contrast)) if a != b)
        across.append(Contrast(line, pronoun, sentence, context_en, reference, context_es, contrast, True))
        en, es = context_en.rstrip(";:,"), context_es.rstrip(";:,")
        within.append(Contrast(line, pronoun, f"{en}, {sentence}", "", f"{es}, {reference}", "",
                               f"{es}, {contrast}", False))
    return across, within


def _model_source(example: Contrast, context: int, model_context: bool) -> str:
    if not model_context:
        return user_text(example.source)
    return join_context([example.previous] if context else [], example.source)


def _model_targets(example: Contrast, context: int, target_context: bool) -> tuple[str, str]:
    """(reference, contrast) as the model is scored on them: behind the previous
    sentence's reference and the separator for a target-context model."""
    if not target_context:
        return user_text(example.reference), user_text(example.contrast)
    previous = [example.previous_reference] if context else []
    return join_context(previous, example.reference), join_context(previous, example.contrast)


@torch.no_grad()
def contrastive_accuracy(model: torch.nn.Module, sp_src: object, sp_tgt: object, examples: Sequence[Contrast],
                         context: int, model_context: bool, device: str = "cpu", batch_size: int = 64,
                         target_context: bool = False, tgt_lang: str = "es") -> dict:
    """How often `model` scores the reference above its contrast: {"examples", "correct",
    "accuracy", "mean_margin"} (the mean of reference minus contrast log-probability, in
    nats), and the same for the `previous_only` examples under "previous_only" and for
    the examples whose reference pronoun is "feminine" or "masculine". A model that
    always prefers one gender passes all of that gender's examples and none of the
    other's, so "balanced_accuracy", the mean of the two genders' accuracies, is 0.5 for
    it whatever the mix of the set. The margins are sums over pieces, so they compare
    fairly only where the reference and its contrast have as many pieces:
    "unequal_pieces" counts the examples where they do not (a small tokenizer splits
    `lo` and `la` differently).
    `context` 1 gives a context model (`model_context`) the previous source sentence, 0
    the separator alone; a model without context gets the sentence alone. A model trained
    with `data.target_context` is scored on the reference and the contrast behind the
    previous sentence's reference (or the separator alone): the two differ only after it,
    so the margin is the sentence's, given the previous translation."""
    model.eval()
    margins: list[float] = []
    unequal = 0
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        src = [sp_src.encode(_model_source(e, context, model_context)) for e in chunk]  # type: ignore[attr-defined]
        src = [*src, *src]
        pairs = [_model_targets(e, context, target_context) for e in chunk]
        tgt = [sp_tgt.encode(r) for r, _ in pairs] + [sp_tgt.encode(c) for _, c in pairs]  # type: ignore[attr-defined]
        unequal += sum(len(r) != len(c) for r, c in zip(tgt[: len(chunk)], tgt[len(chunk) :]))
        batch = collate([np.array(s) for s in src], [np.array(t) for t in tgt]).to(device)
        scores = model.sequence_log_probs(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out)  # type: ignore[operator]
        margins += (scores[: len(chunk)] - scores[len(chunk) :]).tolist()
    subset = [m for m, e in zip(margins, examples) if e.previous_only]
    feminine = [e.pronoun.lower() in FEMININE[tgt_lang] for e in examples]
    genders = {name: _tally([m for m, f in zip(margins, feminine) if f == is_feminine])
               for name, is_feminine in (("feminine", True), ("masculine", False))}
    balanced = (round((genders["feminine"]["accuracy"] + genders["masculine"]["accuracy"]) / 2, 4)
                if all(g["examples"] for g in genders.values()) else None)
    return {**_tally(margins), "balanced_accuracy": balanced, "unequal_pieces": unequal,
            "previous_only": _tally(subset), **genders}


@torch.no_grad()
def context_gain(model: torch.nn.Module, sp_src: object, sp_tgt: object, sources: Sequence[str],
                 references: Sequence[str], target_context: bool = False, device: str = "cpu",
                 batch_size: int = 64, lines: Sequence[int] | None = None,
                 against: Sequence[int] | None = None) -> dict:
    """How much a context model's previous sentence raises the probability of the
    references of a text's consecutive sentences: conditional cross-mutual information,
    CXMI = mean over reference tokens of log p(y | x, C) - log p(y | x) (Bugliarello et
    al. 2020; Fernandes et al. 2021, "Measuring and Increasing Context Usage in
    Context-Aware Machine Translation"), in nats per token, with C the previous source
    sentence (and, for a `data.target_context` model, its reference in front of the
    target, whose own tokens are not counted) and "no context" the separator alone.
    Returns {"sentences", "tokens", "cxmi", "better"}, `better` the share of sentences
    whose reference scores higher with the context. Sentences 1 .. n-1 take part (0
    has no previous one), or those of `lines`; `sources` and `references` are user text.
    With `against`, the other side is not "no context" but sentence `against[i]` as
    sentence i's context (another sentence of the text): how much more a model draws on
    its own previous sentence than on one that does not belong there, the quantity the
    context-aware margin (`training.context_margin`) trains."""
    model.eval()
    gains: list[float] = []
    lengths: list[int] = []
    taking = [i for i in (range(1, len(sources)) if lines is None else lines) if i > 0]
    for start in range(0, len(taking), batch_size):
        rows = taking[start : start + batch_size]
        src = [sp_src.encode(join_context([sources[i - 1]], sources[i])) for i in rows]  # type: ignore[attr-defined]
        other = [[] if against is None else [against[i]] for i in rows]
        src += [sp_src.encode(join_context([sources[k] for k in o], sources[i]))  # type: ignore[attr-defined]
                for i, o in zip(rows, other)]
        if target_context:
            tgt = [sp_tgt.encode(join_context([references[i - 1]], references[i])) for i in rows]  # type: ignore[attr-defined]
            tgt += [sp_tgt.encode(join_context([references[k] for k in o], references[i]))  # type: ignore[attr-defined]
                    for i, o in zip(rows, other)]
        else:
            tgt = [sp_tgt.encode(user_text(references[i])) for i in rows] * 2  # type: ignore[attr-defined]
        skip = [after_context(t) for t in tgt]  # the previous reference and the separator
        batch = collate([np.array(s) for s in src], [np.array(t) for t in tgt]).to(device)
        scores = model.sequence_log_probs(batch.src, batch.src_lens, batch.tgt_in, batch.tgt_out,  # type: ignore[operator]
                                          torch.tensor(skip, device=batch.src.device)).tolist()
        half = len(rows)
        gains += [scores[j] - scores[half + j] for j in range(half)]
        lengths += [len(tgt[j]) - skip[j] + 1 for j in range(half)]  # the sentence's pieces and EOS
    tokens = sum(lengths)
    return {"sentences": len(gains), "tokens": tokens, "cxmi": round(sum(gains) / max(tokens, 1), 5),
            "better": round(sum(g > 0 for g in gains) / len(gains), 4) if gains else 0.0}


def _tally(margins: list[float]) -> dict:
    """Counts of positive margins (reference minus contrast log-probability) and their mean."""
    correct = sum(m > 0 for m in margins)
    return {"examples": len(margins), "correct": correct,
            "accuracy": round(correct / len(margins), 4) if margins else 0.0,
            "mean_margin": round(sum(margins) / len(margins), 4) if margins else 0.0}
