"""Sharing results through a DVC remote, as README.md shows: push from one clone to a local-folder remote, pull
into a second clone, and there `dvc status` is clean and `dvc repro` runs nothing."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from conftest import REPO, write_tiny_mnist
from test_pipeline import ran, set_params, sh, stale

pytestmark = pytest.mark.slow
GIT_USER = ["-c", "user.name=t", "-c", "user.email=t@example.com"]


def tracked_files(repo) -> dict[str, bytes]:
    """Every file under outputs/ (what DVC tracks here), by path relative to the repo."""
    return {path.relative_to(repo).as_posix(): path.read_bytes()
            for path in sorted((repo / "outputs").rglob("*")) if path.is_file()}


def test_push_to_a_local_remote_then_pull_into_a_second_clone_gives_a_clean_up_to_date_pipeline(tmp_path):
    first = tmp_path / "first"
    for name in sh(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO).stdout.split():
        if (REPO / name).is_file():
            (first / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, first / name)
    sh(["git", "init", "-q"], first)
    write_tiny_mnist(first / "outputs" / "data" / "raw")
    set_params(first, "data", data_format="idx")
    sh(["dvc", "commit", "--force", "fetch"], first)
    sh(["dvc", "repro", "--single-item", "split"], first)  # a real stage run; the rest are locked on stand-ins
    out = first / "outputs"
    for name in ("eda/summary.json", "train/model.keras", "train/model.keras.sha256", "train/summary.json",
                 "evaluate/metrics.json", "reports/index.html"):
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text(json.dumps({"stand_in": name}) + "\n")
    for name in ("01_eda", "03_train", "04_evaluate"):
        nbformat.write(nbformat.v4.new_notebook(), out / "notebooks" / f"{name}.ipynb")
    sh(["dvc", "commit", "--force", "eda", "train", "evaluate", "report"], first)
    assert stale(first) == set()

    remote = tmp_path / "remote"  # README: `dvc remote add -d shared /path/to/a/shared/folder`
    sh(["dvc", "remote", "add", "-d", "shared", str(remote)], first)
    sh(["git", "add", "-A"], first)
    sh(["git", *GIT_USER, "commit", "-qm", "pipeline run, remote"], first)
    sh(["dvc", "push"], first)
    assert json.loads(sh(["dvc", "status", "--cloud", "--json"], first).stdout) == {}  # everything is on the remote

    second = tmp_path / "second"
    sh(["git", "clone", "-q", str(first), str(second)], tmp_path)
    assert not (second / "outputs").exists()
    sh(["dvc", "pull"], second)
    assert tracked_files(second) == tracked_files(first)
    assert stale(second) == set()
    done = sh(["dvc", "repro"], second)
    assert ran(done.stdout) == [] and "Data and pipelines are up to date" in done.stdout
