"""Datasets: `load`, which reads any supported data format (MNIST IDX files, Kaggle CSV, image folders) and checks it."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from mnist_lib import idx
from mnist_lib.fetch import verify_files
from mnist_lib.images import MODES, load_image_folder
from mnist_lib.params import ParameterError, require_bool, require_choice, require_int, require_str
from mnist_lib.records import Dataset, DatasetError
from mnist_lib.tabular import load_kaggle_folder

__all__ = ["DATA_FORMATS", "load", "load_idx_folder", "load_mnist", "suspicious"]

def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise DatasetError(f"{folder}: no {name} (or {name}.gz); run `mnist fetch` or check the folder")


def load_idx_folder(folder: str | Path) -> dict[str, Dataset]:
    """Read the MNIST-named IDX files (plain or .gz) in `folder`: {'train': Dataset, 'test': Dataset}."""
    folder = Path(folder)
    return {split: idx.read_idx_pair(_find(folder, images), _find(folder, labels))
            for split, (images, labels) in idx.MNIST_NAMES.items()}


def load_mnist(raw_dir: str | Path) -> dict[str, Dataset]:
    """Verify the four raw MNIST files against the pinned SHA-256, then read them."""
    raw_dir = Path(raw_dir)
    bad = verify_files(raw_dir)
    if bad:
        raise DatasetError(f"{raw_dir}: {'; '.join(bad)}. Run `mnist fetch --out {raw_dir}` to restore them")
    return load_idx_folder(raw_dir)


DATA_FORMATS = ("mnist", "idx", "kaggle_csv", "image_folder")
IMBALANCE_RATIO = 10  # warn when the largest class has this many times the images of the smallest


def load(data_format: str, data_dir: str | Path, *, train_folder: str = "train", test_folder: str = "test",
         image_size: int = 28, channels: int = 1, skip_bad_images: bool = False) -> dict[str, Dataset]:
    """Load {'train': Dataset, 'test': Dataset} ('test' only when the data has one) in one of `DATA_FORMATS`;
    the folder and image options apply to `image_folder`. Warns about suspicious but legal data."""
    require_choice("data_format", data_format, DATA_FORMATS)
    require_int("image_size", image_size, minimum=8, maximum=1024)
    if require_int("channels", channels) not in MODES:
        raise ParameterError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    require_bool("skip_bad_images", skip_bad_images)
    if data_format == "mnist":
        splits = load_mnist(data_dir)
    elif data_format == "idx":
        splits = load_idx_folder(data_dir)
    elif data_format == "kaggle_csv":
        splits = load_kaggle_folder(data_dir)
    else:
        splits = load_image_folder(data_dir, require_str("train_folder", train_folder), require_str("test_folder", test_folder),
                                   image_size, channels, skip_bad_images)
    for message in suspicious(splits):
        warnings.warn(message, stacklevel=2)
    return splits


def suspicious(splits: dict[str, Dataset]) -> list[str]:
    """What is legal but worth a look: heavily imbalanced training classes, images shared by train and test."""
    messages = []
    train = splits["train"]
    counts = np.bincount(train.labels, minlength=train.num_classes)
    if counts.min() == 0:
        missing = [name for name, count in zip(train.class_names, counts) if count == 0]
        messages.append(f"no training images for class(es) {', '.join(map(repr, missing))}: the model cannot learn them")
    elif counts.min() * IMBALANCE_RATIO < counts.max():
        messages.append(
            f"heavily imbalanced classes: {train.class_names[counts.argmax()]!r} has {counts.max()} training images, "
            f"{train.class_names[counts.argmin()]!r} only {counts.min()}; consider class weights or more data"
        )
    if "test" in splits and splits["test"].image_shape == train.image_shape:
        shared = np.intersect1d(_row_keys(train.images), _row_keys(splits["test"].images))
        if len(shared):
            messages.append(f"{len(shared)} distinct image(s) appear in both train and test: test accuracy will be "
                            "optimistic; remove the duplicates from one side")
    return messages


def _row_keys(images: np.ndarray) -> np.ndarray:
    """One opaque value per image, equal exactly when the pixels are equal."""
    flat = np.ascontiguousarray(images.reshape(len(images), -1))
    return flat.view(np.dtype((np.void, flat.shape[1]))).ravel()
