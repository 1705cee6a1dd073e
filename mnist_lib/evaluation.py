"""Evaluation: predictions, metrics, per-class report, confusion, calibration, the images to review, submission."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from mnist_lib import modelfile, params, stats, timing
from mnist_lib.records import Dataset

EPSILON = 1e-7  # probabilities are clipped like Keras' cross-entropy does
PAIR_ARROW = " -> "


@dataclass(frozen=True)
class EvaluateConfig:
    """The evaluation parameters, checked on creation so a bad value fails before the model is loaded."""

    batch_size: int = 1000
    calibration_bins: int = 15
    top_pairs: int = 10
    gallery_size: int = 32

    def __post_init__(self) -> None:
        params.require_int("batch_size", self.batch_size, minimum=1, maximum=65_536)
        params.require_int("calibration_bins", self.calibration_bins, minimum=1, maximum=1000)
        params.require_int("top_pairs", self.top_pairs, minimum=0)
        params.require_int("gallery_size", self.gallery_size, minimum=0, maximum=1000)


def load_model(path: str | Path, expected_sha256: str | None = None) -> keras.Model:
    """Load a `.keras` model in safe mode (no code from the file), only if it matches the SHA-256 training recorded
    (or `expected_sha256`, for a model from elsewhere)."""
    return modelfile.load_model(path, expected_sha256)


def predict_proba(model: keras.Model, images: np.ndarray, batch_size: int = 1000) -> np.ndarray:
    """Class probabilities (n, classes) for uint8 images."""
    return model.predict(images.astype(np.float32), batch_size=batch_size, verbose=0)


def check_outputs(model: keras.Model, data: Dataset) -> None:
    """Raise unless the model takes images of the data's shape and predicts one probability per class."""
    expected = tuple(model.input_shape[1:])
    if any(want is not None and want != have for want, have in zip(expected, data.image_shape)) or len(expected) != 3:
        raise ValueError(f"the model takes images of shape {expected} but the test split holds {data.image_shape}")
    if model.output_shape[-1] != data.num_classes:
        raise ValueError(
            f"the model predicts {model.output_shape[-1]} classes but the test split has {data.num_classes} "
            f"({', '.join(data.class_names)}): was it trained on this data?"
        )


def model_info(model: keras.Model, train_summary: str | Path | None = None) -> dict:
    """Model name, training seed and parameter count; name and seed come from the train stage's summary.json if any."""
    parameters = int(model.count_params())
    info = {"model": model.name, "seed": None, "parameters": parameters}
    path = Path(train_summary) if train_summary else None
    if path is not None and path.is_file():
        summary = json.loads(path.read_text())
        if summary.get("parameters") not in (None, parameters):
            raise ValueError(
                f"{path} describes a model with {summary['parameters']:,} parameters but the model has {parameters:,}: "
                "is the summary stale? Rerun the train stage (`dvc repro train`)"
            )
        config = summary.get("config", {})
        info.update(model=config.get("model", model.name), seed=config.get("seed"))
    return info


def per_class_report(labels: np.ndarray | None, predictions: np.ndarray, class_names: tuple[str, ...]) -> pd.DataFrame:
    """Per class: precision, recall, F1, support (true images) and how often it was predicted; only the last without labels."""
    count = len(class_names)
    predicted = np.bincount(predictions, minlength=count)
    table = pd.DataFrame(index=pd.Index(list(class_names), name="class"))
    if labels is None:
        table["predicted"] = predicted
        return table
    support = np.bincount(labels, minlength=count)
    hits = np.bincount(labels[labels == predictions], minlength=count)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(predicted > 0, hits / np.maximum(predicted, 1), 0.0)
        recall = np.where(support > 0, hits / np.maximum(support, 1), 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    present = (support > 0) | (predicted > 0)  # a class absent from both has no defined scores
    table["precision"] = np.where(present, precision, np.nan)
    table["recall"] = np.where(present, recall, np.nan)
    table["f1"] = np.where(present, f1, np.nan)
    table["support"] = support
    table["predicted"] = predicted
    return table


def calibration_table(labels: np.ndarray | None, probabilities: np.ndarray, bins: int = 15) -> pd.DataFrame:
    """Equal-width bins of top-1 confidence: range, images, mean confidence, accuracy (empty without labels)."""
    columns = ["bin_lower", "bin_upper", "images", "confidence", "accuracy"]
    if labels is None:
        return pd.DataFrame(columns=columns)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == labels
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.searchsorted(edges, confidence, side="right") - 1, 0, bins - 1)
    rows = []
    for index in range(bins):
        members = which == index
        if members.any():
            rows.append([edges[index], edges[index + 1], int(members.sum()), float(confidence[members].mean()),
                         float(correct[members].mean())])
    return pd.DataFrame(rows, columns=columns)


