"""Config keys added after runs were made with s2s, and the value of each that
reproduces how s2s ran before the key existed.

A run folder records its config in stage fingerprints (the manifest) and in its training
state (resume). A run made before a key existed has neither the key nor its value there;
with the key at this value the run is the same as it was, so it stays current and can be
resumed. A leaf: it imports nothing.
"""

from __future__ import annotations

from typing import Any

# (section, key, value before the key existed), the newest first. Where the value is
# not the key's default (pad_multiple, output_vocab, tensorboard, replace_unk), the key
# changed what a default run does: a run made before it is stale under the defaults, as
# `s2s run` would redo it, and current under the earlier value.
LATER_KEYS: tuple[tuple[str, str, Any], ...] = (
    ("training", "context_margin", 0.0),
    ("model", "decoder_self_attention", False),
    ("data", "context_halves", False),
    ("decoding", "stopping", "bound"),
    ("data", "target_context", False),
    ("training", "coword_dropout", 0.0),
    ("training", "context_dropout", 0.0),
    ("training", "pad_multiple", 1),
    ("decoding", "shortlist_frequent", 100),
    ("decoding", "shortlist", 0),
    ("decoding", "output_vocab", "all"),
    ("training", "init_from", ""),
    ("tokenizer", "from_run", ""),
    ("training", "log_every", 50),
    ("training", "tensorboard", False),
    ("decoding", "replace_unk", False),
)
# Every config key that existed when LATER_KEYS began; any other key must be a later key
# (tests/test_later_keys.py checks it), or runs made before it would all count as stale.
FIRST_KEYS: frozenset[str] = frozenset(
    "data.train data.dev data.test data.hub data.hub_config data.columns data.src_lang data.tgt_lang "
    "data.src_column data.tgt_column data.dev_size data.normalize data.max_words data.max_ratio data.context "
    "tokenizer.model_type tokenizer.vocab_size tokenizer.joint tokenizer.character_coverage tokenizer.max_sentences "
    "model.cell model.embedding_size model.encoder_hidden model.encoder_layers model.bidirectional "
    "model.decoder_hidden model.decoder_layers model.attention model.input_feeding model.bridge model.dropout "
    "model.tie_embeddings model.share_embeddings model.init model.init_range model.recurrent_init "
    "training.batch_type training.batch_tokens training.batch_sentences training.accumulate training.epochs "
    "training.max_steps training.max_minutes training.optimizer training.lr training.schedule "
    "training.warmup_steps training.plateau_metric training.plateau_factor training.plateau_patience "
    "training.min_lr training.clip_norm training.clip_value training.label_smoothing training.valid_every "
    "training.patience training.early_stopping_metric training.keep_best training.valid_bleu training.max_len "
    "training.precision training.device training.threads "
    "decoding.beam_size decoding.length_penalty decoding.length_norm decoding.min_len decoding.no_repeat_ngram "
    "decoding.max_len_ratio decoding.max_len_extra decoding.batch_size decoding.max_input_tokens "
    "decoding.checkpoint decoding.device decoding.quantize decoding.stream_lines decoding.precision "
    "scoring.tokenize scoring.lowercase".split()
)


def earlier_forms(sections: dict[str, dict[str, Any]]) -> list[dict[str, dict[str, Any]]]:
    """`sections` (config sections by name) as runs made before each later key recorded
    them: without the newest key, then without the two newest, ... for as long as those
    keys hold their earlier value. The first is `sections` itself."""
    forms = [sections]
    for section, key, before in LATER_KEYS:
        last = forms[-1]
        if section not in last:
            continue
        if last[section].get(key, before) != before:
            break
        forms.append({**last, section: {k: v for k, v in last[section].items() if k != key}})
    return forms


def saved_or_earlier(section: str, key: str, saved: dict[str, Any]) -> Any:
    """The value a saved config section holds for `key`; for a later key that it lacks,
    the value it had in effect (None for any other missing key)."""
    if key in saved:
        return saved[key]
    return next((before for s, k, before in LATER_KEYS if (s, k) == (section, key)), None)
