"""Resume after a kill: the whole training state saved after every epoch, and restored only for the same run."""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from mnist_lib.recipe import TrainConfig
from mnist_lib.records import Dataset


def resume_path(out_dir: str | Path, member: int | None = None) -> Path:
    """Where `fit` keeps the state it resumes from: beside `out_dir`, not in it (DVC empties a stage's outputs
    first); one file per ensemble member."""
    out_dir = Path(out_dir).resolve()
    return out_dir.with_name(out_dir.name + ("" if member is None else f".member{member}") + ".resume.npz")


def resume_fingerprint(model: keras.Model, train: Dataset, val: Dataset, config: TrainConfig, seed: int | None = None) -> dict:
    """What a resume state must have been saved with: configuration and seed, variable shapes, data digests, versions."""
    return {
        "config": asdict(config),
        "seed": config.seed if seed is None else seed,
        "variables": [list(variable.shape) for variable in model.variables],
        "train": _data_digest(train),
        "val": _data_digest(val),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def _data_digest(data: Dataset) -> str:
    """SHA-256 of a dataset's image and label bytes."""
    digest = hashlib.sha256(np.ascontiguousarray(data.images).data)
    digest.update(np.ascontiguousarray(data.labels).data)
    return digest.hexdigest()


class ResumeState(keras.callbacks.Callback):
    """After every epoch, save all training state to one file (written whole, then renamed over the last one):
    model and optimizer variables (random-seed states included), early-stopping progress and best weights, and
    history.csv so far. `restore` loads it before `fit`, so a killed run continues where it stopped."""

    def __init__(self, path: Path, fingerprint: dict, history_csv: Path, early_stopping: keras.callbacks.EarlyStopping | None):
        super().__init__()
        self.path, self.fingerprint, self.history_csv, self.early_stopping = path, fingerprint, history_csv, early_stopping
        self.stopped = False  # whether the restored run had already stopped early
        self._early_state: dict | None = None
        self._best_weights: list[np.ndarray] | None = None

    def restore(self, model: keras.Model) -> int:
        """Load a saved state that matches this run into `model`; return the number of epochs it had finished."""
        if not self.path.is_file():
            return 0
        try:
            with np.load(self.path, allow_pickle=False) as state:
                meta = json.loads(str(state["meta"]))
                arrays = {name: state[name] for name in state.files if name != "meta"}
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
            print(f"Ignoring {self.path}: unreadable ({err}); training starts from epoch 1")
            return 0
        if meta.get("fingerprint") != json.loads(json.dumps(self.fingerprint)):
            print(f"Ignoring {self.path}: saved for other parameters, data or versions; training starts from epoch 1")
            return 0
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        for prefix, variables in (("model", model.variables), ("optimizer", model.optimizer.variables)):
            for index, variable in enumerate(variables):
                variable.assign(arrays[f"{prefix}_{index}"])
        self._early_state = meta["early_stopping"]
        if "best_0" in arrays:
            self._best_weights = [arrays[f"best_{index}"] for index in range(len(model.weights))]
        self.history_csv.write_bytes(meta["history_csv"].encode())  # CSVLogger writes \r\n: keep bytes
        self.stopped = meta["stopped"]
        print(f"Resuming after epoch {meta['epochs_done']} from {self.path} (delete it to start over)")
        return meta["epochs_done"]

    def on_train_begin(self, logs: dict | None = None) -> None:
        if self.early_stopping and self._early_state:  # runs after EarlyStopping's own reset
            for name, value in self._early_state.items():
                setattr(self.early_stopping, name, value)
            self.early_stopping.best_weights = self._best_weights

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        stopper = self.early_stopping
        arrays = {f"model_{i}": np.asarray(v) for i, v in enumerate(self.model.variables)}
        arrays |= {f"optimizer_{i}": np.asarray(v) for i, v in enumerate(self.model.optimizer.variables)}
        if stopper and stopper.best_weights is not None:
            arrays |= {f"best_{i}": np.asarray(w) for i, w in enumerate(stopper.best_weights)}
        meta = {
            "fingerprint": self.fingerprint,
            "epochs_done": epoch + 1,
            "stopped": bool(self.model.stop_training),
            "early_stopping": stopper and {
                "wait": stopper.wait, "best": None if stopper.best is None else float(stopper.best),
                "best_epoch": stopper.best_epoch, "stopped_epoch": stopper.stopped_epoch,
            },
            "history_csv": self.history_csv.read_bytes().decode(),  # CSVLogger runs first and has flushed this epoch's row
        }
        partial = self.path.with_name(self.path.name + ".partial")
        with open(partial, "wb") as stream:
            np.savez(stream, meta=np.array(json.dumps(meta)), **arrays)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(partial, self.path)

    def remove(self) -> None:
        """Delete the saved state (after a finished run)."""
        self.path.unlink(missing_ok=True)
        self.path.with_name(self.path.name + ".partial").unlink(missing_ok=True)
