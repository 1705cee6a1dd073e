"""Datasets: the in-memory `Dataset` record and strict readers for IDX files (plain or gzip)."""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mnist_lib.fetch import verify_files


class DatasetError(ValueError):
    """Input data that cannot be used; the message names the file and the place."""


IDX_UNSIGNED_BYTE = 0x08
IDX_IMAGES_NDIM = 3  # magic 2051
IDX_LABELS_NDIM = 1  # magic 2049
MAX_IDX_BYTES = 1 << 30  # refuse to inflate a single IDX file past 1 GiB
DIGITS = tuple(str(digit) for digit in range(10))


@dataclass(frozen=True)
class Dataset:
    """Images as uint8 (n, height, width, channels), integer labels (or None when unlabeled), class names,
    and optionally where each image came from (a file name or a CSV row), so predictions can be traced back."""

    images: np.ndarray
    labels: np.ndarray | None
    class_names: tuple[str, ...]
    sources: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (n, h, w, c), got {self.images.dtype} {self.images.shape}")
        if self.labels is not None and self.labels.shape != (len(self.images),):
            raise ValueError(f"labels must have shape ({len(self.images)},), got {self.labels.shape}")
        if self.sources is not None and len(self.sources) != len(self.images):
            raise ValueError(f"sources must name {len(self.images)} images, got {len(self.sources)}")

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """Shape of one image: (height, width, channels)."""
        return tuple(self.images.shape[1:])

    def __len__(self) -> int:
        return len(self.images)


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


DATA_FORMATS = {"mnist": load_mnist, "idx": load_idx_folder}


def load(data_format: str, data_dir: str | Path) -> dict[str, Dataset]:
    """Load {'train': Dataset, 'test': Dataset} from `data_dir` in one of `DATA_FORMATS`."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format {data_format!r} is not one of {', '.join(DATA_FORMATS)}")
    return DATA_FORMATS[data_format](data_dir)
