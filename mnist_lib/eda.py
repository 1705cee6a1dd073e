"""Exploratory statistics: summary tables and a 2-D PCA projection of the images."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mnist_lib.records import Dataset


def summary(splits: dict[str, Dataset]) -> pd.DataFrame:
    """One row per split: images, image shape, classes, pixel mean/std, share of zero pixels."""
    rows = {}
    for name, data in splits.items():
        pixels = data.images
        rows[name] = {
            "images": len(data),
            "image_shape": "x".join(map(str, data.image_shape)),
            "classes": data.num_classes,
            "labeled": data.labels is not None,
            "pixel_mean": round(float(pixels.mean()), 2),
            "pixel_std": round(float(pixels.std()), 2),
            "zero_pixels": round(float((pixels == 0).mean()), 4),
        }
    return pd.DataFrame(rows).T


def write_summary(path: str | Path, table: pd.DataFrame) -> dict:
    """Write the summary table as flat JSON ({"train_images": 60000, ...}) and return it."""
    flat = {f"{split}_{column}": value for split, row in table.iterrows() for column, value in row.items()}
    flat = {key: value.item() if isinstance(value, np.generic) else value for key, value in flat.items()}
    Path(path).write_text(json.dumps(flat, indent=2) + "\n")
    return flat


def pca_2d(images: np.ndarray, sample: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Project a random sample of images on their first two principal components: (points, indices, explained ratio)."""
    rng = np.random.default_rng(seed)
    indices = np.sort(rng.choice(len(images), size=min(sample, len(images)), replace=False))
    flat = images[indices].reshape(len(indices), -1).astype(np.float32) / 255
    centered = flat - flat.mean(axis=0)
    # Eigenvectors of the pixels' scatter matrix (pixels x pixels): the SVD of the whole sample costs 10x more.
    variances, components = np.linalg.eigh(centered.T @ centered)
    top = np.argsort(variances)[::-1][:2]
    explained = variances[top] / variances.sum()
    return centered @ components[:, top], indices, explained
