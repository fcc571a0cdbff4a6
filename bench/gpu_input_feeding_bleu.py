"""Train the default config with model.input_feeding (fp32, 2,400 steps) and score the
test books, for comparison with the same run without it (python bench/gpu_input_feeding_bleu.py [RUN]).
"""
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, os.getcwd())
from stages.decode.config import DecodeConfig, ScoreConfig
from stages.decode.scoring import run_score
from stages.decode.translation import run_translate
from stages.model.config import ModelConfig
from stages.train.config import TrainConfig
from stages.train.trainer import run_train

run = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/default"); saved = json.loads((run / "config.json").read_text()); work = Path("/tmp/if")
t = time.time()
s = run_train(ModelConfig(**{**saved["model"], "input_feeding": True}), TrainConfig(**{**saved["training"], "max_minutes": 0, "valid_every": 1200}), run / "tokenize", run / "prepare", work / "train", saved["seed"])
run_translate(DecodeConfig(**saved["decoding"]), work / "train", run / "tokenize", run / "prepare", work / "tr")
sc = run_score(ScoreConfig(), work / "tr", run / "prepare", work / "sc")
hist = [json.loads(l) for l in open(work / "train" / "history.jsonl")]
out = {"input_feeding": True, "steps": s["steps"], "target_tokens_per_s": s["target_tokens_per_s"], "train_s": round(time.time() - t),
       "test_bleu": sc["bleu"], "test_chrf": sc["chrf"], "dev": [(h["step"], h.get("dev_bleu"), h.get("dev_loss")) for h in hist]}
print(json.dumps(out)); Path(os.environ.get("OUT", "/tmp"), "if_bleu.json").write_text(json.dumps(out, indent=1))
