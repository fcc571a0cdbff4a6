"""The `s2s` command line: run the pipeline or one stage, translate files, score, status."""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shlex
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import click

from pipeline.config import RunConfig, load_config
from pipeline.embedded import resolve_path
from pipeline.orchestrator import STAGE_NAMES, run_pipeline, stale_stages
from pipeline.runs import config_file, find_run, lock_holder, run_dir_of
from stages import artifacts
from stages.errors import (
    ConfigError,
    InputDataError,
    OutputError,
    S2SError,
    TrainingInterrupted,
)
from stages.files import (
    WRITE_ERRNOS,
    atomic_path,
    check_output_file,
    check_output_folder,
    is_special,
)
from stages.train.state import ResumeOptions


def _load(config: Optional[str], overrides: tuple[str, ...], hint: str = "") -> RunConfig:
    """The run config; `hint` is added to the error when CONFIG is not a .yaml/.yml file
    that loads (a user who meant a text file for `translate` or `score`)."""
    try:
        return load_config(resolve_path(config) if config else None, list(overrides))
    except ConfigError as exc:
        if hint and config and Path(config).suffix.lower() not in (".yaml", ".yml"):
            raise ConfigError(f"{exc}\n{config} is read as a run config (YAML); {hint}") from exc
        raise


class _Commands(click.Group):
    """The command group; the one place where the project's errors become Click errors
    (their message and exit 1). Anything else is a bug and keeps its traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()
            return result
        except S2SError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:  # printing the result: a full disk behind `>`, a reader that stopped (`| head`)
            if exc.errno == errno.ENAMETOOLONG:  # a path the user gave, wherever it was first looked at
                name = str(exc.filename) if exc.filename is not None else "a path given"
                raise click.ClickException(f"{name[:80]}{'...' if len(name) > 80 else ''}: file name too long; "
                                           f"give a shorter name (at most 255 bytes a "
                                           f"component)") from exc
            if exc.filename is not None or exc.errno not in WRITE_ERRNOS | {errno.EPIPE}:
                raise
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
            if exc.errno == errno.EPIPE:  # the reader has all it wanted: stop quietly, as Unix tools do
                raise SystemExit(141) from exc
            raise click.ClickException(f"<stdout>: could not be written ({exc.strerror or exc}); write the "
                                       f"output to a file instead") from exc


set_option = click.option(
    "--set", "overrides", multiple=True, metavar="SECTION.KEY=VALUE",
    help="Override a config key, e.g. --set decoding.beam_size=10 (repeatable).",
)
config_argument = click.argument("config", required=False, type=click.Path(dir_okay=False))
resume_option = click.option(
    "--resume", is_flag=True,
    help="Continue training from the run's last checkpoint (weights, optimizer, schedule, RNG and data order).",
)
runs_dir_option = click.option(
    "--runs-dir", metavar="FOLDER", help="Where run names are looked up (default: runs).",
)
class FiniteRange(click.FloatRange):
    """click's FloatRange without NaN and infinity, which pass its comparisons."""

    def convert(self, value: Any, param: Optional[click.Parameter], ctx: Optional[click.Context]) -> Any:
        number = super().convert(value, param, ctx)
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a finite number", param, ctx)
        return number


RUN_HELP = "a run folder, a run name under --runs-dir, or the config file the run was made with"
allow_lr_change_option = click.option(
    "--allow-lr-change", is_flag=True,
    help="With --resume: accept changed training.lr/schedule keys; the new schedule applies from the current step.",
)


def _invocation() -> str:
    """The command as typed, for a second writer's error (`s2s train my.yaml`)."""
    return " ".join(["s2s", *map(shlex.quote, sys.argv[1:])]) if sys.argv[1:] else "s2s"


def _resume_command(config: Optional[str], overrides: tuple[str, ...]) -> str:
    """`s2s train CONFIG --set ... --resume`: what continues an interrupted training."""
    words = ["s2s", "train", *([config] if config else []), *(w for item in overrides for w in ("--set", item)),
             "--resume"]
    return " ".join(map(shlex.quote, words))


def _pipeline(cfg: RunConfig, config: Optional[str], overrides: tuple[str, ...], **options: Any) -> Any:
    """run_pipeline, with the exact command that resumes an interrupted training."""
    try:
        return run_pipeline(cfg, echo=click.echo, command=_invocation(), **options)
    except TrainingInterrupted as exc:
        raise TrainingInterrupted(f"{exc}: `{_resume_command(config, overrides)}`") from exc


