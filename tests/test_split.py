"""Seeded, stratified split: class balance kept, disjoint, reproducible; split files round-trip."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_lib import split
from mnist_lib.datasets import Dataset


@pytest.fixture
def labels() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.permutation(np.repeat(np.arange(10), [100, 120, 80, 95, 110, 90, 105, 100, 85, 115]))


def test_each_class_gives_its_share_to_validation(labels):
    train, val = split.stratified_split(labels, 0.1, seed=0)
    for label, count in zip(*np.unique(labels, return_counts=True)):
        assert (labels[val] == label).sum() == round(count * 0.1)
    assert len(train) + len(val) == len(labels)


def test_split_is_disjoint_and_covers_every_image(labels):
    train, val = split.stratified_split(labels, 0.25, seed=3)
    assert not set(train) & set(val)
    assert sorted(set(train) | set(val)) == list(range(len(labels)))


def test_same_seed_same_split_other_seed_other_split(labels):
    first, second, other = (split.stratified_split(labels, 0.1, seed) for seed in (7, 7, 8))
    assert np.array_equal(first[1], second[1])
    assert not np.array_equal(first[1], other[1])


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_outside_the_open_unit_interval_is_refused(labels, fraction):
    with pytest.raises(ValueError, match="val_fraction must be between 0 and 1"):
        split.stratified_split(labels, fraction, seed=0)


def test_overlapping_index_sets_are_reported():
    with pytest.raises(ValueError, match="index 2 is in more than one of train, val"):
        split.check_disjoint({"train": np.array([0, 1, 2]), "val": np.array([2, 3])}, 4)


def test_split_files_round_trip_uint8_images_labels_and_class_names(tmp_path):
    images = np.arange(5 * 4 * 4, dtype=np.uint8).reshape(5, 4, 4, 1)
    data = Dataset(images, np.array([0, 1, 2, 1, 0]), ("cat", "dog", "owl"))
    split.write_splits(tmp_path, {"train": data, "test": Dataset(images, None, data.class_names)}, {"seed": 1})
    loaded = split.load_split(tmp_path, "train")
    assert loaded.images.dtype == np.uint8 and np.array_equal(loaded.images, images)
    assert np.array_equal(loaded.labels, data.labels) and loaded.class_names == ("cat", "dog", "owl")
    assert split.load_split(tmp_path, "test").labels is None


def test_missing_split_file_says_which_stage_to_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="val.npz does not exist: run the split stage"):
        split.load_split(tmp_path, "val")


def test_sources_follow_their_images_through_subset_and_split_files(tmp_path):
    images = np.arange(4 * 2 * 2, dtype=np.uint8).reshape(4, 2, 2, 1)
    data = Dataset(images, np.array([0, 1, 0, 1]), ("a", "b"), ("a/1.png", "b/2.png", "a/3.png", "b/4.png"))
    picked = split.subset(data, np.array([3, 0]))
    assert picked.sources == ("b/4.png", "a/1.png")
    split.save_split(tmp_path, "test", picked)
    assert split.load_split(tmp_path, "test").sources == ("b/4.png", "a/1.png")
