"""Evaluation figures computed from known probabilities, and the evaluate notebook's files checked against its
predictions on a real run on labeled digits (the notebook tests run it on an unlabeled Kaggle CSV and on three named
RGB classes)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from evaluate_cases import colour_blobs, digits, run_evaluate, write_case
from mnist_lib import evaluation, models, plots
from mnist_lib.records import Dataset

PROBABILITIES = np.array([[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.1, 0.6, 0.3], [0.0, 0.0, 1.0]])
LABELS = np.array([0, 1, 2, 2])  # the third image is an error (2 predicted as 1)
NAMES = ("a", "b", "c")


def test_summary_counts_accuracy_loss_and_errors():
    metrics = evaluation.summarize(LABELS, PROBABILITIES, NAMES)
    assert metrics["test_accuracy"] == 0.75 and metrics["n_errors"] == 1 and metrics["n_test"] == 4
    assert metrics["error_rate"] == pytest.approx(0.25)
    expected_loss = -np.mean(np.log([0.9, 0.7, 0.3, 1.0 - 1e-7]))
    assert metrics["test_loss"] == pytest.approx(expected_loss, rel=1e-5)
    assert metrics["per_class_accuracy"] == {"a": 1.0, "b": 1.0, "c": 0.5}
    # 3 of 4: Wilson (z = 1.96) centre (0.75 + z^2/8) / (1 + z^2/4) = 0.6275, half-width 0.3269
    assert (metrics["test_accuracy_ci95_low"], metrics["test_accuracy_ci95_high"]) == pytest.approx((0.3006, 0.9544), abs=1e-4)
    assert metrics["ci_method"].startswith("Wilson score interval, 95%")
    shown = evaluation.metrics_table({**metrics, "labeled": True, "model": "m", "seed": 1, "parameters": 1234})["value"]
    assert shown["test accuracy"] == "75.00% (95% CI 30.06% to 95.44%)" and shown["errors"] == "1 of 4"
    assert shown["parameters"] == "1,234" and shown["macro f1"].endswith("%")


def test_macro_scores_average_the_per_class_precision_recall_and_f1():
    # a: 1 of 1 predicted right; b: predicted twice, right once; c: one of its two images found.
    metrics = evaluation.summarize(LABELS, PROBABILITIES, NAMES)
    assert metrics["macro_precision"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert metrics["macro_recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert metrics["macro_f1"] == pytest.approx((1 + 2 / 3 + 2 / 3) / 3)


def test_per_class_report_has_scores_support_and_predicted_counts():
    report = evaluation.per_class_report(LABELS, PROBABILITIES.argmax(axis=1), NAMES)
    assert report.index.tolist() == list(NAMES)
    assert report["support"].tolist() == [1, 1, 2] and report["predicted"].tolist() == [1, 2, 1]
    assert report["precision"].tolist() == pytest.approx([1.0, 0.5, 1.0])
    assert report["recall"].tolist() == pytest.approx([1.0, 1.0, 0.5])


def test_a_class_absent_from_labels_and_predictions_has_no_scores_and_leaves_the_macro_average():
    four = np.hstack([PROBABILITIES, np.zeros((4, 1))])
    report = evaluation.per_class_report(LABELS, four.argmax(axis=1), NAMES + ("d",))
    assert report.loc["d", ["precision", "recall", "f1"]].isna().all() and report.loc["d", "support"] == 0
    with_d = evaluation.summarize(LABELS, four, NAMES + ("d",))
    assert with_d["macro_f1"] == pytest.approx(evaluation.summarize(LABELS, PROBABILITIES, NAMES)["macro_f1"])
    assert with_d["per_class_accuracy"]["d"] is None


def test_unlabeled_per_class_report_counts_predictions_only():
    report = evaluation.per_class_report(None, PROBABILITIES.argmax(axis=1), NAMES)
    assert report.columns.tolist() == ["predicted"] and report["predicted"].tolist() == [1, 2, 1]


def test_expected_calibration_error_is_the_weighted_gap_between_confidence_and_accuracy():
    # Confidences 0.95 (right), 0.75 (right), 0.65 (wrong), 0.62 (right) in ten bins:
    # 1/4 * |1 - 0.95| + 1/4 * |1 - 0.75| + 2/4 * |0.5 - 0.635| = 0.1425
    probabilities = np.array([[0.95, 0.05], [0.25, 0.75], [0.65, 0.35], [0.38, 0.62]])
    labels = np.array([0, 1, 1, 1])
    table = evaluation.calibration_table(labels, probabilities, bins=10)
    assert table["images"].tolist() == [2, 1, 1] and table["images"].sum() == 4
    assert evaluation.expected_calibration_error(table) == pytest.approx(0.1425)
    assert evaluation.summarize(labels, probabilities, ("x", "y"), bins=10)["ece"] == pytest.approx(0.1425)


def test_a_calibrated_model_has_zero_ece():
    probabilities = np.array([[0.75, 0.25]] * 4)
    table = evaluation.calibration_table(np.array([0, 0, 0, 1]), probabilities, bins=15)
    assert evaluation.expected_calibration_error(table) == pytest.approx(0.0)


def test_confusion_matrix_counts_true_rows_predicted_columns_and_sums_to_n():
    matrix = evaluation.confusion_matrix(LABELS, PROBABILITIES.argmax(axis=1), 3)
    assert matrix.tolist() == [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    assert matrix.sum() == len(LABELS)
    frame = evaluation.confusion_frame(matrix, NAMES)
    assert frame.loc["c", "b"] == 1 and frame.index.name == "true" and frame.columns.name == "predicted"


def test_confused_pairs_are_the_largest_off_diagonal_cells_with_the_true_class_share():
    matrix = np.array([[50, 3, 1], [0, 40, 6], [2, 3, 30]])
    pairs = evaluation.confused_pairs(matrix, NAMES, top=3)
    assert pairs["pair"].tolist() == ["b -> c", "a -> b", "c -> b"]
    assert pairs["count"].tolist() == [6, 3, 3]
    assert pairs["share_of_true"].tolist() == pytest.approx([6 / 46, 3 / 54, 3 / 35], abs=1e-6)


def test_a_perfect_model_and_an_unlabeled_split_have_no_confused_pairs():
    assert evaluation.confused_pairs(np.diag([5, 5, 5]), NAMES).empty
    assert evaluation.confused_pairs(None, NAMES).empty


def test_review_table_lists_only_errors_most_confident_first():
    probabilities = np.array([[0.6, 0.4], [0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.95, 0.05]])
    labels = np.array([1, 1, 1, 0, 0])  # errors: 0 (0.6), 2 (0.8), 3 (0.7)
    data = Dataset(np.zeros((5, 2, 2, 1), np.uint8), labels, ("x", "y"), tuple("vwxyz"))
    table = evaluation.review_table(data, probabilities)
    assert table["index"].tolist() == [2, 3, 0]
    assert table["source"].tolist() == ["x", "y", "v"]
    assert (table["label"] != table["prediction"]).all()
    assert table["confidence"].tolist() == [0.8, 0.7, 0.6]
    assert evaluation.review_table(data, probabilities, limit=1)["index"].tolist() == [2]


def test_unlabeled_review_table_lists_the_least_confident_predictions_first():
    probabilities = np.array([[0.6, 0.4], [0.1, 0.9], [0.51, 0.49]])
    data = Dataset(np.zeros((3, 2, 2, 1), np.uint8), None, ("x", "y"))
    table = evaluation.review_table(data, probabilities)
    assert table["index"].tolist() == [2, 0, 1] and "label" not in table


def test_predictions_table_has_one_row_per_image_with_labels_and_probabilities():
    data = Dataset(np.zeros((4, 2, 2, 1), np.uint8), LABELS, NAMES)
    table = evaluation.predictions_table(data, PROBABILITIES)
    assert table["prediction"].tolist() == ["a", "b", "b", "c"]
    assert table["label"].tolist() == ["a", "b", "c", "c"]
    assert np.allclose(table[["p_a", "p_b", "p_c"]].to_numpy(), PROBABILITIES)
    assert "source" not in table


def test_predictions_table_names_the_source_of_each_image_when_known():
    sources = ("train.csv:row 12", "train.csv:row 13", "x.png", "y.jpg")
    table = evaluation.predictions_table(Dataset(np.zeros((4, 2, 2, 1), np.uint8), LABELS, NAMES, sources), PROBABILITIES)
    assert table.columns[:2].tolist() == ["index", "source"] and table["source"].tolist() == list(sources)


def test_unlabeled_predictions_table_has_no_label_column():
    data = Dataset(np.zeros((4, 2, 2, 1), np.uint8), None, NAMES)
    assert "label" not in evaluation.predictions_table(data, PROBABILITIES)


def test_submission_numbers_images_from_one_in_file_order(tmp_path):
    data = Dataset(np.zeros((4, 2, 2, 1), np.uint8), None, tuple("0123456789")[:3])
    evaluation.write_predictions(tmp_path, data, PROBABILITIES)
    text = (tmp_path / "submission.csv").read_text()
    assert text == "ImageId,Label\n1,0\n2,1\n3,1\n4,2\n"


def test_a_labeled_split_writes_no_submission_and_removes_a_stale_one(tmp_path):
    (tmp_path / "submission.csv").write_text("ImageId,Label\n1,9\n")
    evaluation.write_predictions(tmp_path, Dataset(np.zeros((4, 2, 2, 1), np.uint8), LABELS, NAMES), PROBABILITIES)
    assert not (tmp_path / "submission.csv").exists() and (tmp_path / "predictions.csv").is_file()


def test_unlabeled_metrics_hold_only_what_needs_no_labels():
    data = Dataset(np.zeros((4, 2, 2, 1), np.uint8), None, NAMES)
    info = {"model": "mlp", "seed": 3, "parameters": 10}
    assert evaluation.metrics(data, PROBABILITIES, info) == {"labeled": False, "n_test": 4, **info}


@pytest.mark.parametrize(
    ("change", "message"),
    [({"batch_size": 0}, r"batch_size = 0 is outside"), ({"calibration_bins": 2.5}, "calibration_bins must be an integer"),
     ({"gallery_size": "32"}, "gallery_size must be an integer"), ({"top_pairs": -1}, "top_pairs = -1 is outside")],
)
def test_bad_evaluation_parameters_are_refused_with_the_parameter_named(change, message):
    with pytest.raises(ValueError, match=message):
        evaluation.EvaluateConfig(**change)


def test_model_info_takes_name_and_seed_from_the_train_summary_and_counts_parameters(tmp_path):
    net = models.build_model("mlp", (8, 8, 1), 3)
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"config": {"model": "mlp", "seed": 42}, "parameters": net.count_params()}))
    assert evaluation.model_info(net, summary) == {"model": "mlp", "seed": 42, "parameters": 64 * 64 + 64 + 64 * 3 + 3}
    assert evaluation.model_info(net, tmp_path / "absent.json")["seed"] is None


def test_a_train_summary_of_another_model_is_refused(tmp_path):
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"config": {"model": "cnn_small", "seed": 1}, "parameters": 93322}))
    with pytest.raises(ValueError, match=r"summary.json describes a model with 93,322 parameters"):
        evaluation.model_info(models.build_model("mlp", (8, 8, 1), 3), summary)


def test_a_model_for_other_classes_or_images_is_refused_before_predicting():
    net = models.build_model("mlp", (8, 8, 1), 3)
    with pytest.raises(ValueError, match="the model predicts 3 classes but the test split has 10"):
        evaluation.check_outputs(net, Dataset(np.zeros((2, 8, 8, 1), np.uint8), None, tuple("0123456789")))
    with pytest.raises(ValueError, match=r"takes images of shape \(8, 8, 1\) but the test split holds \(28, 28, 1\)"):
        evaluation.check_outputs(net, Dataset(np.zeros((2, 28, 28, 1), np.uint8), None, NAMES))


def test_missing_model_file_says_which_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="run the train stage first"):
        evaluation.load_model(tmp_path / "model.keras")


def test_throughput_times_every_image_with_the_batch_size_used():
    net = models.build_model("mlp", (8, 8, 1), 3)
    figures = evaluation.throughput(net, np.zeros((300, 8, 8, 1), np.uint8), batch_size=128, repeats=2)
    assert figures["images"] == 300 and figures["batch_size"] == 128
    assert figures["images_per_second"] == pytest.approx(300 / figures["seconds"], rel=0.02)


# Figures: RGB in colour, one channel in gray, and a notice where labels are needed.

def test_gallery_shows_rgb_images_in_colour_and_gray_ones_in_gray():
    rgb = colour_blobs(4, seed=1)
    table = evaluation.review_table(rgb, np.tile([[0.1, 0.2, 0.7]], (4, 1)))
    shown = plots.gallery(rgb.images, table).axes[0].images[0].get_array()
    assert shown.ndim == 3 and shown.shape[-1] == 3
    pixels = {tuple(pixel) for pixel in np.round(shown.reshape(-1, 3) * 255).astype(int)}
    assert {tuple(pixel) for pixel in rgb.images[table["index"]].reshape(-1, 3).astype(int)} <= pixels  # every colour
    gray = digits(4, seed=1)
    table = evaluation.review_table(gray, np.full((4, 10), 0.1))
    shown = plots.gallery(gray.images, table).axes[0].images[0]
    assert shown.get_array().ndim == 2 and shown.get_cmap().name.startswith("gray_r")
    assert set(np.unique(gray.images[table["index"]])) <= set(np.unique(shown.get_array().compressed()))


def test_gallery_titles_name_the_true_and_predicted_class_and_the_confidence():
    data = Dataset(np.zeros((2, 4, 4, 1), np.uint8), np.array([0, 1]), ("cat", "owl"))
    table = evaluation.review_table(data, np.array([[0.2, 0.8], [0.9, 0.1]]))
    titles = [text.get_text() for text in plots.gallery(data.images, table).axes[0].texts]
    assert titles == ["owl \u2192 cat\n0.900", "cat \u2192 owl\n0.800"]


def test_figures_that_need_labels_say_so_when_there_are_none():
    for fig in (plots.confusion_heatmap(None, NAMES), plots.reliability_diagram(evaluation.calibration_table(None, PROBABILITIES), None)):
        assert "no labels" in fig.axes[0].texts[0].get_text()


# The evaluate notebook, run for real; every file is checked against predictions.csv.

def _read(out, name: str) -> pd.DataFrame:
    return pd.read_csv(out / name, dtype={"label": str, "prediction": str, "true": str, "predicted": str})


def _is_png(path) -> None:
    with Image.open(path) as image:
        assert image.format == "PNG" and image.width > 200 and image.height > 100, path


@pytest.fixture(scope="module")
def labeled_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("evaluate_labeled")
    case = write_case(folder, digits(120, seed=2), "cnn_small")
    run_evaluate(case, folder / "04_evaluate.ipynb", gallery_size=12)
    return folder / "evaluate"


@pytest.mark.slow
def test_metrics_json_agrees_with_the_predictions(labeled_run):
    metrics = json.loads((labeled_run / "metrics.json").read_text())
    table = _read(labeled_run, "predictions.csv")
    right = table["label"] == table["prediction"]
    assert metrics["n_test"] == len(table) == 120 and metrics["n_errors"] == (~right).sum()
    assert metrics["test_accuracy"] == pytest.approx(right.mean())
    assert metrics["labeled"] is True and metrics["model"] == "cnn_small" and metrics["seed"] == 7
    assert metrics["parameters"] == evaluation.load_model(labeled_run.parent / "train" / "model.keras").count_params()
    probabilities = table[[f"p_{d}" for d in range(10)]].to_numpy()
    labels = table["label"].astype(int).to_numpy()
    assert metrics["ece"] == pytest.approx(evaluation.summarize(labels, probabilities, tuple("0123456789"))["ece"], abs=1e-4)
    picked = probabilities[np.arange(len(labels)), labels].clip(1e-7, 1)
    assert metrics["test_loss"] == pytest.approx(-np.log(picked).mean(), rel=1e-3)
    assert metrics["per_class_accuracy"]["3"] == pytest.approx(right[table["label"] == "3"].mean())


@pytest.mark.slow
def test_confusion_per_class_and_pairs_agree_with_the_predictions(labeled_run):
    table = _read(labeled_run, "predictions.csv")
    counts = pd.crosstab(table["label"], table["prediction"])
    confusion = pd.read_csv(labeled_run / "confusion.csv", index_col="true")
    confusion.index, confusion.columns = confusion.index.astype(str), confusion.columns.astype(str)
    assert confusion.to_numpy().sum() == len(table)
    for (true, predicted), count in counts.stack().items():
        assert confusion.loc[true, predicted] == count
    report = pd.read_csv(labeled_run / "per_class.csv", index_col="class")
    assert report["support"].sum() == len(table) and report["predicted"].sum() == len(table)
    assert report.loc[4, "recall"] == pytest.approx((table.loc[table["label"] == "4", "prediction"] == "4").mean(), abs=1e-6)
    pairs = _read(labeled_run, "confused_pairs.csv")
    assert 0 < len(pairs) <= 10 and pairs["count"].is_monotonic_decreasing
    for pair in pairs.itertuples():
        assert pair.count == ((table["label"] == pair.true) & (table["prediction"] == pair.predicted)).sum()
        assert pair.true != pair.predicted


@pytest.mark.slow
def test_the_gallery_shows_real_errors_most_confident_first(labeled_run):
    table = _read(labeled_run, "predictions.csv")
    gallery = _read(labeled_run, "gallery.csv")
    assert len(gallery) == min(12, (table["label"] != table["prediction"]).sum())
    rows = table.set_index("index").loc[gallery["index"]]
    assert (rows["label"] != rows["prediction"]).all()
    assert (rows["prediction"].to_numpy() == gallery["prediction"].to_numpy()).all()
    probabilities = rows[[f"p_{d}" for d in range(10)]].max(axis=1).to_numpy()
    assert gallery["confidence"].to_numpy() == pytest.approx(probabilities, abs=1e-6)
    assert gallery["confidence"].is_monotonic_decreasing
    errors = table[table["label"] != table["prediction"]]
    assert gallery["confidence"].iloc[0] == pytest.approx(errors[[f"p_{d}" for d in range(10)]].max(axis=1).max(), abs=1e-6)


@pytest.mark.slow
def test_calibration_table_and_figures_are_written(labeled_run):
    calibration = pd.read_csv(labeled_run / "calibration.csv")
    assert calibration["images"].sum() == 120
    metrics = json.loads((labeled_run / "metrics.json").read_text())
    assert evaluation.expected_calibration_error(calibration) == pytest.approx(metrics["ece"])
    for name in ("confusion", "confusion_normalized", "gallery", "reliability", "confidence"):
        _is_png(labeled_run / f"{name}.png")
    assert not (labeled_run / "submission.csv").exists()
