"""The Python API: load a trained model once, then translate text and subtitle files
from your own code. Every name a user imports is in `__all__` here::

    from pipeline.api import Translator

    translator = Translator.load("runs/default")          # a run folder, name or config
    translator.translate(["In the beginning was the Word."])
    translator.translate_nbest(["And God said"], 3)       # scored alternatives

The `s2s translate --run`, `s2s subtitle` and `s2s serve` commands are thin users of
`Translator`. Errors are `S2SError`s (`ConfigError` for a bad option, `ArtifactError`
for a missing or damaged run, `InputDataError` for bad input) whose message names the
value and the fix.
"""

from __future__ import annotations

import dataclasses
import json
import math
import numbers
import threading
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import (
    Any,
    Callable,
    Iterable,
    Iterator,
    Optional,
    Sequence,
    Union,
    overload,
)

from pipeline.config import RunConfig, apply_overrides, build_section, validate
from pipeline.runs import checkpoint_folder, find_run
from stages import artifacts
from stages.corpus.vocab import CONTEXT_SEP, with_context, without_context
from stages.decode.config import DecodeConfig, ScoreConfig
from stages.decode.ensemble import Ensemble, check_same_vocabulary
from stages.decode.translation import (
    checkpoint_output_pieces,
    joint_output_pieces,
    prepare_for_inference,
    run_shortlist,
    translate_lines_nbest,
)
from stages.devices import pick_device
from stages.errors import (
    ArtifactError,
    ConfigError,
    InputDataError,
    OutputError,
    S2SError,
)
from stages.model.checkpoint import load_checkpoint, read_meta
from stages.subtitles.formats import (
    Format,
    SubtitleDocument,
    decode_subtitle_bytes,
    detect_format,
    output_encoding,
    parse_subtitles,
    render,
)
from stages.subtitles.norms import norms_for
from stages.subtitles.text import strip_markup
from stages.subtitles.translation import SubtitleConfig, translate_document

__all__ = [
    "Translator", "Hypothesis", "SubtitleTranslation",
    "S2SError", "ConfigError", "ArtifactError", "InputDataError", "OutputError",
]


