"""Bring-your-own data end to end: the real notebooks (papermill, real kernel) on a Kaggle CSV folder, with nothing
changed but the data parameters (tests/test_notebooks.py runs every notebook on an RGB image folder)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import REPO, draw_digits, write_kaggle_csv
from mnist_lib import evaluation, notebooks, split

pytestmark = pytest.mark.slow


def run_stages(work, data: dict) -> None:
    """Run split, train (1 epoch) and evaluate on `data` parameters, outputs under `work`."""
    plan = {
        "02_split": {**data, "out_dir": work / "split"},
        "03_train": {"split_dir": work / "split", "out_dir": work / "train", "epochs": 1, "batch_size": 32},
        "04_evaluate": {"split_dir": work / "split", "model_path": work / "train" / "model.keras",
                        "train_summary": work / "train" / "summary.json", "out_dir": work / "evaluate"},
    }
    for name, values in plan.items():
        overrides = {key: str(value) for key, value in values.items()}
        notebooks.run(REPO / "notebooks" / f"{name}.py", work / "nb" / f"{name}.ipynb", [], overrides, html=False)


def test_kaggle_csv_runs_split_train_evaluate_to_a_submission(tmp_path):
    pictures, labels = draw_digits(330, seed=11)
    data_dir = tmp_path / "kaggle"
    data_dir.mkdir()
    write_kaggle_csv(data_dir / "train.csv", pictures[:300], labels[:300])
    write_kaggle_csv(data_dir / "test.csv", pictures[300:])
    work = tmp_path / "outputs"
    run_stages(work, {"data_format": "kaggle_csv", "data_dir": data_dir, "train_size": 150})

    summary = json.loads((work / "split" / "summary.json").read_text())
    assert (summary["train_images"], summary["val_images"], summary["test_images"]) == (150, 30, 30)
    assert summary["train_size"] == 150  # of the 270 left after validation: about half of each class
    train = split.load_split(work / "split", "train")
    assert (np.abs(np.bincount(train.labels, minlength=10) - np.bincount(labels[:300], minlength=10) / 2) <= 1.5).all()
    assert json.loads((work / "train" / "summary.json").read_text())["members"][0]["batch_size"] == 19  # 150 / 8 steps
    assert summary["test_labeled"] is False and summary["test_from"] == "data"
    test = split.load_split(work / "split", "test")
    assert test.labels is None and np.array_equal(test.images[..., 0], pictures[300:])

    predictions = pd.read_csv(work / "evaluate" / "predictions.csv")
    assert len(predictions) == 30 and "label" not in predictions
    assert list(predictions["source"]) == [f"test.csv row {row}" for row in range(1, 31)]
    submission = pd.read_csv(work / "evaluate" / "submission.csv")
    assert list(submission.columns) == ["ImageId", "Label"]
    assert list(submission["ImageId"]) == list(range(1, 31))
    assert list(submission["Label"]) == list(predictions["prediction"])
    metrics = json.loads((work / "evaluate" / "metrics.json").read_text())  # only what needs no labels
    parameters = evaluation.load_model(work / "train" / "model.keras").count_params()
    assert metrics == {"labeled": False, "n_test": 30, "model": "cnn_strong", "seed": 42, "parameters": parameters}
    assert pd.read_csv(work / "evaluate" / "per_class.csv")["predicted"].sum() == 30
    assert pd.read_csv(work / "evaluate" / "confused_pairs.csv").empty
    gallery = pd.read_csv(work / "evaluate" / "gallery.csv")  # the least confident predictions, for a look
    assert "label" not in gallery and len(gallery) > 0 and gallery["confidence"].is_monotonic_increasing
