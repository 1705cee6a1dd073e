"""Specification of the dataset readers: strict IDX files in, uint8 (n, 28, 28, 1) images and int labels out."""

from __future__ import annotations

import gzip
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from conftest import MNIST_NAMES, draw_digits, idx_encode, write_tiny_mnist

import mnist_lib.idx
from mnist_lib.idx import read_idx, read_idx_pair
from mnist_lib.records import DIGITS, Dataset, DatasetError
from mnist_lib.datasets import (
    DATA_FORMATS,
    load,
    load_idx_folder,
    load_mnist,
)

IMAGES, LABELS = 3, 1  # the dimension counts of IDX image and label files


def written_arrays(n_train: int = 300, n_test: int = 100) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The arrays `write_tiny_mnist` writes, drawn again with the same seeds."""
    return {"train": draw_digits(n_train, seed=1), "test": draw_digits(n_test, seed=2)}


@pytest.fixture
def folder_copy(tiny_mnist, tmp_path) -> Path:
    """A private copy of the tiny MNIST folder that a test may damage."""
    folder, _ = tiny_mnist
    return Path(shutil.copytree(folder, tmp_path / "copy"))


# --- read_idx -----------------------------------------------------------------------------------------------


def test_read_idx_returns_the_images_written(tiny_mnist):
    folder, _ = tiny_mnist
    images, _ = written_arrays()["train"]
    read = read_idx(folder / "train-images-idx3-ubyte", IMAGES)
    assert read.dtype == np.uint8
    assert read.shape == (300, 28, 28)
    np.testing.assert_array_equal(read, images)


def test_read_idx_returns_the_labels_written(tiny_mnist):
    folder, _ = tiny_mnist
    _, labels = written_arrays()["test"]
    read = read_idx(folder / "t10k-labels-idx1-ubyte", LABELS)
    assert read.shape == (100,)
    np.testing.assert_array_equal(read, labels)


def test_read_idx_reads_a_gzip_file_by_its_suffix(tmp_path):
    write_tiny_mnist(tmp_path, n_train=20, n_test=10, gz=True)
    images, _ = draw_digits(20, seed=1)
    np.testing.assert_array_equal(read_idx(tmp_path / "train-images-idx3-ubyte.gz", IMAGES), images)


def test_labels_file_read_as_images_is_refused_for_its_magic_number(tiny_mnist):
    folder, _ = tiny_mnist
    path = folder / "train-labels-idx1-ubyte"
    with pytest.raises(DatasetError) as caught:
        read_idx(path, IMAGES)
    message = str(caught.value)
    assert str(path) in message
    assert "wrong IDX magic number 2049" in message
    assert "expected 2051 for images" in message


def test_a_four_dimensional_file_is_refused_for_its_dimension_count(tmp_path):
    path = tmp_path / "four-dims"
    path.write_bytes(idx_encode(np.zeros((2, 28, 28, 1), dtype=np.uint8)))  # magic 2052
    with pytest.raises(DatasetError) as caught:
        read_idx(path, IMAGES)
    message = str(caught.value)
    assert str(path) in message
    assert "wrong IDX magic number 2052" in message
    assert "in 3 dimension(s)" in message


def test_a_file_of_other_than_unsigned_bytes_is_refused_for_its_magic_number(tmp_path):
    path = tmp_path / "floats"
    path.write_bytes(struct.pack(">HBB", 0, 0x0D, 1) + struct.pack(">I", 2) + np.zeros(2, ">f4").tobytes())
    with pytest.raises(DatasetError) as caught:
        read_idx(path, LABELS)
    message = str(caught.value)
    assert str(path) in message
    assert f"wrong IDX magic number {0x0D01}" in message
    assert "expected 2049 for labels" in message


def test_a_file_shorter_than_the_magic_number_is_refused(tmp_path):
    path = tmp_path / "stub"
    path.write_bytes(b"\0\0")
    with pytest.raises(DatasetError) as caught:
        read_idx(path, LABELS)
    assert str(caught.value) == f"{path}: 2 bytes is too short for an IDX header; fetch the file again"


def test_a_header_cut_inside_its_dimensions_is_refused(tmp_path):
    path = tmp_path / "cut-header"
    path.write_bytes(idx_encode(np.zeros((5, 28, 28), dtype=np.uint8))[:10])
    with pytest.raises(DatasetError) as caught:
        read_idx(path, IMAGES)
    assert str(caught.value) == f"{path}: the IDX header is truncated (10 bytes)"


def test_a_truncated_payload_is_refused_with_declared_and_held_bytes(tmp_path):
    path = tmp_path / "truncated"
    path.write_bytes(idx_encode(np.ones((5, 28, 28), dtype=np.uint8))[:-100])
    with pytest.raises(DatasetError) as caught:
        read_idx(path, IMAGES)
    message = str(caught.value)
    assert str(path) in message
    assert "declares 5 records (3920 bytes of data)" in message
    assert "the file holds 3820" in message


def test_trailing_bytes_after_the_payload_are_refused(tmp_path):
    path = tmp_path / "trailing"
    path.write_bytes(idx_encode(np.arange(7, dtype=np.uint8)) + b"\x00")
    with pytest.raises(DatasetError) as caught:
        read_idx(path, LABELS)
    assert str(caught.value) == f"{path}: trailing bytes after the 7 records its header declares"


def test_a_gz_file_that_is_not_gzip_is_refused_naming_it(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(idx_encode(np.arange(7, dtype=np.uint8)))  # plain bytes behind a .gz name
    with pytest.raises(DatasetError) as caught:
        read_idx(path, LABELS)
    message = str(caught.value)
    assert message.startswith(f"{path}: cannot read it as IDX (")
    assert "Not a gzipped file" in message


def test_a_gz_file_cut_short_is_refused_naming_it(tmp_path):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_encode(np.arange(200, dtype=np.uint8)))[:-12])
    with pytest.raises(DatasetError) as caught:
        read_idx(path, LABELS)
    assert str(caught.value).startswith(f"{path}: cannot read it as IDX (")


def test_a_gzip_bomb_is_refused_from_its_header_before_inflating(tmp_path, monkeypatch):
    monkeypatch.setattr(mnist_lib.idx, "MAX_IDX_BYTES", 10_000)
    path = tmp_path / "bomb-images-idx3-ubyte.gz"
    header = struct.pack(">HBB3I", 0, 0x08, 3, 100_000, 28, 28)  # declares 78,400,000 bytes of data
    # The header is a gzip member of its own; what follows is not gzip at all, so a reader that inflated
    # past the header would fail with "cannot read it" instead of the cap.
    path.write_bytes(gzip.compress(header) + b"this is no deflate stream" * 100)
    with pytest.raises(DatasetError) as caught:
        read_idx(path, IMAGES)
    assert str(caught.value) == f"{path}: the header declares 78400000 bytes of data, over the 10000 cap"


def test_a_missing_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "absent-idx1-ubyte"
    with pytest.raises(DatasetError) as caught:
        read_idx(path, LABELS)
    assert str(caught.value) == f"{path}: no such file"


# --- read_idx_pair ------------------------------------------------------------------------------------------


def test_read_idx_pair_gives_a_dataset_with_a_channel_axis_and_int_labels(tiny_mnist):
    folder, _ = tiny_mnist
    images, labels = written_arrays()["test"]
    data = read_idx_pair(folder / "t10k-images-idx3-ubyte", folder / "t10k-labels-idx1-ubyte")
    assert data.images.dtype == np.uint8
    assert data.images.shape == (100, 28, 28, 1)
    np.testing.assert_array_equal(data.images[..., 0], images)
    assert data.labels.dtype == np.int64
    np.testing.assert_array_equal(data.labels, labels)
    assert data.class_names == DIGITS


def test_image_and_label_counts_that_differ_are_refused_naming_both_files(tiny_mnist):
    folder, _ = tiny_mnist
    images_path, labels_path = folder / "train-images-idx3-ubyte", folder / "t10k-labels-idx1-ubyte"
    with pytest.raises(DatasetError) as caught:
        read_idx_pair(images_path, labels_path)
    assert str(caught.value) == f"{images_path} holds 300 images but {labels_path} holds 100 labels"


def test_a_label_out_of_range_is_refused_naming_the_record(tmp_path):
    images_path, labels_path = tmp_path / "images", tmp_path / "labels"
    images_path.write_bytes(idx_encode(np.zeros((6, 28, 28), dtype=np.uint8)))
    labels_path.write_bytes(idx_encode(np.array([0, 1, 2, 10, 4, 12], dtype=np.uint8)))
    with pytest.raises(DatasetError) as caught:
        read_idx_pair(images_path, labels_path)
    assert str(caught.value) == f"{labels_path}: label 10 at record 3 is outside 0..9 (2 such records)"


def test_the_label_range_follows_the_class_names_given(tmp_path):
    images_path, labels_path = tmp_path / "images", tmp_path / "labels"
    images_path.write_bytes(idx_encode(np.zeros((3, 28, 28), dtype=np.uint8)))
    labels_path.write_bytes(idx_encode(np.array([1, 0, 2], dtype=np.uint8)))
    assert read_idx_pair(images_path, labels_path, ("a", "b", "c")).num_classes == 3
    with pytest.raises(DatasetError) as caught:
        read_idx_pair(images_path, labels_path, ("a", "b"))
    assert str(caught.value) == f"{labels_path}: label 2 at record 2 is outside 0..1 (1 such records)"


# --- load_idx_folder ----------------------------------------------------------------------------------------


def test_load_idx_folder_reads_train_and_test_as_written(tiny_mnist):
    folder, _ = tiny_mnist
    splits = load_idx_folder(folder)
    assert set(splits) == {"train", "test"}
    for split, (images, labels) in written_arrays().items():
        assert splits[split].images.shape == (len(images), 28, 28, 1)
        np.testing.assert_array_equal(splits[split].images[..., 0], images)
        np.testing.assert_array_equal(splits[split].labels, labels)


def test_load_idx_folder_reads_a_gzip_folder_as_the_plain_one(tiny_mnist, tmp_path):
    folder, _ = tiny_mnist
    write_tiny_mnist(tmp_path, gz=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(f"{name}.gz" for name in MNIST_NAMES)
    plain, packed = load_idx_folder(folder), load_idx_folder(tmp_path)
    for split in ("train", "test"):
        np.testing.assert_array_equal(packed[split].images, plain[split].images)
        np.testing.assert_array_equal(packed[split].labels, plain[split].labels)


def test_a_missing_file_in_the_folder_is_named_and_mnist_fetch_suggested(folder_copy):
    (folder_copy / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError) as caught:
        load_idx_folder(folder_copy)
    message = str(caught.value)
    assert message.startswith(f"{folder_copy}: no t10k-labels-idx1-ubyte (or t10k-labels-idx1-ubyte.gz)")
    assert "run `mnist fetch`" in message


def test_a_damaged_file_in_the_folder_is_named(folder_copy):
    path = folder_copy / "train-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(DatasetError) as caught:
        load_idx_folder(folder_copy)
    assert str(caught.value).startswith(f"{path}: truncated: the header declares 300 records")


# --- load_mnist and load ------------------------------------------------------------------------------------


def test_load_mnist_refuses_files_that_do_not_match_the_pinned_checksums(tiny_mnist):
    folder, _ = tiny_mnist
    with pytest.raises(DatasetError) as caught:
        load_mnist(folder)
    message = str(caught.value)
    assert message.startswith(f"{folder}: ")
    for name in MNIST_NAMES:
        assert f"{name} has sha256 " in message
    assert message.count("not the pinned") == 4
    assert f"Run `mnist fetch --out {folder}` to restore them" in message


def test_load_mnist_names_a_missing_file(tmp_path):
    with pytest.raises(DatasetError) as caught:
        load_mnist(tmp_path)
    message = str(caught.value)
    for name in MNIST_NAMES:
        assert f"{name} is missing" in message
    assert "mnist fetch" in message


def test_load_idx_reads_the_folder(tiny_mnist):
    folder, _ = tiny_mnist
    splits = load("idx", folder)
    assert (len(splits["train"]), len(splits["test"])) == (300, 100)
    np.testing.assert_array_equal(splits["test"].labels, written_arrays()["test"][1])


def test_load_mnist_format_checks_the_pinned_checksums(tiny_mnist):
    folder, _ = tiny_mnist
    with pytest.raises(DatasetError, match="not the pinned"):
        load("mnist", folder)


def test_an_unknown_format_is_refused_listing_the_formats(tiny_mnist):
    folder, _ = tiny_mnist
    with pytest.raises(ValueError) as caught:
        load("nope", folder)
    assert str(caught.value) == "data_format must be one of mnist, idx, kaggle_csv, image_folder; got 'nope'"
    assert set(DATA_FORMATS) == {"mnist", "idx", "kaggle_csv", "image_folder"}


# --- Dataset ------------------------------------------------------------------------------------------------


def test_dataset_reports_its_length_image_shape_and_class_count():
    data = Dataset(np.zeros((4, 28, 28, 1), np.uint8), np.array([0, 1, 2, 3]), DIGITS)
    assert len(data) == 4
    assert data.image_shape == (28, 28, 1)
    assert data.num_classes == 10


def test_dataset_may_be_unlabeled():
    assert Dataset(np.zeros((2, 5, 5, 3), np.uint8), None, ("x",)).labels is None


def test_dataset_refuses_images_that_are_not_uint8():
    with pytest.raises(ValueError) as caught:
        Dataset(np.zeros((2, 28, 28, 1), np.float32), None, DIGITS)
    assert str(caught.value) == "images must be uint8 (n, h, w, c), got float32 (2, 28, 28, 1)"


def test_dataset_refuses_images_without_a_channel_axis():
    with pytest.raises(ValueError) as caught:
        Dataset(np.zeros((2, 28, 28), np.uint8), None, DIGITS)
    assert str(caught.value) == "images must be uint8 (n, h, w, c), got uint8 (2, 28, 28)"


def test_dataset_refuses_labels_of_another_length():
    with pytest.raises(ValueError) as caught:
        Dataset(np.zeros((3, 28, 28, 1), np.uint8), np.array([0, 1]), DIGITS)
    assert str(caught.value) == "labels must have shape (3,), got (2,)"


def test_dataset_is_frozen():
    data = Dataset(np.zeros((1, 2, 2, 1), np.uint8), None, ("only",))
    with pytest.raises(AttributeError):
        data.labels = np.array([0])  # type: ignore[misc]
