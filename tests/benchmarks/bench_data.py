"""Data loading: mnist_lib's readers against the naive way of reading the same files, timed in the same run.

    python tests/benchmarks/bench_data.py [--rows 42000] [--files 42000] [--repeats 3] [--raw-dir outputs/data/raw]

Four cases: fetch from a local copy with SHA-256 verification vs a plain copy; the 70,000 IDX images and labels vs a
pure-Python parse; a 42,000-row Kaggle CSV vs pandas' default parser; a 42,000-file JPG class folder vs a Python loop
over Pillow. The CSV and the JPG files are written once from the first training images of the raw files into
outputs/bench/data/ (not timed) and reused. Each figure is the best of --repeats calls with the files in the page
cache, then one more call of each after the files were evicted from it (cold).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import os
import shutil
import struct
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

import benchlib
from mnist_lib import checksums, datasets, fetch, idx, sources, tabular, timing

SECTION = {"section": "data", "title": "Data loading", "order": 10}
CSV_TARGET_S = 2.0  # a 42,000-row Kaggle CSV loads in under this


def naive_idx(path: Path) -> np.ndarray:
    """Pure-Python IDX parse: the header with struct, then `list(f.read(...))` per record, then one np.array."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as stream:
        magic, count = struct.unpack(">II", stream.read(8))
        if magic == 2051:
            rows, cols = struct.unpack(">II", stream.read(8))
            records = [list(stream.read(rows * cols)) for _ in range(count)]
            return np.array(records, dtype=np.uint8).reshape(count, rows, cols)
        return np.array(list(stream.read(count)), dtype=np.uint8)


def naive_jpg_folder(root: Path) -> tuple[np.ndarray, np.ndarray]:
    """A Python loop: list the class folders, open each file with Pillow, convert to grayscale, stack."""
    images, labels = [], []
    for label in sorted(os.listdir(root), key=int):
        for name in sorted(os.listdir(root / label)):
            images.append(np.asarray(Image.open(root / label / name).convert("L")))
            labels.append(int(label))
    return np.stack(images), np.array(labels)


def raw_files(raw_dir: Path) -> list[Path]:
    """The four MNIST-named IDX files in `raw_dir` (plain, else .gz)."""
    found = []
    for name in idx.MNIST_FILES:
        plain, packed = raw_dir / name, raw_dir / f"{name}.gz"
        if not (plain.is_file() or packed.is_file()):
            raise SystemExit(f"{raw_dir}: no {name}; run `mnist fetch` (or pass --raw-dir)")
        found.append(plain if plain.is_file() else packed)
    return found


def checksums_of(files: list[Path]) -> tuple[dict[str, str], bool]:
    """SHA-256 of each file's IDX bytes, and whether they are the pinned MNIST ones (else: other IDX data, as in tests)."""
    sums = {}
    for path in files:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as stream:
                sums[path.name.removesuffix(".gz")] = hashlib.file_digest(stream, "sha256").hexdigest()
        else:
            sums[path.name] = checksums.sha256_file(path)
    return sums, sums == fetch.MNIST_SHA256


def make_inputs(raw_dir: Path, work: Path, rows: int, files: int) -> tuple[Path, Path]:
    """Write (once) train.csv with `rows` rows and a class-folder tree of `files` JPG files from the first training images."""
    train = datasets.load_idx_folder(raw_dir)["train"]
    csv_path = work / f"kaggle_{rows}" / "train.csv"
    if not csv_path.is_file():
        csv_path.parent.mkdir(parents=True, exist_ok=True)
        table = np.column_stack([train.labels[:rows], train.images[:rows].reshape(-1, 784)])
        partial = csv_path.with_suffix(".part")
        np.savetxt(partial, table, fmt="%d", delimiter=",", header=",".join(tabular.LABELED_HEADER), comments="")
        partial.rename(csv_path)
    jpg_root = work / f"jpg_{files}"
    done = jpg_root / ".complete"
    if not done.is_file():
        shutil.rmtree(jpg_root, ignore_errors=True)
        for index in range(files):
            folder = jpg_root / "train" / str(train.labels[index])
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(train.images[index, :, :, 0]).save(folder / f"img_{index + 1}.jpg")
        done.touch()
    return csv_path, jpg_root


