"""Tiny real evaluation cases: a test split written with `save_split`, a saved registry model, a train summary,
and the evaluate notebook run on them by the real runner (papermill, a real kernel)."""

from __future__ import annotations

import json
from pathlib import Path

import keras
import numpy as np

from conftest import REPO, draw_digits
from mnist_lib import modelfile, models, notebooks, split
from mnist_lib.records import Dataset

DIGITS = tuple("0123456789")


def digits(count: int, seed: int) -> Dataset:
    """Drawn digits as a labeled test split (white on black, 28x28x1)."""
    images, labels = draw_digits(count, seed)
    return Dataset(images[..., np.newaxis], labels.astype(np.int64), DIGITS)


def colour_blobs(count: int, seed: int, class_names: tuple[str, ...] = ("cat", "dog", "owl"), size: int = 32) -> Dataset:
    """RGB images: a saturated red, green or blue square (by class) on gray noise, with file names as sources."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(class_names)
    images = rng.integers(90, 140, (count, size, size, 3)).astype(np.uint8)
    for index, label in enumerate(labels):
        top, left = rng.integers(2, size // 2, 2)
        images[index, top: top + size // 2, left: left + size // 2] = 0
        images[index, top: top + size // 2, left: left + size // 2, label % 3] = 230
    sources = tuple(f"images/{class_names[label]}/{index:03d}.png" for index, label in enumerate(labels))
    return Dataset(images, labels.astype(np.int64), tuple(class_names), sources)


def write_case(folder: Path, test: Dataset, model_name: str = "mlp", seed: int = 7) -> dict[str, str]:
    """Save the split and an untrained (seeded) model with its train summary; return the notebook's path parameters."""
    split_dir, train_dir = folder / "split", folder / "train"
    split_dir.mkdir(parents=True)
    train_dir.mkdir(parents=True)
    split.save_split(split_dir, "test", test)
    keras.utils.set_random_seed(seed)
    net = models.build_model(model_name, test.image_shape, test.num_classes)
    modelfile.save_model(net, train_dir / "model.keras")
    summary = {"config": {"model": model_name, "seed": seed}, "parameters": net.count_params()}
    (train_dir / "summary.json").write_text(json.dumps(summary))
    return {"split_dir": str(split_dir), "model_path": str(train_dir / "model.keras"),
            "train_summary": str(train_dir / "summary.json"), "out_dir": str(folder / "evaluate")}


def run_evaluate(case: dict[str, str], output: Path, **overrides) -> Path:
    """Run notebooks/04_evaluate.py with params/evaluate.yaml and the case's paths, as the evaluate stage does."""
    values = {**case, **{name: str(value) for name, value in overrides.items()}}
    return notebooks.run(REPO / "notebooks" / "04_evaluate.py", output, [REPO / "params" / "evaluate.yaml"], values,
                         html=False)
