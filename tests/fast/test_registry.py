"""The registry of optimised paths names real tests, and every tally name is in it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import torch

from stages.model.config import ModelConfig
from stages.model.fast import NAMES, PATHS, record
from stages.model.seq2seq import Seq2Seq, sequence_loss

ROOT = Path(__file__).resolve().parents[2]


def test_every_path_is_proven_by_tests_that_exist() -> None:
    for path in PATHS:
        assert path.proven_by, path.name
        for test in path.proven_by:
            file, function = test.split("::")
            tree = ast.parse((ROOT / file).read_text(encoding="utf-8"))
            names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
            assert function in names, f"{path.name}: {test} does not exist"


def test_every_tallied_name_is_registered() -> None:
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (ROOT / "stages").rglob("*.py"))
    tallied = set(re.findall(r'record\.ran\("([\w.]+)"\)', sources))
    assert tallied and tallied <= NAMES, tallied - NAMES


@pytest.mark.parametrize("feeding", [False, True])
def test_a_training_step_and_a_search_step_are_tallied(feeding: bool) -> None:
    torch.manual_seed(0)
    model = Seq2Seq(ModelConfig(embedding_size=8, encoder_hidden=6, decoder_hidden=12, input_feeding=feeding), 20, 20)
    src, lens, tgt = torch.tensor([[4, 5, 6]]), torch.tensor([3]), torch.tensor([[2, 7, 8]])
    record.reset()
    sequence_loss(model(src, lens, tgt), tgt, 0.1).backward()
    with torch.inference_mode():
        model.eval().step(torch.tensor([2]), model.encode(src, lens))
    ran = record.tally()
    assert ("input_feeding.stepwise" in ran) == feeding
    assert ran.get("search_step.tables", 0) == 1  # with input feeding too
    assert ran.get("cross_entropy.kernel", 0) + ran.get("cross_entropy.operators", 0) >= 1
    assert set(ran) <= NAMES
