"""The code's layout: nothing imports from a layer above it, and the leaves stay light."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Every module of stages/ and pipeline/, lowest first: a module may import only modules
# listed before it. A new module must be placed here, where its imports put it.
ORDER = """
stages stages.errors stages.artifacts stages.checks stages.later_keys stages.devices stages.files
stages.corpus stages.corpus.vocab stages.corpus.config stages.corpus.token_ids stages.corpus.tables stages.corpus.halves
stages.corpus.loading stages.corpus.prepare stages.corpus.tokenization stages.corpus.batching
stages.model stages.model.config stages.model.dropout stages.model.attention stages.model.state
stages.model.initialization stages.model.encoder
stages.model.fast stages.model.fast.record stages.model.fast.cpu_kernels stages.model.fast.cells
stages.model.fast.loss stages.model.fast.stepwise stages.model.fast.feeding stages.model.fast.int8 stages.model.fast.search_step
stages.model.seq2seq stages.model.checkpoint
stages.decode stages.decode.config stages.decode.search stages.decode.shortlist stages.decode.ensemble stages.decode.unknowns stages.decode.scoring stages.decode.contrastive
stages.decode.translation
stages.train stages.train.config stages.train.distributed stages.train.board stages.train.progress stages.train.precision
stages.train.schedule stages.train.state stages.train.step stages.train.validation stages.train.trainer
stages.subtitles stages.subtitles.text stages.subtitles.formats stages.subtitles.nondialogue stages.subtitles.norms stages.subtitles.translation
stages.plots stages.plots.attention stages.plots.history
pipeline pipeline.config pipeline.embedded pipeline.runs pipeline.manifest pipeline.orchestrator pipeline.api pipeline.serve pipeline.serve.limits pipeline.serve.batching pipeline.serve.app pipeline.serve.server pipeline.files_cli
pipeline.subtitle_cli pipeline.cli pipeline.entry
""".split()


def modules() -> dict[str, Path]:
    found = {}
    for path in sorted([*ROOT.glob("stages/**/*.py"), *ROOT.glob("pipeline/**/*.py")]):
        parts = path.relative_to(ROOT).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def project_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules `path` imports, TYPE_CHECKING imports and function-level ones included."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] in ("stages", "pipeline")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("stages", "pipeline"):
            for alias in node.names:  # `from stages.model.fast import cells` imports a module
                sub = f"{node.module}.{alias.name}"
                out.add(sub if sub in known else node.module)
    return out


def test_every_module_has_a_place_in_the_order() -> None:
    assert sorted(modules()) == sorted(ORDER)
    assert len(ORDER) == len(set(ORDER))


def test_nothing_imports_from_a_layer_above() -> None:
    rank = {name: i for i, name in enumerate(ORDER)}
    upward = []
    for name, path in modules().items():
        for target in project_imports(path, set(rank)):
            if rank[target] >= rank[name]:
                upward.append(f"{name} imports {target}")
    assert not upward


def test_stages_never_import_click_or_the_orchestrator() -> None:
    for name, path in modules().items():
        if name.startswith("stages"):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
            imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
            assert not imported & {"click", "pipeline"}, name


@pytest.mark.parametrize("module,absent", [
    ("stages.decode.search", ("sentencepiece", "datasets", "pyarrow")),
    ("stages.model.seq2seq", ("sentencepiece", "datasets", "pyarrow")),
    ("stages.corpus.vocab", ("torch", "sentencepiece", "datasets")),
    ("stages.model.config", ("torch",)),
    ("stages.train.config", ("torch",)),
    ("stages.decode.config", ("torch",)),
    ("stages.corpus.config", ("torch", "datasets")),
])
def test_leaves_import_nothing_heavy(module: str, absent: tuple[str, ...]) -> None:
    code = f"import sys, {module}; print(' '.join(m for m in {absent!r} if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert result.stdout.strip() == "", f"{module} pulls in {result.stdout.strip()}"
