"""Datasets: strict IDX readers (plain or gzip), and `load`, which reads any supported data format."""

from __future__ import annotations

import gzip
import math
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from mnist_lib.fetch import verify_files
from mnist_lib.images import MODES, load_image_folder
from mnist_lib.params import ParameterError, require_bool, require_choice, require_int, require_str
from mnist_lib.records import DIGITS, Dataset, DatasetError
from mnist_lib.tabular import load_kaggle_folder

__all__ = ["DATA_FORMATS", "DIGITS", "Dataset", "DatasetError", "load", "load_idx_folder", "load_mnist", "read_idx",
           "read_idx_pair", "suspicious"]

IDX_UNSIGNED_BYTE = 0x08
IDX_IMAGES_NDIM = 3  # magic 2051
IDX_LABELS_NDIM = 1  # magic 2049
MAX_IDX_BYTES = 1 << 30  # refuse to inflate a single IDX file past 1 GiB


def _magic(ndim: int) -> int:
    return IDX_UNSIGNED_BYTE << 8 | ndim


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """Read an unsigned-byte IDX file (plain or .gz) with `ndim` dimensions, checking header against payload."""
    path = Path(path)
    kind = "images" if ndim == IDX_IMAGES_NDIM else "labels"
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            header = stream.read(4)
            if len(header) < 4:
                raise DatasetError(f"{path}: {len(header)} bytes is too short for an IDX header; fetch the file again")
            magic = int.from_bytes(header, "big")
            if header[:2] != b"\0\0" or header[2] != IDX_UNSIGNED_BYTE or header[3] != ndim:
                raise DatasetError(
                    f"{path}: wrong IDX magic number {magic} (expected {_magic(ndim)} for {kind}, "
                    f"unsigned bytes in {ndim} dimension(s)); is this the right file?"
                )
            raw_dims = stream.read(4 * ndim)
            if len(raw_dims) < 4 * ndim:
                raise DatasetError(f"{path}: the IDX header is truncated ({4 + len(raw_dims)} bytes)")
            dims = struct.unpack(f">{ndim}I", raw_dims)
            size = math.prod(dims)
            if size > MAX_IDX_BYTES:
                raise DatasetError(f"{path}: the header declares {size} bytes of data, over the {MAX_IDX_BYTES} cap")
            payload = stream.read(size + 1)  # one byte more than declared reveals trailing data
    except (OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise DatasetError(f"{path}: no such file") from err
        raise DatasetError(f"{path}: cannot read it as IDX ({err})") from err
    if len(payload) < size:
        raise DatasetError(
            f"{path}: truncated: the header declares {dims[0]} records ({size} bytes of data) "
            f"but the file holds {len(payload)}; fetch it again"
        )
    if len(payload) > size:
        raise DatasetError(f"{path}: trailing bytes after the {dims[0]} records its header declares")
    return np.frombuffer(payload[:size], dtype=np.uint8).reshape(dims)


def read_idx_pair(images_path: str | Path, labels_path: str | Path, class_names: tuple[str, ...] = DIGITS) -> Dataset:
    """Read an IDX images file and its labels file into a `Dataset`, checking counts and label range."""
    images = read_idx(images_path, IDX_IMAGES_NDIM)
    labels = read_idx(labels_path, IDX_LABELS_NDIM)
    if len(images) != len(labels):
        raise DatasetError(f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels")
    bad = np.flatnonzero(labels >= len(class_names))
    if bad.size:
        raise DatasetError(
            f"{labels_path}: label {labels[bad[0]]} at record {bad[0]} is outside 0..{len(class_names) - 1} "
            f"({bad.size} such records)"
        )
    return Dataset(images[..., np.newaxis], labels.astype(np.int64), class_names)


def _find(folder: Path, name: str) -> Path:
    for candidate in (folder / name, folder / f"{name}.gz"):
        if candidate.exists():
            return candidate
    raise DatasetError(f"{folder}: no {name} (or {name}.gz); run `mnist fetch` or check the folder")


def load_idx_folder(folder: str | Path) -> dict[str, Dataset]:
    """Read the MNIST-named IDX files (plain or .gz) in `folder`: {'train': Dataset, 'test': Dataset}."""
    folder = Path(folder)
    return {
        split: read_idx_pair(_find(folder, f"{prefix}-images-idx3-ubyte"), _find(folder, f"{prefix}-labels-idx1-ubyte"))
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }


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
