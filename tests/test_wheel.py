"""s2s installed the usual way: a wheel built from the project, installed into a fresh
virtual environment, trains from an empty folder with the corpus and configs it ships."""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True, text=True)
    [built] = out.glob("s2s-*.whl")
    return built


def test_the_wheel_holds_every_package_and_the_shipped_files(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for init in [*ROOT.glob("pipeline/**/__init__.py"), *ROOT.glob("stages/**/__init__.py")]:
        assert init.relative_to(ROOT).as_posix() in names
    for module in [*ROOT.glob("pipeline/**/*.py"), *ROOT.glob("stages/**/*.py")]:
        assert module.relative_to(ROOT).as_posix() in names
    shipped = {f"pipeline/embedded_data/bible/{s}.tsv.gz" for s in ("train", "dev", "test")}
    shipped |= {f"pipeline/embedded_configs/{c.name}" for c in (ROOT / "configs").glob("*.yaml")}
    shipped |= {f"pipeline/serve/static/{f.name}" for f in (ROOT / "pipeline" / "serve" / "static").iterdir()}
    shipped |= {f"stages/model/fast/csrc/{f.name}" for f in (ROOT / "stages/model/fast/csrc").iterdir()}
    assert shipped <= names, sorted(shipped - names)


def test_an_installed_wheel_trains_from_an_empty_folder(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True)
    # The dependencies come from the test's own environment, added as a plain path (its
    # .pth files, among them an editable install of the project, are not read).
    [own] = subprocess.run([str(python), "-c", "import site; print(site.getsitepackages()[0])"],
                           check=True, capture_output=True, text=True).stdout.split()
    Path(own, "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    work = tmp_path / "empty"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    s2s = str(venv / "bin" / "s2s")

    where = subprocess.run([str(python), "-c", "import pipeline, stages; print(pipeline.__file__, stages.__file__)"],
                           cwd=work, env=env, check=True, capture_output=True, text=True).stdout
    assert str(ROOT) not in where and str(venv) in where

    listed = subprocess.run([s2s, "config", "--list"], cwd=work, env=env, check=True, capture_output=True, text=True)
    assert listed.stdout.split() == sorted(c.stem for c in (ROOT / "configs").glob("*.yaml"))
    subprocess.run([s2s, "config", "tiny", "-o", "tiny.yaml"], cwd=work, env=env, check=True, capture_output=True)
    assert (work / "tiny.yaml").read_text(encoding="utf-8") == (ROOT / "configs" / "tiny.yaml").read_text(encoding="utf-8")
    run = subprocess.run(
        [s2s, "run", "tiny.yaml", "--set", "training.max_steps=10", "--set", "training.valid_every=10",
         "--set", "tokenizer.vocab_size=300", "--set", "decoding.beam_size=1", "--set", "decoding.max_len_extra=2",
         "--set", "decoding.max_len_ratio=0.3"],
        cwd=work, env=env, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    assert (work / "runs" / "tiny" / "score" / "scores.json").is_file()
    assert sorted(p.name for p in work.iterdir()) == ["runs", "tiny.yaml"]
