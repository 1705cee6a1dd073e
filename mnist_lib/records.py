"""The in-memory `Dataset` record every reader returns, and `DatasetError` for input that cannot be used."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIGITS = tuple(str(digit) for digit in range(10))


class DatasetError(ValueError):
    """Input data that cannot be used; the message names the file and the place."""


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
