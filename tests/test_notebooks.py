"""Every notebook runs top to bottom under nbval (lax) on a tiny dataset, in pipeline order."""

from __future__ import annotations

import json
import subprocess
import sys

import papermill
import pytest

from conftest import REPO
from mnist_lib import notebooks

pytestmark = pytest.mark.slow


def test_all_notebooks_run_under_nbval_on_tiny_data(tiny_mnist, tmp_path):
    data_dir, _ = tiny_mnist
    work = tmp_path / "outputs"
    plan = {  # parameters as papermill injects them; the notebooks' own defaults cover the rest
        "01_eda": {"data_format": "idx", "data_dir": str(data_dir), "out_dir": str(work / "eda"), "sample_size": 200},
        "02_split": {"data_format": "idx", "data_dir": str(data_dir), "out_dir": str(work / "split")},
        "03_train": {"split_dir": str(work / "split"), "out_dir": str(work / "train"), "epochs": 1, "batch_size": 32},
        "04_evaluate": {"split_dir": str(work / "split"), "model_path": str(work / "train" / "model.keras"),
                        "train_summary": str(work / "train" / "summary.json"), "out_dir": str(work / "evaluate")},
    }
    prepared = []
    for name, values in plan.items():
        notebook, _ = notebooks.prepare(REPO / "notebooks" / f"{name}.py")
        target = tmp_path / "nb" / f"{name}.ipynb"
        target.parent.mkdir(exist_ok=True)
        papermill.execute_notebook(notebook, str(target), parameters=values, prepare_only=True,
                                   kernel_name="python3", language="python", progress_bar=False)
        prepared.append(str(target))

    done = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider", "-q", "--rootdir", str(tmp_path), *prepared],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "failed" not in done.stdout.splitlines()[-1]

    metrics = json.loads((work / "evaluate" / "metrics.json").read_text())
    assert metrics["n_test"] == 100
    assert {"test_accuracy", "test_loss", "error_rate", "n_errors", "macro_f1", "ece"} <= set(metrics)
    for figure in ("eda/samples.png", "eda/pca.png", "split/class_counts.png", "train/curves.png", "evaluate/confusion.png",
                   "evaluate/gallery.png", "evaluate/reliability.png"):
        assert (work / figure).stat().st_size > 1000, figure
