"""Evaluation: predictions, metrics, confusion matrix and the predictions table, from a model and a labeled split."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from mnist_lib.datasets import Dataset

EPSILON = 1e-7  # probabilities are clipped like Keras' cross-entropy does


def load_model(path: str | Path) -> keras.Model:
    """Load a `.keras` model in safe mode (no code from the file), only if it matches the SHA-256 training recorded."""
    from mnist_lib import modelfile  # the file must match the SHA-256 that training recorded beside it

    return modelfile.load_model(path)


def predict_proba(model: keras.Model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (n, classes) for uint8 images."""
    return model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)


def summarize(labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...]) -> dict:
    """Test accuracy, loss (mean cross-entropy), error rate, counts and per-class accuracy."""
    predictions = probabilities.argmax(axis=1)
    correct = predictions == labels
    picked = np.clip(probabilities[np.arange(len(labels)), labels], EPSILON, 1.0)
    per_class = {
        name: float(correct[labels == index].mean()) if (labels == index).any() else None
        for index, name in enumerate(class_names)
    }
    return {
        "test_accuracy": float(correct.mean()),
        "test_loss": float(-np.log(picked).mean()),
        "error_rate": float(1.0 - correct.mean()),
        "n_test": int(len(labels)),
        "n_errors": int((~correct).sum()),
        "per_class_accuracy": per_class,
    }


def confusion_matrix(labels: np.ndarray, predictions: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts: row = true class, column = predicted class."""
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def predictions_table(data: Dataset, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per image: index, true label (if any), predicted label, probability of each class."""
    table = pd.DataFrame({"index": np.arange(len(data))})
    if data.labels is not None:
        table["label"] = [data.class_names[i] for i in data.labels]
    table["prediction"] = [data.class_names[i] for i in probabilities.argmax(axis=1)]
    for index, name in enumerate(data.class_names):
        table[f"p_{name}"] = probabilities[:, index].round(6)
    return table


def write_metrics(path: str | Path, metrics: dict) -> Path:
    """Write metrics as indented JSON (what `dvc metrics show` reads)."""
    path = Path(path)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path
