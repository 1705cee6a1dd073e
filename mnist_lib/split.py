"""Seeded, stratified train/validation split, an optional training subset, and the stored uint8 split files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd

from mnist_lib.records import Dataset

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


def make_splits(
    data: dict[str, Dataset], val_fraction: float, test_fraction: float, seed: int, train_size: float = 1.0,
) -> dict[str, Dataset]:
    """train/val/test: validation drawn from 'train' per class; the data's own test set, or when it has none,
    `test_fraction` of each class held out first (with a seed of its own, so val_fraction does not move it);
    then, when `train_size` asks for fewer, a stratified subset of the remaining training images (validation and
    test stay as they are, see `stratified_subset`)."""
    train, test = data["train"], data.get("test")
    if test is None:
        if not 0.0 < test_fraction < 1.0:
            raise ValueError(f"test_fraction must be between 0 and 1 (exclusive), got {test_fraction}")
        rest, held_out = stratified_split(train.labels, test_fraction, seed + 1)
        train, test = subset(train, rest), subset(train, held_out)
    train_indices, val_indices = stratified_split(train.labels, val_fraction, seed)
    kept = stratified_subset(train.labels[train_indices], subset_count(train_size, len(train_indices)), seed + 2)
    return {"train": subset(train, train_indices[kept]), "val": subset(train, val_indices), "test": test}


def check_train_size(train_size: float) -> float:
    """`train_size` if it is a fraction in (0, 1] or a whole count of images above 1, else a ValueError."""
    if isinstance(train_size, bool) or not isinstance(train_size, (int, float)) or not 0 < train_size < math.inf:
        raise ValueError(f"train_size must be a fraction in (0, 1] or a count of images above 1, got {train_size!r}")
    if train_size > 1 and train_size != int(train_size):
        raise ValueError(f"train_size {train_size} is neither a fraction in (0, 1] nor a whole count of images")
    return train_size


def subset_count(train_size: float, available: int) -> int:
    """How many of `available` training images `train_size` keeps: a fraction in (0, 1] of them, or a whole
    count above 1 (at most `available`)."""
    if check_train_size(train_size) <= 1:
        return max(1, int(round(available * train_size)))
    if train_size > available:
        raise ValueError(f"train_size {int(train_size)} is more than the {available} training images left after the "
                         "validation split: lower it, or use 1.0 for all of them")
    return int(train_size)


def stratified_subset(labels: np.ndarray, count: int, seed: int) -> np.ndarray:
    """Sorted indices of `count` of `labels`, each class within one image of its share. Each class is shuffled
    (seeded); its image of rank r gets the key (r + 1/2) / class size, and the `count` lowest keys are kept, so
    with one seed a smaller subset always lies inside a larger one (learning curves add images, never swap them)."""
    if count >= len(labels):
        return np.arange(len(labels))
    rng = np.random.default_rng(seed)
    keys = np.empty(len(labels))
    classes = np.unique(labels)
    for label in classes:
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        keys[members] = (np.arange(len(members)) + 0.5) / len(members)
    kept = np.sort(np.argsort(keys, kind="stable")[:count])
    missing = np.setdiff1d(classes, labels[kept])
    if len(missing):
        need = int((keys <= 0.5 / np.bincount(labels)[classes].min()).sum())  # up to every class's first image
        raise ValueError(f"train_size {count} leaves class {missing[0]} without a training image; keep at least {need} images")
    return kept


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
