"""Kaggle "Digit Recognizer" CSV files: `label,pixel0..pixel783` (train) or `pixel0..pixel783` (unlabeled test)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from mnist_lib.records import DIGITS, Dataset, DatasetError

SIDE = 28
PIXEL_COLUMNS = tuple(f"pixel{index}" for index in range(SIDE * SIDE))  # pixel x is row x // 28, column x % 28
LABELED_HEADER = ("label", *PIXEL_COLUMNS)


def _check_header(path: Path) -> bool:
    """True if the header is the labeled one, False if it is the unlabeled one; else a DatasetError naming the column."""
    with open(path, newline="", encoding="utf-8-sig") as stream:
        header = tuple(name.strip() for name in next(csv.reader(stream), []))
    if header in (LABELED_HEADER, PIXEL_COLUMNS):
        return header == LABELED_HEADER
    expected = LABELED_HEADER if header[:1] == ("label",) else PIXEL_COLUMNS
    wrong = next((i for i, (got, want) in enumerate(zip(header, expected)) if got != want), None)
    if wrong is not None:
        problem = f"column {wrong + 1} is {header[wrong]!r} where {expected[wrong]!r} belongs"
    else:
        problem = f"it has {len(header)} columns instead of {len(expected)}"
    raise DatasetError(
        f"{path}: the header is not `label,pixel0,...,pixel783` (train) or `pixel0,...,pixel783` (test): {problem}"
    )


def _find_ragged_row(path: Path, width: int) -> str:
    """Describe the first data row whose field count is not `width` (the pyarrow parser does not say which)."""
    with open(path, newline="", encoding="utf-8-sig") as stream:
        rows = csv.reader(stream)
        next(rows, None)
        for row_number, row in enumerate((row for row in rows if row), start=1):
            if len(row) != width:
                return f"data row {row_number} (line {rows.line_num}) has {len(row)} values instead of {width}"
    return "a row has the wrong number of values"


def _first_bad_value(table: pd.DataFrame) -> str | None:
    """Describe the first value that is not an integer in 0..255 (row, column, value), or None if all are."""
    for column in table.columns:
        values = table[column]
        if not pd.api.types.is_integer_dtype(values):
            numbers = pd.to_numeric(values, errors="coerce")
            bad = numbers.isna() | (numbers != numbers.round())
            if bad.any():
                row = int(np.flatnonzero(bad.to_numpy())[0])
                value = values.iloc[row]
                shown = "an empty value (or NaN)" if pd.isna(value) else repr(getattr(value, "item", lambda: value)())
                return f"data row {row + 1}, column {column!r}: {shown} is not an integer"
    return None


def read_kaggle_csv(path: str | Path) -> Dataset:
    """Read a Kaggle-format CSV into a `Dataset` (28x28x1, labels 0..9 or None), validating every value."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: no such file")
    labeled = _check_header(path)
    try:
        table = pd.read_csv(path, engine="pyarrow", encoding="utf-8")
    except (pd.errors.ParserError, ValueError) as err:
        detail = _find_ragged_row(path, len(LABELED_HEADER if labeled else PIXEL_COLUMNS))
        raise DatasetError(f"{path}: {detail}") from err
    if table.empty:
        raise DatasetError(f"{path}: the header is there but there are no data rows")
    problem = _first_bad_value(table)
    if problem:
        raise DatasetError(f"{path}: {problem}")
    pixels = table[list(PIXEL_COLUMNS)].to_numpy(dtype=np.int64)
    outside = np.argwhere((pixels < 0) | (pixels > 255))
    if len(outside):
        row, column = outside[0]
        raise DatasetError(
            f"{path}: data row {row + 1}, column 'pixel{column}': {pixels[row, column]} is outside 0..255 "
            f"({len(outside)} such values)"
        )
    labels = None
    if labeled:
        labels = table["label"].to_numpy(dtype=np.int64)
        outside = np.flatnonzero((labels < 0) | (labels >= len(DIGITS)))
        if len(outside):
            raise DatasetError(
                f"{path}: data row {outside[0] + 1}: label {labels[outside[0]]} is not a digit 0..9 "
                f"({len(outside)} such rows)"
            )
    images = pixels.astype(np.uint8).reshape(len(table), SIDE, SIDE, 1)
    sources = tuple(f"{path.name} row {row}" for row in range(1, len(table) + 1))
    return Dataset(images, labels, DIGITS, sources)


def load_kaggle_folder(folder: str | Path) -> dict[str, Dataset]:
    """Read `train.csv` (labeled) and, when present, `test.csv` (labeled or not) from `folder`."""
    folder = Path(folder)
    train_path = folder / "train.csv"
    if not train_path.is_file():
        raise DatasetError(f"{folder}: no train.csv; data_format kaggle_csv expects train.csv (and test.csv) there")
    train = read_kaggle_csv(train_path)
    if train.labels is None:
        raise DatasetError(f"{train_path}: the training file needs a first column `label`")
    splits = {"train": train}
    if (folder / "test.csv").is_file():
        splits["test"] = read_kaggle_csv(folder / "test.csv")
    return splits
