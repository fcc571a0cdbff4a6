"""s2s beside OpenNMT-py 3.5.1, one right after the other, on this machine.

Both tools train the anchor model (embeddings 256, biLSTM 2x256, LSTM 512 decoder,
Luong general attention with input feeding, joint SentencePiece 8k, ~2,048-token
batches) for the same wall-clock budget on the same data, then decode the 552 test
sentences at batch 32, beam 5 and greedy, search loop only with the model loaded.
Speed is in output pieces per second counted with one SentencePiece model (the anchor
scripts' spm8k; the two tools tokenize differently). s2s is also measured with int8
search, with the whole output vocabulary (decoding.output_vocab=all), with a lexical shortlist,
with OpenNMT-py's stopping rule (decoding.stopping=current), with its default model (RUN,
optional) and for peak memory of `s2s translate` at its
default batch. `--skip-training` decodes again (both tools) with the models trained last.

Setup (../shared/anchors/README.md): `BENCH=... VENVS=... bash 00_setup.sh` once.
Usage: python bench/bench_onmt.py --bench BENCH --venvs VENVS [--budget 300]
       [--default-run runs/default] [--out bench/results/onmt_side_by_side_cpu.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from common import emit, machine, timed_search

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sacrebleu  # noqa: E402
import sentencepiece as spm  # noqa: E402
import torch  # noqa: E402

from stages import artifacts  # noqa: E402
from stages.corpus.vocab import without_context  # noqa: E402
from stages.decode.config import DecodeConfig  # noqa: E402
from stages.decode.translation import (  # noqa: E402
    checkpoint_output_pieces,
    prepare_for_inference,
    run_shortlist,
)
from stages.model.checkpoint import load_checkpoint  # noqa: E402


def sh(command: list[str], env: dict[str, str], log: Path) -> None:
    with log.open("w") as out:
        subprocess.run(command, env=env, stdout=out, stderr=subprocess.STDOUT, check=False)


def onmt_side(anchors: Path, bench: Path, env: dict[str, str], budget: int, train: bool) -> dict[str, Any]:
    """Train (unless `train` is False) and decode OpenNMT-py with the anchor scripts; its
    own figures, read from its logs."""
    out = bench / "onmt_bench"
    config = (bench / "onmt_rnn.yaml").read_text().replace(f"{bench}/onmt/", f"{out}/")
    (bench / "onmt_bench.yaml").write_text(config)
    run_env = {**env, "CFG": str(bench / "onmt_bench.yaml"), "OUT": str(out), "BUDGET": str(budget)}
    if train:
        sh(["bash", str(anchors / "02_train_onmt.sh")], run_env, bench / "bench_logs" / "onmt_train.log")
    sh(["bash", str(anchors / "04_decode_onmt.sh")], run_env, bench / "bench_logs" / "onmt_decode.log")
    steps = [tuple(map(float, m)) for m in re.findall(r"(\d+)/\s*(\d+) tok/s;\s+(\d+) sec", (out / "train.stdout").read_text())]
    rates = [tgt for _, tgt, _ in steps[1:]]  # after the first interval, as the anchor README says
    result: dict[str, Any] = {"train_target_tokens_per_s": round(sum(rates) / len(rates)) if rates else None,
                              "checkpoint": (out / "decode.ckpt").read_text().strip()}
    refs = (bench / "data" / "test.es").read_text(encoding="utf-8").splitlines()
    sp = spm.SentencePieceProcessor(model_file=str(bench / "sp" / "spm8k.model"))
    for mode in ("beam5", "greedy"):
        log = (out / f"test.{mode}.log").read_text()
        found = re.search(r"Total translation time \(s\): ([\d.]+)", log)
        if not found:  # no checkpoint within the budget, or a failed decode: its log says why
            result[mode] = {"error": log[-500:]}
            continue
        seconds = float(found.group(1))
        pieces = [line.split() for line in (out / f"test.{mode}.sp.es").read_text(encoding="utf-8").splitlines()]
        hyps = [sp.decode_pieces(p) for p in pieces]
        result[mode] = {"search_s": seconds, "pieces_per_s": round(sum(map(len, pieces)) / seconds),
                        "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
                        "peak_rss_mb": peak_rss(out / f"test.{mode}.time")}
    return result


def peak_rss(time_file: Path) -> float | None:
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", time_file.read_text()) if time_file.exists() else None
    return round(int(found.group(1)) / 1024) if found else None


def s2s_train(bench: Path, budget: int, runs: Path) -> Path:
    config = bench / "s2s_bench.yaml"
    config.write_text(
        f"name: anchor\nruns_dir: {runs}\ntokenizer: {{vocab_size: 8000, joint: true}}\n"
        f"model: {{input_feeding: true, bridge: last, dropout: 0.3}}\n"
        f"training: {{max_minutes: {budget / 60}, max_steps: 100000, valid_every: 100000}}\n"
    )
    sh([str(ROOT / ".venv" / "bin" / "s2s"), "train", str(config)], dict(os.environ), bench / "bench_logs" / "s2s_train.log")
    return runs / "anchor"


def s2s_search(run: Path, lines: list[str], refs: list[str], common: spm.SentencePieceProcessor,
               batch: int, settings: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Search time alone (ids in, ids out, model loaded), as OpenNMT-py's "translation time"."""
    folder = run / artifacts.TRAIN_DIR / artifacts.CKPT_BEST
    model, sp_src, sp_tgt, meta = load_checkpoint(folder)
    pieces = checkpoint_output_pieces(folder, meta)
    ids = [sp_src.encode(text) for text in without_context(lines)]
    rows = []
    for setting in settings:
        cfg = DecodeConfig(batch_size=batch, **setting)
        ready = prepare_for_inference(model, cfg, "cpu", pieces, run_shortlist(folder, meta, cfg))
        found, seconds = timed_search(ready, ids, cfg)
        hyps = [sp_tgt.decode(n[0].tokens) for n in found]
        count = sum(len(common.encode(h)) for h in hyps)
        rows.append({**setting, "batch": batch, "search_s": round(seconds, 2), "pieces_per_s": round(count / seconds),
                     "bleu": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def s2s_memory(run: Path, source: Path, bench: Path, quantize: str) -> float | None:
    """Peak RSS of `s2s translate --run RUN` at today's default batch (a run trained
    earlier may have saved another) and the run's beam."""
    timing = bench / "bench_logs" / f"s2s_translate_{run.name}_{quantize}.time"
    sh(["/usr/bin/time", "-v", "-o", str(timing), str(ROOT / ".venv" / "bin" / "s2s"), "translate", "--run", str(run),
        "-i", str(source), "-o", str(bench / f"s2s_{run.name}_{quantize}.es"), "--quantize", quantize,
        "--set", f"decoding.batch_size={DecodeConfig().batch_size}"],
       dict(os.environ), bench / "bench_logs" / f"s2s_translate_{run.name}_{quantize}.log")
    return peak_rss(timing)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bench", type=Path, required=True, help="the anchor scripts' BENCH folder (00_setup.sh done)")
    parser.add_argument("--venvs", type=Path, required=True, help="the anchor scripts' VENVS folder")
    parser.add_argument("--anchors", type=Path, default=ROOT.parent / "shared" / "anchors")
    parser.add_argument("--budget", type=int, default=300, help="training seconds for each tool")
    parser.add_argument("--default-run", type=Path, help="also time this s2s run (the default model)")
    parser.add_argument("--skip-training", action="store_true", help="reuse both tools' last trained models")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "onmt_side_by_side_cpu.json")
    args = parser.parse_args()
    torch.set_num_threads(2)
    bench = args.bench.resolve()
    env = {**os.environ, "BENCH": str(bench), "VENVS": str(args.venvs.resolve())}
    (bench / "bench_logs").mkdir(exist_ok=True)
    if not (bench / "sp" / "spm8k.model").exists():
        sh(["bash", str(args.anchors / "01_spm.sh")], env, bench / "bench_logs" / "spm.log")
    runs = bench / "s2s_runs"
    onmt = onmt_side(args.anchors, bench, env, args.budget, train=not args.skip_training)
    if not args.skip_training:
        s2s_train(bench, args.budget, runs)
    print(json.dumps({"onmt": onmt}), flush=True)
    anchor = runs / "anchor"
    train = json.loads((anchor / artifacts.MANIFEST).read_text())["stages"]["train"]["summary"]
    source = bench / "data" / "test.en"
    lines = source.read_text(encoding="utf-8").splitlines()
    refs = (bench / "data" / "test.es").read_text(encoding="utf-8").splitlines()
    common = spm.SentencePieceProcessor(model_file=str(bench / "sp" / "spm8k.model"))
    grid: list[dict[str, Any]] = [{"beam_size": b, "quantize": q} for q in ("none", "int8") for b in (5, 1)]
    extra: list[dict[str, Any]] = [{"beam_size": 5, "output_vocab": "all"}, {"beam_size": 5, "shortlist": 20},
             {"beam_size": 5, "quantize": "int8", "shortlist": 20}, {"beam_size": 1, "quantize": "int8", "shortlist": 20}]
    current: list[dict[str, Any]] = [{"beam_size": 5, "quantize": q, "stopping": "current"} for q in ("none", "int8")]
    extra += current + [{**row, "shortlist": 20} for row in current]
    anchor_rows = s2s_search(anchor, lines, refs, common, 32, grid + extra)
    result: dict[str, Any] = {
        "machine": machine(), "budget_s": args.budget, "test_sentences": len(lines), "onmt": onmt,
        "s2s_anchor": {"train_target_tokens_per_s": train.get("target_tokens_per_s"), "steps": train.get("steps"),
                       "search": anchor_rows,
                       "translate_peak_rss_mb": {q: s2s_memory(anchor, source, bench, q) for q in ("none", "int8")}},
    }
    if args.default_run:
        result["s2s_default"] = {
            "run": str(args.default_run), "search": s2s_search(args.default_run, lines, refs, common, 32, grid + current),
            "translate_peak_rss_mb": {q: s2s_memory(args.default_run, source, bench, q) for q in ("none", "int8")},
        }
    ratios = {}
    for name, rows in (("anchor", anchor_rows), ("default", result.get("s2s_default", {}).get("search", []))):
        for row in rows:
            mode = "beam5" if row["beam_size"] == 5 else "greedy"
            if onmt.get(mode, {}).get("pieces_per_s"):
                key = (f"{name}.{row.get('quantize', 'none')}.{mode}" + (".all_pieces" if "output_vocab" in row else "")
                       + (f".shortlist{row['shortlist']}" if "shortlist" in row else "")
                       + (f".stopping_{row['stopping']}" if "stopping" in row else ""))
                ratios[key] = round(row["pieces_per_s"] / onmt[mode]["pieces_per_s"], 2)
    result["speed_vs_onmt"] = ratios
    emit(result, args.out)


if __name__ == "__main__":
    main()
