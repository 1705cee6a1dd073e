"""Shared fixtures: tiny real datasets (digits drawn with Pillow, written as real IDX bytes), the repo root."""

from __future__ import annotations

import csv
import gzip
import hashlib
import os
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
MNIST_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

# Keep kernels and TensorFlow quiet and small in every process the tests start.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Under N pytest-xdist workers, each worker (and every process it starts: kernels, dvc stages, training scripts)
# gets the cores divided by N, as `mnist sweep --jobs N` gives its runs: measured on 2 cores with 2 workers,
# 1.19x faster than every process using both cores. Tests that set these variables themselves still do.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    from mnist_lib import executors, runtime

    for _name, _value in runtime.thread_variables(executors.threads_per_run(_WORKERS)).items():
        os.environ.setdefault(_name, _value)


# The test files that take longest, longest first (`make bench-suite` times the suite; per file, from one run of
# it): they start first and the small files fill the workers' ends, instead of one worker running a long file alone
# at the end while the other waits.
LONGEST_FILES = ("test_pipeline.py", "test_sweeps.py", "test_scratch.py", "test_training.py", "test_predict.py",
                 "benchmarks/test_bench_recipes.py", "test_runner.py", "test_notebooks.py",
                 "benchmarks/test_bench_sections.py", "test_evaluation.py", "test_byo_notebooks.py")


def pytest_configure(config: pytest.Config) -> None:
    # pytest-xdist's `--dist loadfile` hands out whole files, by default the files with the most tests first
    # (`--loadscope-reorder`), which is not the longest first: keep the collection order set below.
    if hasattr(config.option, "loadscopereorder"):
        config.option.loadscopereorder = False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(LONGEST_FILES)}
    items.sort(key=lambda item: rank.get(Path(item.path).relative_to(REPO / "tests").as_posix(), len(rank)))  # stable


@pytest.fixture(autouse=True)
def float32_policy_after_each_test():
    """Training in mixed precision sets Keras's global dtype policy (as a notebook's kernel keeps it) and leaves it:
    later tests in the same worker would build bfloat16 models. Each test starts from float32."""
    yield
    if "keras" in sys.modules:
        sys.modules["keras"].mixed_precision.set_global_policy("float32")


def draw_digits(count: int, seed: int, size: int = 28) -> tuple[np.ndarray, np.ndarray]:
    """`count` images of digits drawn in white on black at random offsets and sizes, with their labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count, dtype=np.uint8) % 10
    rng.shuffle(labels)
    images = np.zeros((count, size, size), dtype=np.uint8)
    for index, label in enumerate(labels):
        font = ImageFont.load_default(size=int(rng.integers(16, 23)))
        canvas = Image.new("L", (size, size), 0)
        ImageDraw.Draw(canvas).text((int(rng.integers(4, 11)), int(rng.integers(-1, 5))), str(label), fill=255, font=font)
        noise = rng.integers(0, 30, (size, size))
        images[index] = np.clip(np.asarray(canvas, dtype=np.int32) + noise * (np.asarray(canvas) > 0), 0, 255)
    return images, labels


def digit_dataset(count: int, seed: int):
    """`draw_digits` as a `Dataset`: 28x28x1 uint8 images, int64 labels, the classes "0".."9"."""
    from mnist_lib.records import DIGITS, Dataset

    images, labels = draw_digits(count, seed)
    return Dataset(images[..., None], labels.astype(np.int64), DIGITS)


def same_weights(first: list[np.ndarray], second: list[np.ndarray]) -> bool:
    """Whether two lists of weight arrays (`Model.get_weights()`, best weights) are the same length and equal, array
    by array, bit for bit."""
    return len(first) == len(second) and all(np.array_equal(a, b) for a, b in zip(first, second))


def idx_encode(array: np.ndarray) -> bytes:
    """IDX bytes written independently of mnist_lib: 2 zero bytes, type 0x08, ndim, big-endian dims, data."""
    return struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()


def write_tiny_mnist(folder: Path, n_train: int = 300, n_test: int = 100, gz: bool = False) -> dict[str, str]:
    """Write the four MNIST-named IDX files of a tiny dataset; return their SHA-256 (of the raw bytes)."""
    folder.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = draw_digits(n_train, seed=1)
    test_images, test_labels = draw_digits(n_test, seed=2)
    checksums = {}
    for name, array in zip(MNIST_NAMES, (train_images, train_labels, test_images, test_labels)):
        data = idx_encode(array)
        checksums[name] = hashlib.sha256(data).hexdigest()
        if gz:
            (folder / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)
    return checksums


@pytest.fixture(scope="session")
def tiny_mnist(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A folder with a tiny MNIST (300 train, 100 test) as the four raw IDX files, and their checksums."""
    folder = tmp_path_factory.mktemp("tiny_mnist")
    return folder, write_tiny_mnist(folder)


def write_kaggle_csv(path: Path, images: np.ndarray, labels: np.ndarray | None = None) -> Path:
    """A Kaggle "Digit Recognizer" CSV written with the csv module: header, then one row per 28x28 image."""
    header = ([] if labels is None else ["label"]) + [f"pixel{index}" for index in range(784)]
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(header)
        for index, image in enumerate(images.reshape(len(images), 784)):
            writer.writerow(([] if labels is None else [int(labels[index])]) + image.tolist())
    return path


SHAPES = ("circle", "square", "triangle")


def draw_shapes(count: int, seed: int) -> tuple[list[Image.Image], np.ndarray]:
    """`count` RGB pictures of varied sizes, each a coloured circle, square or triangle on a light background."""
    rng = np.random.default_rng(seed)
    labels = np.arange(count) % len(SHAPES)
    rng.shuffle(labels)
    pictures = []
    for label in labels:
        width, height = (int(v) for v in rng.integers(36, 72, size=2))
        canvas = Image.new("RGB", (width, height), tuple(int(v) for v in rng.integers(200, 256, size=3)))
        draw = ImageDraw.Draw(canvas)
        side = int(min(width, height) * rng.uniform(0.5, 0.8))
        x, y = int(rng.integers(0, width - side + 1)), int(rng.integers(0, height - side + 1))
        colour = tuple(int(v) for v in rng.integers(0, 120, size=3))
        box = (x, y, x + side, y + side)
        if label == 0:
            draw.ellipse(box, fill=colour)
        elif label == 1:
            draw.rectangle(box, fill=colour)
        else:
            draw.polygon([(x, y + side), (x + side, y + side), (x + side // 2, y)], fill=colour)
        pictures.append(canvas)
    return pictures, labels


def write_shape_folders(root: Path, count: int, seed: int, labeled: bool = True) -> Path:
    """Real PNG/JPG files of `draw_shapes`: ROOT/<shape>/NAME (labeled) or ROOT/img_N (unlabeled)."""
    pictures, labels = draw_shapes(count, seed)
    for index, (picture, label) in enumerate(zip(pictures, labels)):
        folder = root / SHAPES[label] if labeled else root
        folder.mkdir(parents=True, exist_ok=True)
        picture.save(folder / f"img_{index + 1}.{'png' if index % 2 else 'jpg'}")
    return root