@dataclass(frozen=True)
class Hypothesis:
    """One translation of one line, from an n-best list (best first).

    `score` is what the search ranks by: the log-probability under the length penalty
    (`decoding.length_penalty`, GNMT's, Wu et al. 2016); `log_prob` is the plain sum of
    the pieces' natural-log probabilities. With alignments, `attention` has one row per
    target piece and one column per source piece, each row summing to 1.
    """

    text: str
    score: float
    log_prob: float
    source_pieces: Optional[list[str]] = None
    target_pieces: Optional[list[str]] = None
    attention: Optional[list[list[float]]] = None

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready; the alignment keys only when they were asked for."""
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass(frozen=True)
class SubtitleTranslation:
    """A translated subtitle file: `text` in `format`, to be written as `encoding`
    (`data` holds those bytes); `cues` has one row per cue (`number`, `start` and `end`
    in milliseconds, `source` and `translation` as text lines); `report` is the
    compliance report that `s2s subtitle` writes (counts and cue numbers over the limits)."""

    text: str
    format: str
    encoding: str
    cues: list[dict[str, Any]]
    report: dict[str, Any] = field(repr=False)

    @property
    def data(self) -> bytes:
        return self.text.encode(self.encoding)


DAMAGED_RUN = "the run folder is damaged: run its config again (s2s run CONFIG) to rewrite it, or restore it from a copy"


def saved_section(run_dir: Path, section: str) -> dict[str, Any]:
    """One section of the config the run was made with. A bare checkpoint folder holds
    the `data` keys translation needs (languages, context) in its meta.json ({} for a
    folder written before it did, and for the other sections)."""
    saved = run_dir / artifacts.RESOLVED_CONFIG
    if not saved.exists() and (run_dir / artifacts.MANIFEST).exists():  # a run folder always holds it
        raise ArtifactError(f"{saved}: missing, so the run's settings are not known; {DAMAGED_RUN}")
    if not saved.exists():
        if section != "data" or not (run_dir / artifacts.CKPT_META).exists():
            return {}
        return dict(read_meta(run_dir).get("data", {}))  # read_meta checks that it is a mapping
    try:
        config = json.loads(saved.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{saved}: not valid JSON ({exc}); {DAMAGED_RUN}") from exc
    value = config.get(section) if isinstance(config, dict) else None  # s2s writes every section
    if not isinstance(value, dict):
        raise ArtifactError(f"{saved}: no {section} section in it; {DAMAGED_RUN}")
    return dict(value)


def _trained_context(folder: Path, bare: bool, asked: Any) -> int:
    """The `data.context` a run or checkpoint folder was trained with. A bare folder
    written before checkpoints recorded it cannot tell: the `context` asked for is
    taken at its word (none asked: no context)."""
    data = saved_section(folder, "data")
    if "context" in data or not bare:
        return int(data.get("context", 0))
    return asked if isinstance(asked, int) and not isinstance(asked, bool) and asked > 0 else 0


def context_size(run_dir: Path, trained: int, asked: Optional[int]) -> tuple[int, bool]:
    """(previous sentences to give the model, whether it is a context model), for a run
    trained with `data.context: trained`."""
    if asked is not None and (isinstance(asked, bool) or not isinstance(asked, int) or asked < 0):
        raise ConfigError(f"context={asked!r}: give a whole number, 0 (none) or more previous sentences")
    if asked and not trained:
        raise ConfigError(
            f"context={asked}: {run_dir} was trained without context (data.context: 0); "
            f"train a run with data.context: {asked} for context, or leave out context"
        )
    if asked is not None and asked > trained > 0:
        raise ConfigError(
            f"context={asked}: {run_dir} was trained with data.context: {trained} previous sentence(s); "
            f"give 0 to {trained}, or train a run with data.context: {asked}"
        )
    return (trained if asked is None else asked), bool(trained)


def decode_config(run_dir: Path, overrides: Sequence[str] = (), **options: Any) -> DecodeConfig:
    """The run's own decoding section, then `decoding.KEY=VALUE` overrides, then options
    (DecodeConfig fields; None leaves a key as it is), all checked as a config is."""
    return _section_config(DecodeConfig, "decoding", saved_section(run_dir, "decoding"), overrides,
                           "a trained run's translations", options)


def score_config(overrides: Sequence[str] = ()) -> ScoreConfig:
    """The scoring section for scoring two files: defaults, then `scoring.KEY=VALUE`
    overrides, checked as a config is."""
    return _section_config(ScoreConfig, "scoring", {}, overrides,
                           "scoring two files (scoring.tokenize, scoring.lowercase)", {})


def _section_config(cls: Any, section: str, raw: dict[str, Any], overrides: Sequence[str], purpose: str,
                    options: dict[str, Any]) -> Any:
    """One config section: `raw`, then `section.KEY=VALUE` overrides (any other key is
    refused: only this section applies to `purpose`), then options (None leaves a key),
    checked as a config is."""
    for item in overrides:
        if not item.startswith(f"{section}."):
            raise ConfigError(f"--set {item!r}: only {section}.* keys apply to {purpose}")
    raw = apply_overrides({section: raw}, list(overrides))[section]
    raw.update({key: value for key, value in options.items() if value is not None})
    cfg = build_section(cls, raw, section)
    problems = validate(RunConfig(**{section: cfg}))
    if problems:
        raise ConfigError("; ".join(problems))
    return cfg


def _place(ref: Union[str, Path], runs_dir: Optional[str]) -> tuple[Path, bool]:
    """(the run folder or checkpoint folder `ref` names, whether it is a bare checkpoint folder)."""
    path = Path(ref)
    if (path / artifacts.CKPT_META).is_file():
        return path, True
    return find_run(str(ref), runs_dir), False


def _member(run_dir: Path, explicit: Optional[str]) -> Path:
    """The checkpoint folder to load of a run: `explicit` (`checkpoint=` or a
    `decoding.checkpoint=` override), else the run's own `decoding.checkpoint`, which
    must still be there."""
    if explicit:
        return checkpoint_folder(run_dir, explicit)
    own = str(saved_section(run_dir, "decoding").get("checkpoint", artifacts.CKPT_BEST))
    folder = checkpoint_folder(run_dir, own)
    if own not in artifacts.RUN_CHECKPOINTS and not folder.is_dir():
        raise ArtifactError(f"{folder}: no such checkpoint folder, named by decoding.checkpoint in "
                            f"{run_dir / artifacts.RESOLVED_CONFIG} (the run was last made with it; a relative path "
                            f"is read from the working folder); give --checkpoint best, or the folder")
    return folder


class Translator:
    """A trained model loaded once, with its tokenizers and decoding settings.

    Thread-safe: calls from several threads run one search at a time (an internal
    lock); `s2s serve` gets its throughput by batching concurrent requests into one
    search instead.
    """

    def __init__(self, model: Any, sp_src: Any, sp_tgt: Any, config: DecodeConfig, device: str, *,
                 context: int = 0, context_model: bool = False, name: str = "model",
                 languages: tuple[str, str] = ("", "")) -> None:
        self.model, self.sp_src, self.sp_tgt = model, sp_src, sp_tgt
        self.config, self.device, self.name = config, device, name
        self.context, self.context_model = context, context_model
        self.languages = languages  # (source, target) codes from the run's data section; "" if unknown
        self._lock = threading.Lock()
        self._warned: set[tuple[str, str]] = set()  # (input name, character) warned about as unknown

    @classmethod
    def load(cls, run: Union[str, Path, Sequence[Union[str, Path]]], *, runs_dir: Optional[str] = None,
             overrides: Sequence[str] = (), context: Optional[int] = None, **decoding: Any) -> "Translator":
        """Load a run's model: `run` is a run folder, a run name under `runs_dir`
        (default `runs`), the YAML config the run was made with, or a checkpoint folder;
        a list of them is an ensemble (`stages.decode.ensemble`: the log of the mean of
        the models' probabilities at every step; the models must share their
        tokenizers; decoding settings and attention come from the first).

        `decoding` takes any `decoding.*` key (beam_size, checkpoint, device, quantize,
        precision, length_penalty, batch_size ...), over the (first) run's own settings;
        `context` is how many previous lines a context model sees (default: as trained).
        Raises ArtifactError when there is no trained model there or the ensemble's
        vocabularies differ, ConfigError for a bad option.
        """
        if isinstance(overrides, str):
            raise TypeError("overrides takes a list of 'decoding.KEY=VALUE' strings, not one string")
        if not isinstance(run, (str, Path, list, tuple)):
            raise TypeError(f"run: expected a run folder, name or config (str or Path) or a list of them, "
                            f"not {type(run).__name__}")
        refs = [run] if isinstance(run, (str, Path)) else list(run)
        if not refs:
            raise ConfigError("no run given; give a run, or several for an ensemble")
        places = [_place(ref, runs_dir) for ref in refs]
        run_dir = places[0][0]
        asked = decoding.get("checkpoint")  # best or last of every run in the list (bare folders are themselves)
        given = apply_overrides({}, list(overrides)).get("decoding", {}).get("checkpoint")
        explicit = asked or (None if given is None else str(given))
        bare = next((str(ref) for ref, (_, is_bare) in zip(refs, places) if is_bare), None)
        if explicit and bare is not None:
            raise ConfigError(f"{bare} is a checkpoint folder, which is one model: checkpoint={explicit} does not "
                              f"apply to it; give the run folder to choose its best or last checkpoint")
        if explicit and explicit not in artifacts.RUN_CHECKPOINTS and len(places) > 1:
            raise ConfigError(f"checkpoint={explicit} is one model, but an ensemble loads one per run; give best or "
                              f"last, or give the checkpoint folders themselves as runs")
        if places[0][1]:
            decoding = {**decoding, "checkpoint": str(run_dir)}
        data = saved_section(run_dir, "data")
        trained = {_trained_context(d, bare, context) for d, bare in places}
        size, context_model = context_size(run_dir, _trained_context(run_dir, places[0][1], context), context)
        if len(trained) > 1:
            raise ConfigError(f"the ensemble's runs were trained with different data.context ({sorted(trained)}); "
                              f"ensemble runs trained alike")
        sides = {bool(saved_section(d, "data").get("target_context", False)) for d, _ in places}
        if len(sides) > 1:
            raise ConfigError("the ensemble mixes runs trained with and without data.target_context (one writes the "
                              "previous lines' translation first, the other does not); ensemble runs trained alike")
        cfg = decode_config(run_dir, overrides, **decoding)
        device = pick_device(cfg.device)
        folders = [d if is_bare else _member(d, explicit) for d, is_bare in places]
        members = [f.resolve() for f, (d, is_bare) in zip(folders, places)
                   if not is_bare and f.parent != d / artifacts.TRAIN_DIR]
        if len(places) > 1 and len(set(members)) < len(members):
            raise ConfigError(f"the ensemble's runs would all load {members[0]}: a checkpoint folder (from --checkpoint "
                              f"or decoding.checkpoint) is one model; give best or last for each run, or give the "
                              f"checkpoint folders themselves as runs")
        loaded = [load_checkpoint(folder, device) for folder in folders]
        if len(loaded) > 1:
            check_same_vocabulary(folders, [meta for *_, meta in loaded])
        pieces = joint_output_pieces([checkpoint_output_pieces(f, meta) for f, (*_, meta) in zip(folders, loaded)])
        lexical = run_shortlist(folders[0], loaded[0][3], cfg)
        models = [prepare_for_inference(model, cfg, device, pieces, lexical) for model, *_ in loaded]
        _, sp_src, sp_tgt, _ = loaded[0]
        languages = (str(data.get("src_lang", "")), str(data.get("tgt_lang", "")))
        name = " + ".join(map(str, refs))
        return cls(models[0] if len(models) == 1 else Ensemble(models), sp_src, sp_tgt, cfg, device, context=size,
                   context_model=context_model, name=name, languages=languages)

    @overload
    def translate(self, lines: str) -> str: ...  # type: ignore[overload-overlap]
    @overload
    def translate(self, lines: Sequence[str]) -> list[str]: ...

    def translate(self, lines: Union[str, Sequence[str]]) -> Union[str, list[str]]:
        """The best translation of each line (a list for a list, a string for a string);
        an empty line gives an empty translation. The lines are one document: a context
        model sees each line's previous lines."""
        if isinstance(lines, str):
            return self.translate([lines])[0]
        return [hyps[0].text if hyps else "" for hyps in self.translate_nbest(lines, 1)]

    def translate_nbest(self, lines: Sequence[str], n: int, *, alignments: bool = False) -> list[list[Hypothesis]]:
        """Up to `n` hypotheses per line, best first (at most the beam size; 1 with
        greedy search); [] for an empty line. With `alignments`, each hypothesis holds
        its pieces and attention matrix."""
        if isinstance(lines, str):
            raise TypeError("translate_nbest takes a list of lines; wrap one line as [line]")
        if isinstance(lines, (dict, set, frozenset)):
            raise TypeError(f"lines must be a list of lines, not a {type(lines).__name__} (no order of lines)")
        return list(self.translate_stream(lines, n_best=n, alignments=alignments))

    def translate_stream(self, lines: Iterable[str], *, n_best: int = 1, alignments: bool = False,
                         where: str = "input") -> Iterator[list[Hypothesis]]:
        """Like `translate_nbest`, over an iterable of any length, `decoding.stream_lines`
        lines at a time, yielding each line's hypotheses in order; `where` names the
        input in warnings."""
        _check_n_best(n_best)
        return self._stream(lines, n_best, alignments, where)

    def _stream(self, lines: Iterable[str], n_best: int, alignments: bool, where: str) -> Iterator[list[Hypothesis]]:
        inputs = self.prepare_inputs(lines)
        done = 0
        while chunk := list(islice(inputs, self.config.stream_lines)):
            yield from self.translate_inputs(chunk, n_best, alignments=alignments, where=where, first_line=done + 1)
            done += len(chunk)

    def prepare_inputs(self, lines: Iterable[str], previous: Sequence[str] = ()) -> Iterator[str]:
        """The model's input for each line of a document: user text escaped, behind its
        previous lines for a context model (`previous`: the document's lines before these)."""
        checked = _checked_lines(lines)
        if self.context_model:
            return with_context(checked, self.context, CONTEXT_SEP, before=previous)
        return without_context(checked)

    def translate_inputs(self, inputs: list[str], n_best: int = 1, *, alignments: bool = False,
                         where: str = "input", first_line: int = 1,
                         max_chars: Optional[list[int]] = None) -> list[list[Hypothesis]]:
        """Search prepared model inputs (from `prepare_inputs`, several documents' may be
        joined into one batch: each line is searched on its own). `max_chars`, one per
        input, limits each translation's length in characters (the search never lets a
        hypothesis pass it)."""
        _check_n_best(n_best)
        if max_chars is not None:
            _check_char_limits(max_chars, len(inputs))
        with self._lock:
            found = translate_lines_nbest(self.model, self.sp_src, self.sp_tgt, inputs, self.config, self.device,
                                          where, n_best, alignments, first_line, max_chars, self._warned)
        return [[Hypothesis(**h) for h in hyps] for hyps in found]

    def translate_subtitles(
        self, source: Union[str, Path, bytes, SubtitleDocument], *, name: Optional[str] = None, format: Optional[str] = None,
        to: Optional[str] = None, encoding: Optional[str] = None,
        search: Optional[Callable[[list[str], int], list[list[Hypothesis]]]] = None, **limits: Any,
    ) -> tuple[SubtitleTranslation, dict[str, Any]]:
        """Translate an SRT/VTT/ASS/SSA file (a path; or its bytes or text, with `name`
        giving the extension or `format` the format; or a document `load_subtitles`
        read), keeping every cue and its timing.

        `limits`: max_chars (per line) and max_cps (characters per second), by default the
        target language's (`stages.subtitles.norms`: 42 and 17 for most languages),
        max_lines (per cue, 2), max_gap_ms (1500: cues further apart never share a sentence),
        bilingual (False), translate_non_dialogue (False: credits, links, symbol-only
        cues and title cards pass through unchanged, listed in the report), fit_nbest (5:
        each unit takes the best of its 5 best hypotheses that fits its cues' box) and
        fit_margin (1.0: at most this far below the best's score), fit_shorten (True: a unit
        none of whose hypotheses fits is searched again under a limit in characters until
        it fits). Returns the translation and its report (also `.report`).
        `search` replaces `translate_inputs` for the model inputs (a server queues them
        with other work).
        Raises InputDataError for a file that is not a subtitle file.
        """
        if not isinstance(source, (str, Path, bytes, SubtitleDocument)):
            raise TypeError(f"translate_subtitles takes a path, the file's bytes or text, or a SubtitleDocument, "
                            f"not {type(source).__name__}")
        if isinstance(source, str) and "\n" in source:  # the file's text rather than its path
            source = source.encode("utf-8")
        if isinstance(source, SubtitleDocument):  # already read (the CLI reads files before loading a model)
            path, doc = Path(source.path), source
        elif isinstance(source, bytes):
            path = Path(name or f"upload.{format or _sniffed_format(source)}")
            doc = parse_subtitles(source, path, format, encoding)
        else:
            path = Path(source)
            if not path.is_file():
                raise InputDataError(f"{path}: file not found")
            doc = parse_subtitles(path.read_bytes(), path, format, encoding)
        fmt_out: Format = detect_format(path, to, option="to", verb="writes") if to else doc.format
        if fmt_out != doc.format:
            render(doc, [cue.lines for cue in doc.cues], fmt_out)  # a conversion that would move a cue: refused now
        chars, cps = norms_for(self.languages[1])  # the target language's norms unless given
        limits = {"max_chars": chars, "max_cps": cps, **{k: v for k, v in limits.items() if v is not None}}
        unknown = sorted(set(limits) - _SUBTITLE_LIMITS)
        if unknown:
            raise ConfigError(f"{unknown[0]}: not a subtitle limit; use {', '.join(sorted(_SUBTITLE_LIMITS))}")
        for key, value in limits.items():
            _check_limit_type(key, value)
        cfg = SubtitleConfig(context=self.context, separator=CONTEXT_SEP if self.context_model else "", **limits)
        problems = cfg.problems()
        if problems:
            raise ConfigError("; ".join(problems))

        def hypotheses(lines: list[str], n: int) -> list[list[Hypothesis]]:
            return search(lines, n) if search is not None else self.translate_inputs(lines, n, where=str(path))

        def translate(lines: list[str]) -> list[str]:
            return [h[0].text if h else "" for h in hypotheses(lines, 1)]

        def nbest(lines: list[str], n: int) -> list[list[tuple[str, float]]]:
            return [[(h.text, h.score) for h in hyps] for hyps in hypotheses(lines, n)]

        def shorten(lines: list[str], limits: list[int]) -> list[str]:  # a few units: searched here, not queued
            return [h[0].text if h else "" for h in self.translate_inputs(lines, 1, where=str(path), max_chars=limits)]

        texts, report = translate_document(doc, translate, cfg, fmt_out, nbest=nbest, shorten=shorten)
        result = SubtitleTranslation(render(doc, texts, fmt_out), fmt_out, output_encoding(doc),
                                     _cue_rows(doc, texts, fmt_out), report)
        return result, report


