"""Exploratory statistics on a tiny real dataset."""

from __future__ import annotations

import json

import numpy as np

from conftest import digit_dataset
from mnist_lib import eda
from mnist_lib.records import Dataset


def test_summary_is_written_flat_with_one_row_per_split(tmp_path):
    table = eda.summary({"train": digit_dataset(50, 1), "test": digit_dataset(20, 2)})
    written = eda.write_summary(tmp_path / "summary.json", table)
    assert json.loads((tmp_path / "summary.json").read_text()) == written
    assert written["train_images"] == 50 and written["test_images"] == 20 and written["train_classes"] == 10
    assert 0 < written["train_zero_pixels"] < 1


def test_pca_projects_a_seeded_sample_on_two_components():
    data = digit_dataset(120, 3)
    points, picked, explained = eda.pca_2d(data.images, sample=100, seed=0)
    again, picked_again, _ = eda.pca_2d(data.images, sample=100, seed=0)
    assert points.shape == (100, 2) and np.array_equal(picked, picked_again) and np.allclose(points, again)
    assert explained[0] >= explained[1] > 0 and explained.sum() < 1


def test_pca_matches_the_singular_value_decomposition():
    data = digit_dataset(120, 3)
    points, picked, explained = eda.pca_2d(data.images, sample=100, seed=0)
    flat = data.images[picked].reshape(len(picked), -1).astype(np.float32) / 255
    centered = flat - flat.mean(axis=0)
    _, singular, components = np.linalg.svd(centered, full_matrices=False)
    np.testing.assert_allclose(explained, (singular**2 / (singular**2).sum())[:2], rtol=1e-3)
    np.testing.assert_allclose(np.abs(points), np.abs(centered @ components[:2].T), atol=1e-3)  # up to each axis' sign


def test_mean_images_stretch_each_class_over_its_range_and_leave_an_empty_class_blank():
    from mnist_lib import plots

    images = np.zeros((3, 2, 2, 1), np.uint8)
    images[0, 0, 0], images[1, 0, 0], images[2] = 100, 200, [[[10], [20]], [[30], [40]]]
    data = Dataset(images, np.array([0, 0, 2]), ("a", "b", "c"))  # class b has no image
    fig = plots.mean_images(data)
    canvas = fig.axes[0].images[0].get_array()
    assert [text.get_text() for text in fig.axes[0].texts] == ["a", "b", "c"]
    shown = sorted(np.unique(canvas.compressed()).round(4))  # by hand: a's mean is 150 at one pixel, 0 elsewhere
    assert shown == [0.0, 0.3333, 0.6667, 1.0]  # c: 10..40 stretched to 0, 1/3, 2/3, 1; a: 0 and 1
    assert canvas.mask.sum() >= 2 * 2  # b's tile (and the gaps) blank, not a tile of zeros
    assert (canvas.compressed() == 0).sum() == 3 + 1  # a's three dark pixels and c's darkest, nothing from b
