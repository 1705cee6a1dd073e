"""Folders of image files: one sub-folder per class for training, an optional test folder; decoded in parallel."""

from __future__ import annotations

import os
import re
import warnings
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image

from mnist_lib.records import Dataset, DatasetError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
MODES = {1: "L", 3: "RGB"}  # channels -> Pillow mode
READ_ERRORS = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)  # what Pillow raises on a bad file
PARALLEL_MIN_FILES = 2000  # below this, starting worker processes costs more than it saves
MAX_WORKERS = 8


def natural_key(name: str) -> tuple:
    """Sort key that puts img_2 before img_10."""
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def read_image(path: str | Path, size: int, channels: int) -> np.ndarray:
    """One image file of any size and mode as uint8 (size, size, channels); a DatasetError names an unreadable file."""
    try:
        with Image.open(path) as image:
            image.draft(MODES[channels], (size, size))  # JPEG: decode at a reduced scale when much larger
            image = image.convert(MODES[channels])
            if image.size != (size, size):
                image = image.resize((size, size), Image.Resampling.LANCZOS, reducing_gap=3.0)
            array = np.asarray(image, dtype=np.uint8)
    except READ_ERRORS as err:
        raise DatasetError(f"{path}: not a readable image ({err})") from err
    return array.reshape(size, size, channels)


def _image_files(folder: Path) -> list[Path]:
    """The image files directly in `folder`, in natural name order; other files are reported, hidden ones ignored."""
    files = sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: natural_key(p.name))
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        warnings.warn(f"{folder}: ignored {len(others)} file(s) that are not {'/'.join(IMAGE_SUFFIXES)} (e.g. {others[0]})",
                      stacklevel=3)
    return [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]


def _class_folders(root: Path) -> list[Path]:
    """Sub-folders of `root`, sorted by name (numerically when every name is an integer, so digits keep their value)."""
    folders = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    numeric = all(p.name.isdigit() for p in folders)
    return sorted(folders, key=lambda p: int(p.name) if numeric else p.name)


def _attempt(path: Path, size: int, channels: int) -> np.ndarray | DatasetError:
    try:
        return read_image(path, size, channels)
    except DatasetError as err:
        return err


def decode_all(paths: list[Path], size: int, channels: int, skip_bad_images: bool) -> tuple[np.ndarray, list[int]]:
    """Decode `paths` (in worker processes when there are many): (images, indices of the files kept);
    unreadable files raise a DatasetError naming the first, or are skipped with a warning listing them."""
    workers = min(os.cpu_count() or 1, MAX_WORKERS)
    if len(paths) < PARALLEL_MIN_FILES or workers == 1:
        results = [_attempt(path, size, channels) for path in paths]
    else:  # decoding holds the GIL: threads were slower than one process, worker processes twice as fast on 2 cores
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork")) as pool:
            results = list(pool.map(_attempt, paths, [size] * len(paths), [channels] * len(paths),
                                    chunksize=max(1, len(paths) // (8 * workers))))
    bad = [(path, result) for path, result in zip(paths, results) if isinstance(result, DatasetError)]
    if bad and not skip_bad_images:
        raise DatasetError(
            f"{bad[0][1]}; {len(bad)} unreadable image(s) in all. Replace or delete them, "
            "or set skip_bad_images: true in params/data.yaml to skip them"
        )
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable image(s): {', '.join(str(path) for path, _ in bad)}", stacklevel=2)
    kept = [index for index, result in enumerate(results) if not isinstance(result, DatasetError)]
    images = np.stack([results[index] for index in kept]) if kept else np.zeros((0, size, size, channels), np.uint8)
    return images, kept


def read_class_folders(root: Path, base: Path, size: int, channels: int, skip_bad_images: bool,
                       class_names: tuple[str, ...] | None = None) -> Dataset:
    """Images in `root/<class>/`; class names from the folders, or checked against `class_names` (a test set)."""
    folders = _class_folders(root)
    if not folders:
        raise DatasetError(f"{root}: no class sub-folders; expected {root}/<class name>/<image files>")
    names = tuple(folder.name for folder in folders)
    if class_names is not None:
        unknown = [name for name in names if name not in class_names]
        if unknown:
            raise DatasetError(f"{root / unknown[0]}: class {unknown[0]!r} is in the test set but not among the "
                               f"training classes ({', '.join(class_names)})")
    numbering = class_names or names  # a test set uses the training classes' numbers
    paths, labels = [], []
    for folder in folders:
        files = _image_files(folder)
        if not files:
            raise DatasetError(f"{folder}: empty class folder (no {'/'.join(IMAGE_SUFFIXES)} files); add images or remove it")
        paths += files
        labels += [numbering.index(folder.name)] * len(files)
    images, kept = decode_all(paths, size, channels, skip_bad_images)
    kept_labels = np.asarray(labels, dtype=np.int64)[kept]
    empty = [name for name in names if not (kept_labels == numbering.index(name)).any()]
    if empty:
        raise DatasetError(f"{root / empty[0]}: every image of class {empty[0]!r} was unreadable")
    sources = tuple(paths[index].relative_to(base).as_posix() for index in kept)
    return Dataset(images, kept_labels, numbering, sources)


def read_flat_folder(folder: Path, base: Path, size: int, channels: int, skip_bad_images: bool,
                     class_names: tuple[str, ...]) -> Dataset:
    """Unlabeled images directly in `folder`, in natural file-name order."""
    paths = _image_files(folder)
    if not paths:
        raise DatasetError(f"{folder}: no {'/'.join(IMAGE_SUFFIXES)} files in the test folder")
    images, kept = decode_all(paths, size, channels, skip_bad_images)
    return Dataset(images, None, class_names, tuple(paths[index].relative_to(base).as_posix() for index in kept))


def load_image_folder(data_dir: str | Path, train_folder: str, test_folder: str, image_size: int, channels: int,
                      skip_bad_images: bool) -> dict[str, Dataset]:
    """`data_dir/train_folder/<class>/*` for training and, when it exists, `data_dir/test_folder` (class sub-folders:
    labeled; image files: unlabeled)."""
    base = Path(data_dir)
    train_root = base / train_folder
    if not train_root.is_dir():
        raise DatasetError(f"{train_root}: no such folder; set data_dir and train_folder in params/data.yaml")
    train = read_class_folders(train_root, base, image_size, channels, skip_bad_images)
    splits = {"train": train}
    test_root = base / test_folder
    if test_folder and test_root.is_dir():
        labeled = any(p.is_dir() and not p.name.startswith(".") for p in test_root.iterdir())
        reader = read_class_folders if labeled else read_flat_folder
        splits["test"] = reader(test_root, base, image_size, channels, skip_bad_images, class_names=train.class_names)
    return splits
