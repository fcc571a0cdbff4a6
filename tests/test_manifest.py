from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.manifest import Manifest, hash_outputs
from stages.errors import ArtifactError
from stages.files import atomic_path


def test_round_trip_and_currency(tmp_path: Path) -> None:
    (tmp_path / "prepare").mkdir()
    (tmp_path / "prepare" / "train.src").write_text("a\n", encoding="utf-8")
    manifest = Manifest.load(tmp_path)
    manifest.start("prepare", "fp1")
    assert not manifest.is_current("prepare", ["fp1"], tmp_path, "prepare")  # still running
    manifest.finish("prepare", hash_outputs(tmp_path, "prepare"), 1.234, {"pairs": 1})
    again = Manifest.load(tmp_path)
    assert again.data == manifest.data
    assert again.stage("prepare")["seconds"] == 1.23
    assert again.is_current("prepare", ["fp1"], tmp_path, "prepare")
    assert not again.is_current("prepare", ["fp2"], tmp_path, "prepare")
    (tmp_path / "prepare" / "train.src").write_text("b\n", encoding="utf-8")
    assert not again.is_current("prepare", ["fp1"], tmp_path, "prepare")


def test_failed_stage_is_not_current(tmp_path: Path) -> None:
    (tmp_path / "score").mkdir()
    manifest = Manifest.load(tmp_path)
    manifest.start("score", "fp")
    manifest.fail("score", "boom", 0.5)
    assert Manifest.load(tmp_path).stage("score")["status"] == "failed"
    assert not manifest.is_current("score", ["fp"], tmp_path, "score")


def test_damaged_manifest_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ArtifactError, match="damaged manifest"):
        Manifest.load(tmp_path)


def test_atomic_path_leaves_target_untouched_on_error(tmp_path: Path) -> None:
    target = tmp_path / "out.txt"
    target.write_text("old", encoding="utf-8")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half", encoding="utf-8")
            raise RuntimeError("interrupted")
    assert target.read_text(encoding="utf-8") == "old"
    assert list(tmp_path.iterdir()) == [target]