def compare(label: str, ours, naive, repeats: int, naive_repeats: int, files: list[Path], setup=None) -> dict:
    """Time ours and the naive way (warm, best of N), then once each with `files` evicted from the page cache."""
    print(f"{label} ...", flush=True)
    warm_ours, warm_naive = timing.timed(ours, repeats, setup), timing.timed(naive, naive_repeats, setup)
    cold = []
    for fn in (ours, naive):
        if setup:
            setup()
        evicted = benchlib.evict(files)
        cold.append(timing.timed(fn, 1).best if evicted else None)
    print(f"  mnist_lib {warm_ours.best:.3f} s, naive {warm_naive.best:.3f} s; cold {cold}", flush=True)
    return {"label": label, "ours": warm_ours, "naive": warm_naive, "cold": cold}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, default=benchlib.REPO / "outputs/data/raw", help="the four raw IDX files")
    parser.add_argument("--work-dir", type=Path, default=benchlib.OUT_DIR / "data", help="generated CSV and JPG files")
    parser.add_argument("--rows", type=int, default=42_000, help="rows of the Kaggle CSV")
    parser.add_argument("--files", type=int, default=42_000, help="JPG files of the image folder")
    parser.add_argument("--repeats", type=int, default=3, help="warm timed calls per figure, the best is kept")
    parser.add_argument("--naive-repeats", type=int, default=3, help="the same for the naive ways")
    parser.add_argument("--out", type=Path, help="where the section's JSON goes (default: outputs/bench)")
    args = parser.parse_args(argv)

    files = raw_files(args.raw_dir)
    checksums, pinned = checksums_of(files)
    available = len(idx.read_idx(files[1], 1))
    rows, count = min(args.rows, available), min(args.files, available)
    csv_path, jpg_root = make_inputs(args.raw_dir, args.work_dir, rows, count)
    jpg_files = sorted(jpg_root.glob("train/*/*.jpg"))
    scratch = Path(tempfile.mkdtemp(prefix="fetch-", dir=args.work_dir))
    fetched, copied = scratch / "fetched", scratch / "copied"

    def empty_scratch() -> None:
        for folder in (fetched, copied):
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)

    def read_idx_files():
        if pinned:
            return datasets.load_mnist(args.raw_dir)
        return fetch.verify_files(args.raw_dir, checksums), datasets.load_idx_folder(args.raw_dir)

    def read_jpg_folder():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a small subset can be imbalanced; the warning is not what is timed
            return datasets.load("image_folder", jpg_root, train_folder="train", test_folder="")

    images_total = sum(len(idx.read_idx(path, 1)) for path in files[1::2])
    r = [
        compare(f"fetch 4 raw files ({sum(p.stat().st_size for p in files) / 1e6:.0f} MB) from a local folder",
                lambda: fetch.fetch(fetched, [sources.LocalFolder(args.raw_dir)], checksums),
                lambda: [shutil.copy(path, copied / path.name) for path in files],
                args.repeats, args.repeats, files, setup=empty_scratch),
        compare(f"parse IDX images + labels, {images_total:,} images",
                read_idx_files, lambda: [naive_idx(path) for path in files], args.repeats, args.naive_repeats, files),
        compare(f"Kaggle CSV, {rows:,} rows", lambda: tabular.read_kaggle_csv(csv_path),
                lambda: pd.read_csv(csv_path).to_numpy()[:, 1:].reshape(-1, 28, 28).astype(np.uint8),
                args.repeats, args.naive_repeats, [csv_path]),
        compare(f"JPG class folders, {count:,} files", read_jpg_folder, lambda: naive_jpg_folder(jpg_root / "train"),
                args.repeats, args.naive_repeats, jpg_files),
    ]
    shutil.rmtree(scratch, ignore_errors=True)
    check_same_pixels(r, rows, count)

    csv_s = r[2]["ours"].best
    benchlib.write_section({
        **SECTION, "command": benchlib.command_line(__file__, argv),
        "columns": ["what", "mnist_lib (s)", "naive (s)", "speed-up", "mnist_lib cold (s)", "naive cold (s)"],
        "rows": [[x["label"], round(x["ours"].best, 4), round(x["naive"].best, 4), benchlib.ratio(x["naive"].best, x["ours"].best),
                  None if x["cold"][0] is None else round(x["cold"][0], 4),
                  None if x["cold"][1] is None else round(x["cold"][1], 4)] for x in r],
        "notes": [
            f"Warm figures: best of {args.repeats} calls ({args.naive_repeats} for the naive parsers), "
            "files already in the page cache (the CSV and JPG files were written or read just before). Cold figures: one "
            "call right after the files were evicted from this machine's page cache (posix_fadvise DONTNEED); a "
            "virtual disk's host may still cache them, so a first read from a real disk can be slower. Single cold calls are "
            "noisier than the best-of-N warm ones.",
            "fetch: mnist_lib.fetch.fetch(out, [fetch.LocalFolder(raw_dir)]) into an empty folder: copy to a temp file, "
            f"SHA-256 ({'the pinned MNIST checksums' if pinned else 'checksums of these files: they are not MNIST'}), "
            "rename, provenance.json. Naive: shutil.copy of the same 4 files. The speed-up column is here a slow-down: "
            "the cost of verification.",
            "IDX: " + ("datasets.load_mnist (SHA-256 of the 4 files against the pins, then the strict readers)" if pinned else
                       "fetch.verify_files + datasets.load_idx_folder (what load_mnist does, with these files' checksums)")
            + ". Naive: struct header, `list(f.read(784))` per image into a list, then np.array; no checks.",
            "Kaggle CSV: mnist_lib.tabular.read_kaggle_csv (header check, pyarrow parser, every value checked as an "
            "integer in 0..255, labels 0..9, a source name per row). Naive: pandas.read_csv(path) with the default "
            "(C) engine, .to_numpy() reshaped to 28x28 images; no checks.",
            "JPG folder: datasets.load('image_folder', ...) (natural file order, decoding in worker processes on "
            f"{os.cpu_count()} CPU(s), resize and validation). Naive: a loop of PIL.Image.open(path).convert('L') -> "
            "np.asarray over sorted os.listdir, then np.stack.",
            f"Inputs: the first {rows:,} (CSV) and {count:,} (JPG, Pillow's default quality 75) training images of "
            f"{args.raw_dir.name}/, written once to {args.work_dir.name}/ and reused; their writing is not timed.",
        ],
        "targets": [{"target": f"Kaggle CSV of {rows:,} rows < {CSV_TARGET_S:g} s", "measured": f"{csv_s:.2f} s (warm)",
                     "met": csv_s < CSV_TARGET_S}],
    }, args.out)
    return 0


def check_same_pixels(results: list[dict], rows: int, count: int) -> None:
    """Both sides of each comparison must read the same images, or the comparison means nothing."""
    ours, naive = results[1]["ours"].result, results[1]["naive"].result
    splits = ours[1] if isinstance(ours, tuple) else ours
    assert np.array_equal(splits["train"].images[..., 0], naive[0]) and np.array_equal(splits["test"].labels, naive[3])
    csv_ours, csv_naive = results[2]["ours"].result, results[2]["naive"].result
    assert len(csv_ours) == rows and np.array_equal(csv_ours.images[..., 0], csv_naive)
    jpg_ours, (jpg_naive, labels) = results[3]["ours"].result["train"], results[3]["naive"].result
    assert len(jpg_ours) == len(jpg_naive) == count
    assert np.array_equal(np.sort(jpg_ours.labels), np.sort(labels))


if __name__ == "__main__":
    sys.exit(main())
