"""IDX, the MNIST file format: the four MNIST file names, strict reading (plain or gzip) and writing."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from mnist_lib.records import DIGITS, Dataset, DatasetError

# The four MNIST files: split -> (images, labels).
MNIST_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
MNIST_FILES = tuple(name for pair in MNIST_NAMES.values() for name in pair)

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


def idx_bytes(array: np.ndarray) -> bytes:
    """Serialise a uint8 array as IDX: magic (0, 0, 0x08, ndim), big-endian dimensions, then the data."""
    if array.size and (array.min() < 0 or array.max() > 255):
        raise ValueError(f"IDX unsigned bytes hold 0..255; the array spans {array.min()}..{array.max()}")
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