def expected_calibration_error(table: pd.DataFrame) -> float:
    """ECE: the image-weighted mean gap between confidence and accuracy over the bins of `calibration_table`."""
    weights = table["images"] / table["images"].sum()
    return float((weights * (table["accuracy"] - table["confidence"]).abs()).sum())


def summarize(labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...], bins: int = 15) -> dict:
    """Accuracy with its 95% Wilson interval, loss (mean cross-entropy), error rate, macro precision/recall/F1, ECE,
    counts, per-class accuracy.
    Macro averages run over the classes present in the labels or the predictions."""
    predictions = probabilities.argmax(axis=1)
    correct = predictions == labels
    picked = np.clip(probabilities[np.arange(len(labels)), labels], EPSILON, 1.0)
    full = per_class_report(labels, predictions, class_names)
    report = full.dropna()
    per_class = {  # a class's accuracy is its recall
        name: float(row.recall) if row.support else None for name, row in full.iterrows()
    }
    low, high = stats.wilson_interval(int(correct.sum()), len(labels))
    return {
        "test_accuracy": float(correct.mean()),
        "test_accuracy_ci95_low": low,
        "test_accuracy_ci95_high": high,
        "ci_method": f"{stats.CI_METHOD}, 95%, from n_errors of n_test",
        "test_loss": float(-np.log(picked).mean()),
        "error_rate": float((~correct).mean()),
        "macro_precision": float(report["precision"].mean()),
        "macro_recall": float(report["recall"].mean()),
        "macro_f1": float(report["f1"].mean()),
        "ece": expected_calibration_error(calibration_table(labels, probabilities, bins)),
        "n_test": int(len(labels)),
        "n_errors": int((~correct).sum()),
        "per_class_accuracy": per_class,
    }


def metrics(data: Dataset, probabilities: np.ndarray, info: dict, bins: int = 15) -> dict:
    """What metrics.json holds: every figure when the split is labeled; n_test and the model's info when it is not."""
    if data.labels is None:
        return {"labeled": False, "n_test": len(data), **info}
    return {**summarize(data.labels, probabilities, data.class_names, bins), "labeled": True, **info}


def metrics_table(metrics: dict) -> pd.DataFrame:
    """metrics.json as a reader wants it: percentages with sensible digits, the interval beside the accuracy."""
    rows = {}
    if metrics.get("labeled"):
        rows["test accuracy"] = (f"{metrics['test_accuracy']:.2%} (95% CI {metrics['test_accuracy_ci95_low']:.2%} to "
                                 f"{metrics['test_accuracy_ci95_high']:.2%})")
        rows["errors"] = f"{metrics['n_errors']:,} of {metrics['n_test']:,}"
        rows |= {f"macro {name}": f"{metrics[f'macro_{name}']:.2%}" for name in ("precision", "recall", "f1")}
        rows["test loss (cross-entropy)"] = f"{metrics['test_loss']:.4f}"
        rows["expected calibration error"] = f"{metrics['ece']:.2%}"
    else:
        rows["test images (unlabeled)"] = f"{metrics['n_test']:,}"
    rows |= {"model": metrics.get("model"), "seed": metrics.get("seed"), "parameters": f"{metrics.get('parameters', 0):,}"}
    return pd.DataFrame({"value": rows}).rename_axis("metric")


def confusion_matrix(labels: np.ndarray | None, predictions: np.ndarray, num_classes: int) -> np.ndarray | None:
    """Counts: row = true class, column = predicted class (None without labels)."""
    if labels is None:
        return None
    return np.bincount(labels * num_classes + predictions, minlength=num_classes**2).reshape(num_classes, num_classes)


def confusion_frame(matrix: np.ndarray | None, class_names: tuple[str, ...]) -> pd.DataFrame:
    """The confusion counts as a table: rows `true`, columns `predicted`, named by class (empty without labels)."""
    index = pd.Index(list(class_names), name="true")
    if matrix is None:
        return pd.DataFrame(index=index[:0])
    return pd.DataFrame(matrix, index=index, columns=pd.Index(list(class_names), name="predicted"))


