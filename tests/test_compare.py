"""`mnist compare`: two evaluations of one test split paired image by image (counts worked out by hand), McNemar's
p-value, JSON and an HTML report with the images they disagree on; evaluations of different test sets refused."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from conftest import REPO, draw_digits
from mnist_lib import evaluation, split
from mnist_lib.records import DIGITS, Dataset

LABELS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9] * 2)
# A is wrong on images 0 and 1; B is wrong on images 0, 2, 3, 4, 5, 6, 7 (image 0: both wrong, differently).
A_PREDICTS = LABELS.copy()
A_PREDICTS[[0, 1]] = [5, 7]
B_PREDICTS = LABELS.copy()
B_PREDICTS[[0, 2, 3, 4, 5, 6, 7]] = [6, 1, 1, 1, 1, 1, 1]


def write_evaluation(folder, labels, predicted, names=DIGITS, images=None):
    """A real predictions.csv, written by the evaluate stage's writer, for one-hot probabilities of `predicted`."""
    folder.mkdir(parents=True)
    images = np.zeros((len(labels), 28, 28, 1), np.uint8) if images is None else images
    evaluation.write_predictions(folder, Dataset(images, labels, names), np.eye(len(names))[predicted])
    return folder


def mnist(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "mnist_lib.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300)


@pytest.fixture
def pair(tmp_path):
    images, _ = draw_digits(len(LABELS), seed=3)
    (tmp_path / "split").mkdir()
    split.save_split(tmp_path / "split", "test", Dataset(images[..., None], LABELS, DIGITS))
    return (write_evaluation(tmp_path / "a", LABELS, A_PREDICTS), write_evaluation(tmp_path / "b", LABELS, B_PREDICTS),
            tmp_path / "split")


def test_compare_pairs_the_images_and_gives_intervals_and_mcnemar(pair, tmp_path):
    first, second, split_dir = pair
    done = mnist("compare", str(first), str(second / "predictions.csv"), "--names", "A", "B", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["n_test"] == 20 and result["correct"] == [18, 13]
    assert (result["only_first"], result["only_second"], result["both_wrong"], result["disagree"]) == (6, 1, 1, 8)
    assert result["p_value"] == pytest.approx(2 * (1 + 7) / 2**7)  # 2 * P(X <= 1 | n = 7, 1/2) = 0.125
    assert result["intervals"][0] == pytest.approx([0.6990, 0.9721], abs=1e-4)  # Wilson 18/20
    text = mnist("compare", str(first), str(second), "--names", "A", "B", "--html", str(tmp_path / "r.html"),
                 "--split-dir", str(split_dir))
    assert text.returncode == 0, text.stderr
    assert "A  90.00% correct (95% CI 69.90% to 97.21%), 2 errors" in text.stdout
    assert "right only in A: 6; right only in B: 1; both wrong: 1; predicted differently: 8" in text.stdout
    assert "McNemar's exact test: p = 0.125 (no evidence" in text.stdout
    page = (tmp_path / "r.html").read_text()
    assert "<h1>A vs B</h1>" in page and page.count("data:image/png;base64,") == 1


def test_two_identical_evaluations_agree_everywhere(pair):
    first, _, _ = pair
    result = json.loads(mnist("compare", str(first), str(first), "--json").stdout)
    assert (result["only_first"], result["only_second"], result["disagree"], result["p_value"]) == (0, 0, 0, 1.0)


@pytest.mark.parametrize(("labels", "names", "message"), [
    (LABELS[:19], DIGITS, "A has 20 test images and B has 19"),
    (np.roll(LABELS, 1), DIGITS, r"row 1 of the predictions: A's label is '0', B's is '9' \(20 rows differ\)"),
    (LABELS % 3, ("x", "y", "z"), "A predicts the classes 0, 1, 2, 3, 4, 5, 6, 7, 8, 9 and B x, y, z: compare"),
])
def test_evaluations_of_different_test_sets_are_refused(pair, tmp_path, labels, names, message):
    first, _, _ = pair
    other = write_evaluation(tmp_path / "other", labels, labels, names)
    done = mnist("compare", str(first), str(other), "--names", "A", "B")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr.startswith("mnist compare: error: ") and re.search(message, done.stderr), done.stderr


def test_a_folder_without_predictions_says_what_to_give(tmp_path):
    done = mnist("compare", str(tmp_path), str(tmp_path))
    assert done.returncode == 1 and "no predictions.csv there; give an evaluate output folder" in done.stderr


def test_a_sweep_pairs_its_best_configuration_with_the_runner_up_seed_by_seed(tmp_path):
    from mnist_lib import sweep_summary

    import pandas as pd

    truth = LABELS.copy()
    rows = []
    # learning_rate 0.1 ranks first on validation (mean 0.9), 0.3 second (0.8), 0.2 last (0.5)
    for lr, val, wrong in ((0.1, 0.9, {1: [0, 1], 2: [0]}), (0.3, 0.8, {1: [0, 2, 3], 2: [4]}), (0.2, 0.5, {1: [], 2: []})):
        for seed in (1, 2):
            predicted = truth.copy()
            predicted[wrong[seed]] = (truth[wrong[seed]] + 1) % 10
            run_id = f"lr-{lr}_seed-{seed}"
            write_evaluation(tmp_path / run_id / "evaluate", truth, predicted)
            rows.append({"run_id": run_id, "status": "done", "learning_rate": lr, "seed": seed, "train.val": val})
    rows.append({"run_id": "broken", "status": "failed", "learning_rate": 0.2, "seed": 3, "train.val": 0.99})
    result = sweep_summary.best_against_runner_up(tmp_path, pd.DataFrame(rows), ["learning_rate", "seed"], "train.val")
    assert result["best"].tolist() == ["lr-0.1_seed-1", "lr-0.1_seed-2"]
    assert result["runner_up"].tolist() == ["lr-0.3_seed-1", "lr-0.3_seed-2"]
    # seed 1: best wrong on {0, 1}, runner-up on {0, 2, 3}: right only in best {2, 3}, only in runner-up {1}
    assert result["right_only_in_best"].tolist() == [2, 1] and result["right_only_in_runner_up"].tolist() == [1, 1]
    assert result["best_test_accuracy"].tolist() == [0.9, 0.95] and result["mcnemar_p"].tolist() == [1.0, 1.0]
    assert sweep_summary.best_against_runner_up(tmp_path, pd.DataFrame(rows[:2]), ["learning_rate", "seed"], "train.val").empty