def _checked_lines(lines: Iterable[str]) -> Iterator[str]:
    """The lines, refused with TypeError when one is not a str and InputDataError when
    one is not Unicode text (a lone surrogate)."""
    if isinstance(lines, (str, bytes)) or not isinstance(lines, Iterable):
        raise TypeError(f"expected a list of str lines, not {type(lines).__name__}")
    for number, line in enumerate(lines, start=1):
        if not isinstance(line, str):
            raise TypeError(f"line {number} is {type(line).__name__}, not str; decode bytes first")
        try:
            line.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InputDataError(f"line {number}: character {exc.start + 1} is a lone surrogate "
                                 f"({line[exc.start]!r}), not Unicode text") from None
        yield line


def _check_limit_type(key: str, value: Any) -> None:
    """A subtitle limit of the type its SubtitleConfig field has (ConfigError if not):
    True/False for a switch, a whole number for a count, a number for a rate."""
    kind = str({f.name: f.type for f in dataclasses.fields(SubtitleConfig)}[key])  # annotations are strings here
    if kind == "bool":
        ok = isinstance(value, bool)
    elif kind == "int":
        ok = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok:
        want = {"bool": "True or False", "int": "a whole number"}.get(kind, "a finite number")
        raise ConfigError(f"{key}={value!r}: must be {want}")


