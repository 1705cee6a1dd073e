"""Model files: save a `.keras` with its SHA-256 recorded beside it; load only a file that matches, in safe mode."""

from __future__ import annotations

import os
import re
import zipfile
from pathlib import Path

import keras

from mnist_lib.checksums import sha256_file

SIDECAR_SUFFIX = ".sha256"  # model.keras -> model.keras.sha256, in `sha256sum` format
RETRAIN = "retrain it (`dvc repro train`) or restore the tracked one (`dvc checkout outputs/train`)"


class ModelFileError(ValueError):
    """A model file that is refused: missing record, wrong hash, or content that would run code."""


def sidecar_path(path: str | Path) -> Path:
    """Where the SHA-256 of model file `path` is recorded."""
    path = Path(path)
    return path.with_name(path.name + SIDECAR_SUFFIX)


def save_model(model: keras.Model, path: str | Path) -> str:
    """Save `model` to `path` (atomically), then record the SHA-256 of the exact bytes written; return it."""
    path = Path(path)
    if path.suffix != ".keras":
        raise ValueError(f"{path}: a model file must end in .keras")
    partial = path.with_name(f".{path.stem}.partial.keras")
    model.save(partial)
    digest = sha256_file(partial)  # after saving: a .keras embeds its save time, so only this file has this hash
    os.replace(partial, path)
    record = sidecar_path(path)
    partial_record = record.with_name(f".{record.name}.partial")
    partial_record.write_text(f"{digest}  {path.name}\n")
    os.replace(partial_record, record)
    return digest


def recorded_sha256(path: str | Path) -> str:
    """The SHA-256 recorded for model file `path` by `save_model`, or a ModelFileError saying what to do."""
    record = sidecar_path(path)
    if not record.is_file():
        raise ModelFileError(
            f"{path}: no recorded SHA-256 ({record.name} is missing), so the file cannot be checked and is refused. "
            f"Models written by the train stage carry one: {RETRAIN}. If you know where this file came from, "
            "pass its hash explicitly: modelfile.load_model(path, expected_sha256=...)"
        )
    match = re.match(r"([0-9a-f]{64})\b", record.read_text().strip())
    if not match:
        raise ModelFileError(f"{record}: not a SHA-256 record (expected '<64 hex digits>  {Path(path).name}'); {RETRAIN}")
    return match[1]


def verify(path: str | Path, expected_sha256: str | None = None) -> str:
    """Check that model file `path` has the expected (default: recorded) SHA-256; return it."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist: run the train stage first (`dvc repro train`)")
    expected = (expected_sha256 or recorded_sha256(path)).lower()
    actual = sha256_file(path)
    if actual != expected:
        source = "given" if expected_sha256 else f"recorded in {sidecar_path(path).name}"
        raise ModelFileError(
            f"{path}: SHA-256 {actual} differs from the {expected} {source}: the file was changed or swapped "
            f"after training and is refused; {RETRAIN}"
        )
    return actual


def load_model(path: str | Path, expected_sha256: str | None = None) -> keras.Model:
    """Load a `.keras` model whose SHA-256 matches its record (or `expected_sha256`), in Keras safe mode only."""
    path = Path(path)
    verify(path, expected_sha256)
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except (ValueError, TypeError, KeyError, AttributeError, OSError, zipfile.BadZipFile) as err:
        raise ModelFileError(
            f"{path}: Keras refused to load it in safe mode ({type(err).__name__}: {_reason(err)}). "
            "Models of this repo hold no code (no Lambda layers, only Keras objects): rebuild the model from "
            "mnist_lib.models and retrain (`dvc repro train`); never load it with unsafe deserialization"
        ) from err


def _reason(err: Exception) -> str:
    """The first sentence of Keras' message (of the nested error, if any); its advice to load unsafely is left out."""
    message = str(err).rpartition("Exception encountered:")[2].strip()
    return message.splitlines()[0].split(". ")[0][:300] if message else "no message"