def confused_pairs(matrix: np.ndarray | None, class_names: tuple[str, ...], top: int = 10) -> pd.DataFrame:
    """The `top` largest off-diagonal cells: pair, true class, predicted class, count, share of the true class."""
    columns = ["pair", "true", "predicted", "count", "share_of_true"]
    if matrix is None:
        return pd.DataFrame(columns=columns)
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    true, predicted = np.nonzero(off)
    order = np.lexsort((predicted, true, -off[true, predicted]))[:top]
    rows = [
        [f"{class_names[t]}{PAIR_ARROW}{class_names[p]}", class_names[t], class_names[p], int(off[t, p]),
         round(float(off[t, p] / matrix[t].sum()), 6)]
        for t, p in zip(true[order], predicted[order])
    ]
    return pd.DataFrame(rows, columns=columns)


def review_table(data: Dataset, probabilities: np.ndarray, limit: int | None = None) -> pd.DataFrame:
    """The test images worth a look, worst first: the errors, most confident first (labeled split),
    else the least confident predictions. Columns: index, source (when known), label, prediction, confidence."""
    predictions = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    if data.labels is None:
        picked = np.argsort(confidence, kind="stable")
    else:
        wrong = np.flatnonzero(predictions != data.labels)
        picked = wrong[np.argsort(-confidence[wrong], kind="stable")]
    picked = picked[:limit]
    table = pd.DataFrame({"index": picked})
    if data.sources is not None:
        table["source"] = [data.sources[i] for i in picked]
    if data.labels is not None:
        table["label"] = [data.class_names[i] for i in data.labels[picked]]
        table["p_label"] = probabilities[picked, data.labels[picked]].round(6)
    table["prediction"] = [data.class_names[i] for i in predictions[picked]]
    table["confidence"] = confidence[picked].round(6)
    return table


def predictions_table(data: Dataset, probabilities: np.ndarray) -> pd.DataFrame:
    """One row per image: index, source (when known), true label (if any), predicted label, probability of each class."""
    table = pd.DataFrame({"index": np.arange(len(data))})
    if data.sources is not None:
        table["source"] = list(data.sources)
    if data.labels is not None:
        table["label"] = [data.class_names[i] for i in data.labels]
    table["prediction"] = [data.class_names[i] for i in probabilities.argmax(axis=1)]
    for index, name in enumerate(data.class_names):
        table[f"p_{name}"] = probabilities[:, index].round(6)
    return table


def submission(probabilities: np.ndarray, class_names: tuple[str, ...]) -> pd.DataFrame:
    """The Kaggle "Digit Recognizer" submission: ImageId from 1 in file order, Label the predicted class."""
    return pd.DataFrame({
        "ImageId": np.arange(1, len(probabilities) + 1),
        "Label": [class_names[i] for i in probabilities.argmax(axis=1)],
    })


def write_predictions(out_dir: str | Path, data: Dataset, probabilities: np.ndarray) -> pd.DataFrame:
    """Write predictions.csv, and submission.csv when the split is unlabeled; return the predictions table."""
    out_dir = Path(out_dir)
    table = predictions_table(data, probabilities)
    table.to_csv(out_dir / "predictions.csv", index=False)
    kaggle = out_dir / "submission.csv"
    if data.labels is None:
        submission(probabilities, data.class_names).to_csv(kaggle, index=False)
    else:
        kaggle.unlink(missing_ok=True)  # a labeled run never leaves an old submission behind
    return table


def write_metrics(path: str | Path, metrics: dict) -> Path:
    """Write metrics as indented JSON (what `dvc metrics show` reads)."""
    path = Path(path)
    path.write_text(json.dumps(metrics, indent=2) + "\n")
    return path


def throughput(model: keras.Model, images: np.ndarray, batch_size: int, repeats: int = 3) -> dict:
    """Inference speed: the best of `repeats` timed passes over `images` after one warm-up batch (images per second)."""
    predict_proba(model, images[:batch_size], batch_size)  # builds and traces the predict function untimed
    best = timing.timed(lambda: predict_proba(model, images, batch_size), repeats).best
    return {"images": len(images), "batch_size": batch_size, "seconds": round(best, 3),
            "images_per_second": round(len(images) / best, 1)}
