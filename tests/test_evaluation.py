"""Evaluation figures computed from known probabilities, and files consistent with the predictions."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_lib import evaluation
from mnist_lib.datasets import Dataset

PROBABILITIES = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
LABELS = np.array([0, 1, 2, 2])  # the third image is an error (2 predicted as 1)


def test_summary_counts_accuracy_loss_and_errors():
    metrics = evaluation.summarize(LABELS, PROBABILITIES, ("a", "b", "c"))
    assert metrics["test_accuracy"] == 0.75 and metrics["n_errors"] == 1 and metrics["n_test"] == 4
    assert metrics["error_rate"] == pytest.approx(0.25)
    expected_loss = -np.mean(np.log([0.9, 0.7, 0.3, 1.0 - 1e-7]))
    assert metrics["test_loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert metrics["per_class_accuracy"] == {"a": 1.0, "b": 1.0, "c": 0.5}


def test_confusion_matrix_counts_true_rows_predicted_columns_and_sums_to_n():
    matrix = evaluation.confusion_matrix(LABELS, PROBABILITIES.argmax(axis=1), 3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert matrix.sum() == len(LABELS)


def test_predictions_table_has_one_row_per_image_with_labels_and_probabilities():
    data = Dataset(np.zeros((4, 2, 2, 1), np.uint8), LABELS, ("a", "b", "c"))
    table = evaluation.predictions_table(data, PROBABILITIES)
    assert table["prediction"].tolist() == ["a", "b", "b", "c"]
    assert table["label"].tolist() == ["a", "b", "c", "c"]
    assert np.allclose(table[["p_a", "p_b", "p_c"]].to_numpy(), PROBABILITIES)


def test_unlabeled_predictions_table_has_no_label_column():
    data = Dataset(np.zeros((4, 2, 2, 1), np.uint8), None, ("a", "b", "c"))
    assert "label" not in evaluation.predictions_table(data, PROBABILITIES)


def test_missing_model_file_says_which_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the train stage first"):
        evaluation.load_model(tmp_path / "model.keras")
