"""GPU checks behind the README's CUDA figures. Each part prints and writes one JSON
object ($OUT/check.json, or /tmp/check.json):

    python bench/gpu_checks.py step               # search step with tables == module path, on CUDA
    python bench/gpu_checks.py decode [RUN]       # beam 5 on the test books: fp32 (table step and
                                                  # module path, twice each), fp16, bf16
    python bench/gpu_checks.py train [RUN]        # precision x input feeding, 150 steps each
    python bench/gpu_checks.py resume [RUN]       # 60 steps straight == 30 + 30 resumed

RUN defaults to runs/default (its config.json, prepare/, tokenize/ and train/best).
The tokenize stage's Arrow files are read with pyarrow alone, so a machine whose Python
has no `datasets` package runs every check.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from stages.decode.config import (
    DecodeConfig,  # noqa: E402
    ScoreConfig,  # noqa: E402
)
from stages.decode.scoring import run_score  # noqa: E402
from stages.decode.translation import run_translate  # noqa: E402
from stages.model.checkpoint import load_checkpoint  # noqa: E402
from stages.model.config import ModelConfig  # noqa: E402
from stages.model.fast import search_step  # noqa: E402
from stages.model.seq2seq import Seq2Seq  # noqa: E402
from stages.train.config import TrainConfig  # noqa: E402
from stages.train.state import ResumeOptions  # noqa: E402
from stages.train.trainer import run_train  # noqa: E402

OUT = Path(os.environ.get("OUT", "/tmp"))
RESULT: dict[str, Any] = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}


def emit() -> None:
    (OUT / "check.json").write_text(json.dumps(RESULT, indent=1))
    print(json.dumps(RESULT)[-600:], flush=True)


def check_step() -> None:
    """Seq2Seq.step (the table step) against the model's own teacher-forced decoding, float64."""
    worst, steps = 0.0, 0
    for cell in ("lstm", "gru", "rnn"):
        for layers in (1, 2):
            for attention in ("luong_general", "luong_dot", "luong_concat", "bahdanau", "none"):
                torch.manual_seed(5)
                cfg = ModelConfig(cell=cell, embedding_size=12, encoder_hidden=8, decoder_hidden=16,
                                  decoder_layers=layers, attention=attention, dropout=0.0, init_range=0.4)
                model = Seq2Seq(cfg, 30, 30).double().cuda().eval()
                src = torch.randint(4, 30, (3, 7), generator=torch.Generator().manual_seed(2))
                src[1, 3:], src[2, 5:] = 0, 0
                lens = torch.tensor([7, 3, 5])
                tokens = torch.randint(4, 30, (6, 4), generator=torch.Generator().manual_seed(9)).cuda()
                with torch.inference_mode():
                    assert search_step.applies(model)
                    fast = slow = model.encode(src.cuda(), lens.cuda()).expand_beams(2)
                    for t in range(tokens.size(1)):
                        log_probs, fast = model.step(tokens[:, t], fast)
                        logits, slow, _ = model._decode(tokens[:, t : t + 1], slow)
                        expected = torch.log_softmax(logits.squeeze(1).float(), dim=-1)
                        worst = max(worst, float((log_probs - expected).abs().max()))
                        steps += 1
    RESULT["step_vs_module_float64_max_abs_diff"] = worst
    RESULT["steps_compared"] = steps
    emit()


def check_decode(run: Path, saved: dict[str, Any]) -> None:
    import sentencepiece as spm

    tok, prep = run / "tokenize", run / "prepare"
    sp = spm.SentencePieceProcessor(model_file=str(tok / "spm.tgt.model"))
    table_step = search_step.applies
    hyps = {}
    for label, precision, use_table in (("fp32 table step", "fp32", True), ("fp32 module", "fp32", False),
                                        ("fp16", "fp16", True), ("bf16", "bf16", True),
                                        ("fp32 table step again", "fp32", True), ("fp32 module again", "fp32", False)):
        search_step.applies = table_step if use_table else (lambda model: False)  # type: ignore[assignment]
        out = Path(f"/tmp/gpu_checks/decode/{label.replace(' ', '_')}")
        summary = run_translate(DecodeConfig(**{**saved["decoding"], "precision": precision}), run / "train", tok, prep, out)
        score = run_score(ScoreConfig(), out, prep, Path(f"{out}_score"))
        hyps[label] = (out / "test.hyp").read_text(encoding="utf-8").splitlines()
        tokens = sum(len(sp.encode(h)) + 1 for h in hyps[label])
        RESULT[f"decode beam5 {label}"] = {"seconds": summary["seconds"], "target_tok_s": round(tokens / summary["seconds"]),
                                           "bleu": score["bleu"], "chrf": score.get("chrf")}
        emit()
    search_step.applies = table_step
    RESULT["fp32 table step vs module: identical lines"] = sum(a == b for a, b in zip(hyps["fp32 table step"], hyps["fp32 module"]))
    RESULT["lines"] = len(hyps["fp32 table step"])
    emit()


def check_train(run: Path, saved: dict[str, Any]) -> None:
    for feed in (False, True):
        for precision in ("fp32", "bf16", "fp16"):
            out = Path(f"/tmp/gpu_checks/train/{feed}-{precision}")
            mc = ModelConfig(**{**saved["model"], "input_feeding": feed})
            tc = TrainConfig(**{**saved["training"], "max_steps": 150, "valid_every": 150, "valid_bleu": False,
                                "max_minutes": 0, "precision": precision})
            summary = run_train(mc, tc, run / "tokenize", run / "prepare", out, 1)
            last = json.loads((out / "history.jsonl").read_text().splitlines()[-1])
            RESULT[f"train input_feeding={feed} {precision}"] = {
                "tok_s": summary["target_tokens_per_s"], "train_loss": last.get("train_loss"),
                "dev_loss": last.get("dev_loss"), "precision": summary.get("precision")}
            emit()


def check_resume(run: Path, saved: dict[str, Any]) -> None:
    base = {**saved["training"], "schedule": "constant", "valid_bleu": False, "max_minutes": 0, "precision": "fp32",
            "valid_every": 30}
    mc = ModelConfig(**saved["model"])
    tok, prep, root = run / "tokenize", run / "prepare", Path("/tmp/gpu_checks/resume")
    torch.backends.cudnn.deterministic = True
    run_train(mc, TrainConfig(**{**base, "max_steps": 60}), tok, prep, root / "full", 1)
    run_train(mc, TrainConfig(**{**base, "max_steps": 30}), tok, prep, root / "half", 1)
    run_train(mc, TrainConfig(**{**base, "max_steps": 60}), tok, prep, root / "half", 1, resume=ResumeOptions())
    a, _, _, _ = load_checkpoint(root / "full" / "last")
    b, _, _, _ = load_checkpoint(root / "half" / "last")
    diffs = [float((p - q).abs().max()) for p, q in zip(a.state_dict().values(), b.state_dict().values())]
    RESULT["resume_cuda_max_abs_diff"] = max(diffs)
    RESULT["resume_cuda_equal"] = all(d == 0 for d in diffs)
    emit()


def main() -> None:
    part = sys.argv[1]
    if part == "step":
        check_step()
        return
    run = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/default")
    saved = json.loads((run / "config.json").read_text())
    start = time.perf_counter()
    {"decode": check_decode, "train": check_train, "resume": check_resume}[part](run, saved)
    print(f"{part}: {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
