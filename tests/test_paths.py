"""Relative paths mean the same from the project root (papermill, DVC) and from notebooks/ (Jupyter, nbval)."""

from __future__ import annotations

from mnist_lib import paths


def test_relative_path_resolves_from_the_project_root_in_any_subfolder(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    from_notebooks = paths.resolve("outputs/split")
    monkeypatch.chdir(tmp_path)
    assert from_notebooks == paths.resolve("outputs/split") == tmp_path.resolve() / "outputs" / "split"


def test_absolute_path_is_kept(tmp_path):
    assert paths.resolve(tmp_path / "x") == tmp_path / "x"


def test_stage_dir_creates_the_folder(tmp_path, monkeypatch):
    (tmp_path / "dvc.yaml").write_text("stages: {}\n")
    monkeypatch.chdir(tmp_path)
    assert paths.stage_dir("outputs/eda").is_dir()
