"""GPU checks behind the README's CUDA figures: training precision x input feeding
(tokens/s, loss; 150 steps each), exact resume on CUDA, half-precision decoding.

    python bench/gpu_checks.py train|resume|decode [RUN]     # RUN defaults to runs/default
"""
import json, os, sys, time
from pathlib import Path
sys.path.insert(0, os.getcwd())
import torch
from stages.model import ModelConfig
from stages.training import TrainConfig, run_train
from stages.train_state import ResumeOptions
from stages.translation import DecodeConfig, run_translate
from stages.scoring import ScoreConfig, run_score
from stages.checkpoint import load_checkpoint

run = Path(sys.argv[2] if len(sys.argv) > 2 else "runs/default"); out = Path(os.environ.get("OUT", "/tmp")); res = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}
saved = json.loads((run / "config.json").read_text())
tok, prep = run / "tokenize", run / "prepare"
def emit():
    (out / "check2.json").write_text(json.dumps(res, indent=1)); print(json.dumps(res)[-600:], flush=True)
part = sys.argv[1]
if part == "train":
    for feed in (False, True):
        for prec in ("fp32", "bf16", "fp16"):
            mc = ModelConfig(**{**saved["model"], "input_feeding": feed})
            tc = TrainConfig(**{**saved["training"], "max_steps": 150, "valid_every": 150, "valid_bleu": False, "max_minutes": 0, "precision": prec})
            s = run_train(mc, tc, tok, prep, Path(f"/tmp/c2/{feed}-{prec}"), 1)
            hist = [json.loads(l) for l in open(f"/tmp/c2/{feed}-{prec}/history.jsonl")]
            res[f"train input_feeding={feed} {prec}"] = {"tok_s": s["target_tokens_per_s"], "train_loss": hist[-1].get("train_loss"), "dev_loss": hist[-1].get("dev_loss"), "precision": s.get("precision")}
            emit()
elif part == "resume":
    base = {**saved["training"], "schedule": "constant", "valid_bleu": False, "max_minutes": 0, "precision": "fp32", "valid_every": 30}
    mc = ModelConfig(**saved["model"])
    torch.backends.cudnn.deterministic = True
    run_train(mc, TrainConfig(**{**base, "max_steps": 60}), tok, prep, Path("/tmp/r/full"), 1)
    run_train(mc, TrainConfig(**{**base, "max_steps": 30}), tok, prep, Path("/tmp/r/half"), 1)
    run_train(mc, TrainConfig(**{**base, "max_steps": 60}), tok, prep, Path("/tmp/r/half"), 1, resume=ResumeOptions())
    a, _, _, _ = load_checkpoint(Path("/tmp/r/full/last")); b, _, _, _ = load_checkpoint(Path("/tmp/r/half/last"))
    diffs = [float((p - q).abs().max()) for p, q in zip(a.state_dict().values(), b.state_dict().values())]
    res["resume_cuda_max_abs_diff"] = max(diffs); res["resume_cuda_equal"] = all(d == 0 for d in diffs); emit()
else:
    for prec in ("fp32", "fp16", "bf16", "fp32"):
        dc = DecodeConfig(**{**saved["decoding"], "precision": prec})
        t = time.perf_counter(); s = run_translate(dc, run / "train", tok, prep, Path(f"/tmp/d/{prec}")); wall = time.perf_counter() - t
        sc = run_score(ScoreConfig(), Path(f"/tmp/d/{prec}"), prep, Path(f"/tmp/d/{prec}s"))
        hyps = Path(f"/tmp/d/{prec}/test.hyp").read_text().splitlines()
        import sentencepiece as spm
        sp = spm.SentencePieceProcessor(model_file=str(tok / "spm.tgt.model"))
        ntok = sum(len(sp.encode(h)) + 1 for h in hyps)
        res[f"decode beam5 {prec}"] = {"seconds": s["seconds"], "target_tok_s": round(ntok / s["seconds"]), "bleu": sc["bleu"]}
        emit()
