"""Seeded, stratified train/validation split and the stored uint8 split files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from mnist_lib.datasets import Dataset

SPLITS = ("train", "val", "test")


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, val) indices; each class gives round(val_fraction * its count) images to val."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    rng = np.random.default_rng(seed)
    val_parts = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        val_parts.append(members[: int(round(len(members) * val_fraction))])
    val = np.sort(np.concatenate(val_parts))
    train = np.setdiff1d(np.arange(len(labels)), val, assume_unique=True)
    check_disjoint({"train": train, "val": val}, len(labels))
    return train, val


def make_splits(data: dict[str, Dataset], val_fraction: float, test_fraction: float, seed: int) -> dict[str, Dataset]:
    """train/val/test: validation drawn from 'train' per class; the data's own test set, or when it has none,
    `test_fraction` of each class held out first (with a seed of its own, so val_fraction does not move it)."""
    train, test = data["train"], data.get("test")
    if test is None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
        rest, held_out = stratified_split(train.labels, test_fraction, seed + 1)
        train, test = subset(train, rest), subset(train, held_out)
    train_indices, val_indices = stratified_split(train.labels, val_fraction, seed)
    return {"train": subset(train, train_indices), "val": subset(train, val_indices), "test": test}


def check_disjoint(parts: dict[str, np.ndarray], total: int) -> None:
    """Raise unless the index sets are pairwise disjoint and together cover 0..total-1."""
    seen = np.zeros(total, dtype=np.int64)
    for indices in parts.values():
        np.add.at(seen, indices, 1)
    if (seen > 1).any():
        raise ValueError(f"index {np.flatnonzero(seen > 1)[0]} is in more than one of {', '.join(parts)}")
    if (seen == 0).any():
        raise ValueError(f"index {np.flatnonzero(seen == 0)[0]} is in none of {', '.join(parts)}")


def subset(dataset: Dataset, indices: np.ndarray) -> Dataset:
    """The images (and labels) of `dataset` at `indices`."""
    labels = None if dataset.labels is None else dataset.labels[indices]
    sources = None if dataset.sources is None else tuple(dataset.sources[i] for i in indices)
    return Dataset(dataset.images[indices], labels, dataset.class_names, sources)


def save_split(folder: str | Path, name: str, dataset: Dataset) -> Path:
    """Write one split as an uncompressed .npz of uint8 images, labels, class names and sources (when known)."""
    path = Path(folder) / f"{name}.npz"
    arrays = {"images": dataset.images, "class_names": np.array(dataset.class_names)}
    if dataset.labels is not None:
        arrays["labels"] = dataset.labels
    if dataset.sources is not None:
        arrays["sources"] = np.array(dataset.sources, dtype=str)
    np.savez(path, **arrays)
    return path


def load_split(folder: str | Path, name: str) -> Dataset:
    """Read one split written by `save_split`."""
    path = Path(folder) / f"{name}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the split stage first (`dvc repro split`)")
    with np.load(path, allow_pickle=False) as data:
        labels = data["labels"] if "labels" in data else None
        sources = tuple(str(source) for source in data["sources"]) if "sources" in data else None
        return Dataset(data["images"], labels, tuple(str(name) for name in data["class_names"]), sources)


def class_counts(splits: dict[str, Dataset]) -> pd.DataFrame:
    """A table of image counts per class (rows) and split (columns)."""
    counts = {
        name: np.bincount(ds.labels, minlength=ds.num_classes) for name, ds in splits.items() if ds.labels is not None
    }
    names = next(iter(splits.values())).class_names
    return pd.DataFrame(counts, index=pd.Index(names, name="class"))


def write_splits(folder: str | Path, parts: dict[str, Dataset], settings: dict) -> dict:
    """Write each split as NAME.npz plus summary.json (settings, sizes, shape, classes); return the summary."""
    for name, dataset in parts.items():
        save_split(folder, name, dataset)
    first = next(iter(parts.values()))
    summary = {
        **settings,
        **{f"{name}_images": len(dataset) for name, dataset in parts.items()},
        "test_labeled": parts["test"].labels is not None,
        "image_shape": "x".join(map(str, first.image_shape)),
        "classes": first.num_classes,
        "class_names": list(first.class_names),
    }
    (Path(folder) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