MAX_CHAR_LIMIT = 1_000_000  # characters: far above any translation's length


def _sniffed_format(data: bytes) -> str:
    """A subtitle file's format from its first bytes, for one given without a name: VTT
    opens with WEBVTT, ASS/SSA with [Script Info]; anything else is read as SRT."""
    try:
        text, _ = decode_subtitle_bytes(data[:4096], Path("upload"))  # a BOM, UTF-16, UTF-8, cp1252
    except S2SError:
        return "srt"
    lines = [line.strip() for line in text.lstrip("\ufeff").splitlines() if line.strip()]
    if lines and lines[0].startswith("WEBVTT"):
        return "vtt"
    first = next((line for line in lines if not line.startswith(";")), "")  # ASS comments before its sections
    return "ass" if first.lower().startswith("[script info]") else "srt"


def _check_n_best(n_best: object) -> None:
    """ConfigError unless `n_best` is a whole number of at least 1 (not a bool)."""
    if isinstance(n_best, bool) or not isinstance(n_best, numbers.Integral):
        raise ConfigError(f"n_best={n_best!r}: a whole number of hypotheses, 1 or more")
    if n_best < 1:
        raise ConfigError(f"n_best={n_best}: ask for 1 or more hypotheses")


def _check_char_limits(max_chars: Any, lines: int) -> None:
    """`max_chars` for `translate_inputs`: one whole number in [1, MAX_CHAR_LIMIT] per
    input line (ConfigError if not)."""
    if not isinstance(max_chars, (list, tuple)) or len(max_chars) != lines:
        got = f"{len(max_chars)} limits" if isinstance(max_chars, (list, tuple)) else repr(max_chars)
        raise ConfigError(f"max_chars: {got} for {lines} lines; give a list of one limit per line")
    for number, limit in enumerate(max_chars, start=1):
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_CHAR_LIMIT:
            raise ConfigError(f"max_chars[{number - 1}]={limit!r} (line {number}): must be a whole number of "
                              f"characters in [1, {MAX_CHAR_LIMIT:,}]")


_SUBTITLE_LIMITS = {"max_chars", "max_lines", "max_cps", "max_gap_ms", "max_group", "bilingual",
                    "translate_non_dialogue", "fit_nbest", "fit_margin", "fit_shorten"}


def _cue_rows(doc: SubtitleDocument, texts: list[list[str]], fmt_out: Format) -> list[dict[str, Any]]:
    return [
        {"number": cue.number, "start": cue.start, "end": cue.end,
         "source": [line for line in strip_markup(cue.lines, doc.format) if line],
         "translation": [line for line in strip_markup(lines, fmt_out) if line]}
        for cue, lines in zip(doc.cues, texts)
    ]
