"""Every notebook runs top to bottom under nbval (lax), in pipeline order, on bring-your-own data: a 3-class
32x32 RGB image folder (real PNG/JPG files of varied sizes), with nothing changed but the data parameters."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pandas as pd
import papermill
import pytest
from PIL import Image

from conftest import REPO, SHAPES, write_shape_folders
from mnist_lib import notebooks, split

pytestmark = pytest.mark.slow


def test_every_notebook_runs_under_nbval_on_a_three_class_32x32_rgb_folder(tmp_path):
    data_dir = tmp_path / "shapes"
    write_shape_folders(data_dir / "train", 150, seed=3)
    write_shape_folders(data_dir / "test", 30, seed=4)
    data = {"data_format": "image_folder", "data_dir": str(data_dir), "image_size": 32, "channels": 3}
    work = tmp_path / "outputs"
    plan = {  # parameters as papermill injects them; the notebooks' own defaults cover the rest
        "01_eda": {**data, "out_dir": str(work / "eda"), "sample_size": 100},
        "02_split": {**data, "out_dir": str(work / "split")},
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

    train = split.load_split(work / "split", "train")
    assert train.image_shape == (32, 32, 3) and train.class_names == SHAPES
    assert all(source.startswith(f"train/{SHAPES[label]}/") for label, source in zip(train.labels, train.sources))
    assert json.loads((work / "train" / "summary.json").read_text())["epochs_run"] == 1
    metrics = json.loads((work / "evaluate" / "metrics.json").read_text())
    assert metrics["n_test"] == 30 and set(metrics["per_class_accuracy"]) == set(SHAPES)
    assert {"test_accuracy", "test_loss", "error_rate", "n_errors", "macro_f1", "ece"} <= set(metrics)
    recorded = json.loads((work / "evaluate" / "environment.json").read_text())
    assert recorded["keras"] == keras.__version__ and recorded["cpu_count"] == os.cpu_count()
    predictions = pd.read_csv(work / "evaluate" / "predictions.csv")
    assert [column for column in predictions if column.startswith("p_")] == [f"p_{name}" for name in SHAPES]
    assert set(predictions["label"]) <= set(SHAPES) and predictions["source"].str.startswith("test/").all()
    assert int((predictions["label"] != predictions["prediction"]).sum()) == metrics["n_errors"]
    names = list(SHAPES)
    confusion = pd.read_csv(work / "evaluate" / "confusion.csv", index_col="true")
    assert confusion.index.tolist() == confusion.columns.tolist() == names and confusion.to_numpy().sum() == 30
    assert pd.read_csv(work / "evaluate" / "per_class.csv", index_col="class").index.tolist() == names
    # The gallery is drawn in colour: the shapes' colours differ between channels (in gray they would not), and
    # unlike the titles' red (firebrick), many have green or blue as their strongest channel.
    pixels = np.asarray(Image.open(work / "evaluate" / "gallery.png").convert("RGB")).astype(int)
    coloured = (pixels.max(axis=2) - pixels.min(axis=2) > 30) & (pixels.argmax(axis=2) > 0)
    assert coloured.sum() > 200, coloured.sum()
    for figure in ("eda/samples.png", "eda/mean_images.png", "eda/pca.png", "split/class_counts.png", "train/curves.png",
                   "evaluate/confusion.png", "evaluate/gallery.png", "evaluate/reliability.png"):
        assert (work / figure).stat().st_size > 1000, figure
