"""The real `dvc repro` on a copy of this repo with a tiny dataset: outputs, idempotence, exactly the right reruns."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, write_tiny_mnist

pytestmark = pytest.mark.slow
STAGES = ("fetch", "eda", "split", "train", "evaluate", "report")


def sh(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} exited {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def ran(output: str) -> list[str]:
    """Stages `dvc repro` ran, in order."""
    return re.findall(r"Running stage '(\w+)'", output)


def set_params(repo: Path, name: str, **values) -> None:
    path = repo / "params" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    data.update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A fresh git repo holding this project's files, with a tiny dataset standing in for the fetched MNIST."""
    repo = tmp_path_factory.mktemp("pipeline") / "repo"
    files = sh(["git", "ls-files", "-co", "--exclude-standard"], cwd=REPO).stdout.split()
    for name in files:
        if (REPO / name).is_file():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, repo / name)
    sh(["git", "init", "-q"], repo)
    # Tiny data is not the pinned MNIST, so it is read as a plain IDX folder and recorded as fetch's output.
    write_tiny_mnist(repo / "outputs" / "data" / "raw")
    set_params(repo, "data", data_format="idx")
    set_params(repo, "eda", sample_size=200)
    set_params(repo, "train", epochs=1)
    sh(["dvc", "commit", "--force", "fetch"], repo)
    sh(["git", "add", "-A"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "tiny"], repo)
    return repo


def test_repro_runs_every_stage_and_writes_the_promised_outputs(repo):
    done = sh(["dvc", "repro"], repo)
    assert ran(done.stdout) == ["eda", "split", "train", "evaluate", "report"]
    out = repo / "outputs"
    for name in ("01_eda", "02_split", "03_train", "04_evaluate"):
        assert (out / "notebooks" / f"{name}.ipynb").is_file()
        assert (out / "reports" / f"{name}.html").stat().st_size > 10_000
    index = (out / "reports" / "index.html").read_text()
    assert all(f'href="{name}.html"' in index for name in ("01_eda", "02_split", "03_train", "04_evaluate"))
    assert "test_accuracy" in index
    assert "data:image/png;base64" in (out / "reports" / "04_evaluate.html").read_text()
    metrics = json.loads((out / "evaluate" / "metrics.json").read_text())
    assert metrics["n_test"] == 100 and 0.0 <= metrics["test_accuracy"] <= 1.0
    assert metrics["error_rate"] == pytest.approx(1 - metrics["test_accuracy"])
    assert metrics["model"] == "cnn_small" and metrics["seed"] == 42 and 0.0 <= metrics["ece"] <= 1.0
    assert "<dt>n_errors</dt>" in index and "<dt>macro_f1</dt>" in index
    assert (out / "train" / "model.keras").is_file()


def test_second_repro_runs_nothing(repo):
    done = sh(["dvc", "repro"], repo)
    assert ran(done.stdout) == []
    assert "Data and pipelines are up to date" in done.stdout
    assert "up to date" in sh(["dvc", "status"], repo).stdout


def test_dvc_metrics_and_plots_read_the_outputs(repo):
    shown = sh(["dvc", "metrics", "show"], repo).stdout
    assert "test_accuracy" in shown and "n_test" in shown
    sh(["dvc", "plots", "show", "-o", "plots_html"], repo)
    page = (repo / "plots_html" / "index.html").read_text()
    assert "Loss" in page and "Accuracy" in page and "Confusion matrix" in page
    assert "Confusion matrix, row-normalised" in page and "Calibration" in page and "gallery.png" in page


def test_changing_train_params_reruns_train_evaluate_report_only(repo):
    sh(["git", "add", "dvc.lock"], repo)
    sh(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "first run"], repo)
    set_params(repo, "train", batch_size=32)
    done = sh(["dvc", "repro"], repo)
    assert ran(done.stdout) == ["train", "evaluate", "report"]
    # `dvc metrics diff` shows what the change did against the committed run.
    diff = json.loads(sh(["dvc", "metrics", "diff", "--json"], repo).stdout)["outputs/evaluate/metrics.json"]
    assert diff["test_loss"]["old"] != diff["test_loss"]["new"]
    assert diff["test_loss"]["diff"] == pytest.approx(diff["test_loss"]["new"] - diff["test_loss"]["old"])


def test_a_failing_stage_keeps_its_lock_entry_and_the_fix_restores_the_last_good_outputs(repo):
    lock = lambda: yaml.safe_load((repo / "dvc.lock").read_text())["stages"]["evaluate"]  # noqa: E731
    entry, metrics = lock(), (repo / "outputs" / "evaluate" / "metrics.json").read_bytes()
    notebook = repo / "notebooks" / "04_evaluate.py"
    good, marker = notebook.read_text(), "metrics = evaluation.metrics("
    assert marker in good
    notebook.write_text(good.replace(marker, f"raise RuntimeError('injected fault')\n{marker}", 1))
    failed = sh(["dvc", "repro"], repo, check=False)
    assert failed.returncode != 0
    assert ran(failed.stdout) == ["evaluate"] and "RuntimeError: injected fault" in failed.stderr
    assert lock() == entry
    notebook.write_text(good)
    fixed = sh(["dvc", "repro"], repo)
    assert "Stage 'evaluate' is cached - skipping run, checking out outputs" in fixed.stdout
    assert (repo / "outputs" / "evaluate" / "metrics.json").read_bytes() == metrics
    assert "up to date" in sh(["dvc", "status"], repo).stdout