def _resume_options(resume: bool, allow_lr_change: bool, force: tuple[str, ...]) -> ResumeOptions | None:
    if allow_lr_change and not resume:
        raise click.UsageError("--allow-lr-change only applies with --resume")
    if resume and "train" in force:
        raise click.UsageError("--force train starts training over and --resume continues it: pick one")
    return ResumeOptions(allow_lr_change=allow_lr_change) if resume else None


def _terminated(signum: int, frame: Optional[FrameType]) -> None:
    """SIGTERM (`kill`, `timeout`, a service manager) ends a command as Ctrl-C does: what
    it was writing is removed, nothing is left half-written, and it exits non-zero.
    Training and `s2s serve` set their own handlers (a resumable stop, a graceful one)."""
    raise KeyboardInterrupt


@click.group(cls=_Commands)
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """s2s: recurrent encoder-decoder translation, from parallel data to BLEU."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminated)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@main.command()
@config_argument
@set_option
@click.option("--until", type=click.Choice(STAGE_NAMES), default="score", help="Stop after this stage.")
@click.option("--force", type=click.Choice(STAGE_NAMES), multiple=True, help="Rerun this stage even if up to date.")
@resume_option
@allow_lr_change_option
def run(
    config: Optional[str], overrides: tuple[str, ...], until: str, force: tuple[str, ...], resume: bool,
    allow_lr_change: bool,
) -> None:
    """Run prepare -> tokenize -> train -> translate -> score (built-in default config without CONFIG)."""
    options = _resume_options(resume, allow_lr_change, force)
    cfg = _load(config, overrides)
    manifest = _pipeline(cfg, config, overrides, until=until, force=force, resume=options)
    score = manifest.stage("score").get("summary")
    if until == "score" and score:
        click.echo(f"BLEU {score['bleu']}  chrF {score['chrf']}  ({score['bleu_signature']})")
    click.echo(f"run directory: {run_dir_of(cfg)}")


def _stage_command(name: str) -> None:
    @main.command(name=name, help=f"Run the {name} stage (and any out-of-date stage before it).")
    @config_argument
    @set_option
    @click.option("--force", is_flag=True, help="Rerun this stage even if up to date.")
    def command(config: Optional[str], overrides: tuple[str, ...], force: bool) -> None:
        cfg = _load(config, overrides)
        run_pipeline(cfg, until=name, force=(name,) if force else (), echo=click.echo, command=_invocation())


for _name in ("prepare", "tokenize"):
    _stage_command(_name)


@main.command()
@config_argument
@set_option
@click.option("--force", is_flag=True, help="Retrain from scratch even if up to date.")
@resume_option
@allow_lr_change_option
def train(config: Optional[str], overrides: tuple[str, ...], force: bool, resume: bool, allow_lr_change: bool) -> None:
    """Run the train stage (and any out-of-date stage before it), or resume it."""
    options = _resume_options(resume, allow_lr_change, ("train",) if force else ())
    cfg = _load(config, overrides)
    _pipeline(cfg, config, overrides, until="train", force=("train",) if force else (), resume=options)


@main.command()
@click.argument("config", required=False, type=click.Path(dir_okay=False))
@set_option
@click.option("--run", "run_paths", metavar="RUN", multiple=True,
              help=f"Translate a file with this trained run: {RUN_HELP}. Repeat it for an ensemble.")
@runs_dir_option
@click.option("-i", "--input", "input_path", type=click.Path(dir_okay=False), help="Input text (default or -: stdin).")
@click.option("-o", "--output", "output_path", type=click.Path(dir_okay=False), help="Output text (default or -: stdout).")
@click.option("--beam-size", type=click.IntRange(min=1), help="Beam size (1 = greedy).")
@click.option("--checkpoint", help="best or last checkpoint of the run, or a checkpoint folder (e.g. from s2s average).")
@click.option("--n-best", type=click.IntRange(min=1), help="Write the N best hypotheses per line with scores, as JSONL (N is capped at the beam size).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@click.option("--quantize", type=click.Choice(["none", "int8"]), help="int8: the search multiplies in int8 on the CPU (batch-invariant, like fp32).")
@click.option("--alignments", type=click.Path(dir_okay=False), help="Also write each line's attention matrix here (JSONL).")
@click.option("--plot-attention", type=click.Path(file_okay=False), help="Also write a heat-map PNG per line into this folder.")
@click.option("--context", type=click.IntRange(min=0), help="Previous lines given to a context model: 0 (none) up to the run's data.context (the default).")
def translate(
    config: Optional[str], overrides: tuple[str, ...], run_paths: tuple[str, ...], runs_dir: Optional[str],
    input_path: Optional[str],
    output_path: Optional[str], beam_size: Optional[int], checkpoint: Optional[str], n_best: Optional[int],
    threads: Optional[int], quantize: Optional[str], alignments: Optional[str], plot_attention: Optional[str],
    context: Optional[int],
) -> None:
    """Translate the test split (CONFIG), or any file with a trained run:
    s2s translate in.txt --run RUN -o out.txt (or -i in.txt; stdin without either)."""
    if run_paths and config is not None:  # with --run, the argument is the input file
        if input_path is not None:
            raise click.UsageError(f"the input is given twice ({config} and -i {input_path}): give it once")
        input_path = config
    if threads:
        import torch

        torch.set_num_threads(threads)
    if not run_paths:
        if input_path or output_path or beam_size or checkpoint or n_best or quantize or alignments or plot_attention \
                or context is not None:
            raise click.UsageError("-i/-o and the other file-translation options need --run RUN")
        hint = "to translate a text file: s2s translate FILE --run RUN -o OUT"
        cfg = _load(config, overrides, hint)
        run_pipeline(cfg, until="translate", echo=click.echo, command=_invocation())
        return
    from pipeline.files_cli import translate_file

    translate_file(
        trained_runs(run_paths, runs_dir),
        input_path, output_path, beam_size, checkpoint, list(overrides), n_best,
        quantize, alignments, plot_attention, context,
    )


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(dir_okay=False))
@set_option
def score(paths: tuple[str, ...], overrides: tuple[str, ...]) -> None:
    """Score the run (CONFIG), or any two files: s2s score HYP REF."""
    from pipeline.api import score_config
    from pipeline.subtitle_cli import is_subtitle_path, score_subtitles

    if len(paths) == 2 and all(is_subtitle_path(p) for p in paths):
        result = score_subtitles(paths[0], paths[1], cfg=score_config(overrides))
        click.echo(json.dumps({k: v for k, v in result.items() if k != "bleu_detail"}, indent=2))
        return
    if len(paths) == 2 and any(is_subtitle_path(p) for p in paths):
        cue, text = paths if is_subtitle_path(paths[0]) else paths[::-1]
        raise InputDataError(f"{cue} is a subtitle file and {text} is not: its cue numbers and timings would be "
                             f"scored as text; give two subtitle files (scored cue by cue) or two text files")
    if len(paths) == 2:
        from stages.decode.scoring import score_files

        result = score_files(Path(paths[0]), Path(paths[1]), score_config(overrides))
        click.echo(json.dumps({k: v for k, v in result.items() if k != "bleu_detail"}, indent=2))
        return
    if len(paths) > 2:
        raise click.UsageError("expected CONFIG, or HYP REF")
    hint = "to score a translation: s2s score HYP REF"
    cfg = _load(paths[0] if paths else None, overrides, hint)
    manifest = run_pipeline(cfg, until="score", echo=click.echo, command=_invocation())
    click.echo(json.dumps(manifest.stage("score").get("summary"), indent=2))


def trained_runs(refs: tuple[str, ...], runs_dir: Optional[str]) -> list[Path]:
    """The run folders (or checkpoint folders) that repeated --run options name."""
    return [Path(run) if (Path(run) / artifacts.CKPT_META).is_file() else find_run(run, runs_dir) for run in refs]


@main.command()
@click.argument("input_paths", metavar="INPUT...", nargs=-1, required=True)
@click.option("--run", "run_paths", metavar="RUN", required=True, multiple=True,
              help=f"The trained run: {RUN_HELP}. Repeat it for an ensemble.")
@runs_dir_option
@click.option("-o", "--output", "output_path", required=True, type=click.Path(),
              help="Output subtitle file; for several inputs, folders or globs, the output folder.")
@click.option("--format", "fmt", type=click.Choice(["srt", "vtt", "ass", "ssa"]), help="Input format (default: from the extension).")
@click.option("--to", type=click.Choice(["srt", "vtt", "ass", "ssa"]), help="Output format (default: from -o's extension, else the input's).")
@click.option("--encoding", help="Input encoding (default: detected: BOM, UTF-16, UTF-8, cp1252, Latin-1).")
@click.option("--context", type=click.IntRange(min=0), help="Previous sentences given to a context model: 0 (none) up to the run's data.context (the default).")
@click.option("--max-chars", type=click.IntRange(min=10), help="Characters per line, at least 10 (default: the target language's, 42 for most).")
@click.option("--max-lines", default=2, show_default=True, type=click.IntRange(min=1), help="Lines per cue.")
@click.option("--max-cps", type=FiniteRange(min=0, min_open=True), help="Reading-speed limit, characters per second (default: the target language's, 17 for most).")
@click.option("--max-gap-ms", default=1500, show_default=True, type=click.IntRange(min=0), help="Cues further apart never share a sentence.")
@click.option("--bilingual", is_flag=True, help="Keep the source lines under the translation in every cue.")
@click.option("--translate-non-dialogue", is_flag=True, help="Translate credits, links, symbol-only cues and title cards too (default: passed through).")
@click.option("--fit-nbest", default=5, show_default=True, type=click.IntRange(min=1), help="Fit-to-cue: choose among this many best hypotheses the best that fits the cue (1: off).")
@click.option("--fit-margin", default=1.0, show_default=True, type=FiniteRange(min=0), help="... at most this far below the best's score.")
@click.option("--fit-shorten/--no-fit-shorten", default=True, show_default=True, help="When no hypothesis fits the cue, search again for a shorter translation that does.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False), help="Report JSON (default: OUTPUT.report.json; for a folder, the summary: OUTDIR/summary.json).")
@click.option("--beam-size", type=click.IntRange(min=1), help="Beam size (1 = greedy).")
@click.option("--checkpoint", help="best or last checkpoint of the run, or a checkpoint folder.")
@click.option("--quantize", type=click.Choice(["none", "int8"]), help="int8: the search multiplies in int8 on the CPU (batch-invariant, like fp32).")
@set_option
def subtitle(
    input_paths: tuple[str, ...], run_paths: tuple[str, ...], runs_dir: Optional[str], output_path: str, fmt: Optional[str], to: Optional[str], encoding: Optional[str],
    context: Optional[int], max_chars: Optional[int], max_lines: int, max_cps: Optional[float], max_gap_ms: int,
    bilingual: bool, translate_non_dialogue: bool, fit_nbest: int, fit_margin: float, fit_shorten: bool,
    report_path: Optional[str], beam_size: Optional[int], checkpoint: Optional[str], quantize: Optional[str],
    overrides: tuple[str, ...],
) -> None:
    """Translate SRT/VTT/ASS files, keeping every cue and its timing; print a compliance report.
    One file: s2s subtitle in.srt --run RUN -o out.srt. Several files, folders or globs:
    s2s subtitle season1/ extra.srt --run RUN -o OUTDIR (the model loads once)."""
    from pipeline.subtitle_cli import (
        describe,
        is_folder_job,
        subtitle_file,
        subtitle_files,
    )

    options: dict[str, Any] = dict(
        fmt=fmt, to=to, encoding=encoding, context=context, overrides=list(overrides), beam_size=beam_size,
        checkpoint=checkpoint, quantize=quantize, max_chars=max_chars, max_lines=max_lines, max_cps=max_cps,
        max_gap_ms=max_gap_ms, bilingual=bilingual, translate_non_dialogue=translate_non_dialogue,
        fit_nbest=fit_nbest, fit_margin=fit_margin, fit_shorten=fit_shorten,
    )
    if output_path == "-" or is_special(Path(output_path)):
        raise OutputError(f"-o {output_path}: s2s subtitle writes a file and its report beside it, not a stream "
                          f"such as standard output; give a file name such as out.srt (or a folder for several "
                          f"inputs)")
    run_dir = trained_runs(run_paths, runs_dir)
    if is_folder_job(input_paths, output_path):
        summary = subtitle_files(run_dir, list(input_paths), output_path, summary_path=report_path, echo=click.echo,
                                 **options)
        if summary["failed"]:
            raise click.ClickException(f"{len(summary['failed'])} of {summary['files']} files failed (above); "
                                       f"the others are written to {output_path}")
        return
    report = subtitle_file(run_dir, input_paths[0], output_path, report_path=report_path, **options)
    click.echo(describe(report))


@main.command()
@click.option("--run", "run_paths", metavar="RUN", required=True, multiple=True,
              help=f"The trained run: {RUN_HELP}. Repeat it for an ensemble.")
@runs_dir_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0: every interface; put a reverse proxy in front).")
@click.option("--port", default=5000, show_default=True, type=click.IntRange(0, 65535), help="Port (0: any free one).")
@click.option("--api-key-file", type=click.Path(dir_okay=False), help="Require an API key: one key per line of this file.")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Let web pages of this origin (https://site.example; * for any) call the API; repeatable.")
@click.option("--max-chars", default=20000, show_default=True, type=click.IntRange(min=1), help="Characters of text per request.")
@click.option("--max-lines", default=500, show_default=True, type=click.IntRange(min=1), help="Lines per request.")
@click.option("--max-file-mb", default=2.0, show_default=True, type=FiniteRange(min=0.001), help="Size of an uploaded file, in MB.")
@click.option("--queue-size", default=64, show_default=True, type=click.IntRange(min=1), help="Requests waiting for the model; more get 503.")
@click.option("--timeout", "timeout_s", default=60.0, show_default=True, type=FiniteRange(min=0.1), help="Seconds before an unanswered /translate request gets 503.")
@click.option("--file-timeout", "file_timeout_s", default=600.0, show_default=True, type=FiniteRange(min=0.1), help="The same for /translate_file.")
@click.option("--batch-wait-ms", default=10.0, show_default=True, type=FiniteRange(0, 1000), help="A batch takes requests arriving less than this apart ...")
@click.option("--batch-max-wait-ms", default=50.0, show_default=True, type=FiniteRange(0, 10000), help="... for at most this long.")
@click.option("--beam-size", type=click.IntRange(min=1), help="Beam size (1 = greedy).")
@click.option("--checkpoint", help="best or last checkpoint of the run, or a checkpoint folder.")
@click.option("--quantize", type=click.Choice(["none", "int8"]), help="int8: the search multiplies in int8 on the CPU (batch-invariant, like fp32).")
@click.option("--threads", type=click.IntRange(min=1), help="CPU threads for torch.")
@set_option
def serve(
    run_paths: tuple[str, ...], runs_dir: Optional[str], host: str, port: int, api_key_file: Optional[str],
    cors_origins: tuple[str, ...], max_chars: int,
    max_lines: int, max_file_mb: float, queue_size: int, timeout_s: float, file_timeout_s: float,
    batch_wait_ms: float, batch_max_wait_ms: float,
    beam_size: Optional[int], checkpoint: Optional[str], quantize: Optional[str], threads: Optional[int],
    overrides: tuple[str, ...],
) -> None:
    """Serve a trained run over HTTP: a LibreTranslate-compatible API and a web page at /."""
    from pipeline.serve.limits import ServeLimits
    from pipeline.serve.server import serve_run

    limits = ServeLimits(max_chars=max_chars, max_lines=max_lines, max_file_bytes=int(max_file_mb * 1_000_000),
                         queue_size=queue_size, timeout_s=timeout_s, file_timeout_s=file_timeout_s,
                         wait_ms=batch_wait_ms,
                         max_wait_ms=batch_max_wait_ms)
    serve_run(trained_runs(run_paths, runs_dir), host=host, port=port, api_key_file=api_key_file, threads=threads,
              overrides=list(overrides), limits=limits, cors_origins=cors_origins, beam_size=beam_size,
              checkpoint=checkpoint, quantize=quantize)


@main.command("config")
@click.argument("name", default="default")
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write it to this new file (default or -: stdout).")
@click.option("--list", "list_names", is_flag=True, help="List the example configs.")
def config_command(name: str, output: Optional[str], list_names: bool) -> None:
    """Print an example config to start from: s2s config default > my.yaml (or tiny, best)."""
    from pipeline.embedded import example_config, example_configs

    if list_names:
        click.echo("\n".join(example_configs()))
        return
    text = example_config(name)
    if output is None or output == "-":
        click.echo(text, nl=False)
        return
    check_output_file(output, "-o")
    if Path(output).exists() and not is_special(Path(output)):  # a device or pipe is written into, not replaced
        raise OutputError(f"-o {output}: the file exists; give a new file name (s2s config never replaces a file)")
    with atomic_path(Path(output)) as tmp:
        tmp.write_text(text, encoding="utf-8")
    if not is_special(Path(output)):  # into a stream, the config alone
        click.echo(f"wrote the {name} config to {output}; run it with: s2s run {output}")


@main.command()
@click.argument("checkpoints", nargs=-1, required=True, type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False), help="Folder for the averaged checkpoint.")
def average(checkpoints: tuple[str, ...], output: str) -> None:
    """Average checkpoint folders of one model into a new checkpoint folder."""
    from stages.model.checkpoint import average_checkpoints

    check_output_folder(Path(output), "-o")
    summary = average_checkpoints([Path(c) for c in checkpoints], Path(output))
    count = summary["checkpoints"]
    click.echo(f"averaged {count} checkpoint{'s' if count != 1 else ''} into {output}")


@main.command()
@click.argument("run_ref", metavar="RUN")
@runs_dir_option
@click.option("-o", "--output", type=click.Path(file_okay=False), help="Folder for the PNGs (default: RUN/plots).")
def plot(run_ref: str, runs_dir: Optional[str], output: Optional[str]) -> None:
    """Plot RUN's training history (RUN: a run folder, a run name or its config file):
    losses, dev BLEU, learning rate, gradient norms."""
    from stages.plots.history import plot_history, read_history

    run_dir = find_run(run_ref, runs_dir)
    if output == "":
        raise ConfigError("-o: an empty folder name; give a folder for the PNGs, or leave -o out for RUN/plots")
    check_output_folder(Path(output) if output else run_dir / "plots", "-o")
    history = read_history(run_dir / artifacts.TRAIN_DIR / artifacts.HISTORY)
    for path in plot_history(history, Path(output) if output else run_dir / "plots"):
        click.echo(str(path))


@main.command()
@click.argument("run_ref", metavar="RUN")
@runs_dir_option
def status(run_ref: str, runs_dir: Optional[str]) -> None:
    """Print the stage table of RUN (a run folder, a run name or its config file; given a
    config, a stage is stale when `s2s run` of that config would redo it)."""
    from pipeline.manifest import Manifest

    run_dir = find_run(run_ref, runs_dir, needs=artifacts.MANIFEST)
    given = config_file(run_ref)
    cfg = load_config(given) if given else None
    if cfg is None:
        try:
            cfg = load_config(run_dir / artifacts.RESOLVED_CONFIG_YAML)
        except S2SError as exc:
            click.echo(f"warning: {exc}; the stages are checked against their records and outputs only (run the "
                       f"run's config again to rewrite it)", err=True)
    manifest, holder = Manifest.load(run_dir), lock_holder(run_dir)
    stale = stale_stages(run_dir, manifest, cfg) if holder is None else {}
    if holder is not None:
        click.echo(f"in use: pid {holder.get('pid')} runs `{holder.get('command')}` since {holder.get('started')}")
    click.echo(f"run {manifest.data.get('name')}  seed {manifest.data.get('seed')}  config {str(manifest.data.get('config_hash'))[:12]}")
    click.echo(f"{'stage':<10} {'status':<11} {'seconds':>8}  {'fingerprint':<12}  summary")
    for name in STAGE_NAMES:
        entry = manifest.stage(name)
        summary = entry.get("summary") or {}
        brief = entry.get("error") or ", ".join(
            f"{k}={v}" for k, v in _flatten(summary).items() if "detail" not in k and "signature" not in k
        )
        state = entry.get("status", "-")
        if state == "running" and holder is None:  # its process died (kill -9, power loss)
            state = "interrupted"
        elif name in stale:  # done, but from inputs that have changed since: the next run redoes it
            state = "stale"
        click.echo(
            f"{name:<10} {state:<11} {entry.get('seconds', ''):>8}  "
            f"{str(entry.get('fingerprint', ''))[:12]:<12}  {brief[:110]}"
        )
    for name, why in stale.items():
        if not why.startswith("after "):
            after = (" (the stages after it follow, unless redoing it writes the same files again)"
                     if name != STAGE_NAMES[-1] else "")
            click.echo(f"{name} is stale: {why}{after}")


def _flatten(summary: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'pairs': {'train': 3}} -> {'pairs.train': 3}; the best-validation record is skipped."""
    out: dict[str, Any] = {}
    for key, value in summary.items():
        if key == "paths":  # which optimised paths ran: in the manifest, too long for the table
            continue
        if isinstance(value, dict) and key != "best":
            out.update(_flatten(value, f"{prefix}{key}."))
        elif not isinstance(value, (dict, list)):
            out[f"{prefix}{key}"] = value
    return out


if __name__ == "__main__":
    main()
