"""Training: seeds and determinism, the tf.data input pipeline, callbacks, resume after a kill, and `fit`."""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import time
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from mnist_lib import params
from mnist_lib.datasets import Dataset
from mnist_lib.models import check_model_name

THREAD_VARIABLES = ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")  # set by `mnist sweep`
OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}


@dataclass(frozen=True)
class TrainConfig:
    """The training parameters, checked on creation (types and ranges) so bad values fail before any work."""

    model: str
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    seed: int
    patience: int = 0
    restore_best_weights: bool = True

    def __post_init__(self) -> None:
        check_model_name(params.require_str("model", self.model))
        params.require_int("epochs", self.epochs, minimum=1, maximum=10_000)
        params.require_int("batch_size", self.batch_size, minimum=1, maximum=65_536)
        params.require_float("learning_rate", self.learning_rate, minimum=0.0, maximum=10.0, inclusive=False)
        params.require_choice("optimizer", self.optimizer, OPTIMIZERS)
        params.require_int("seed", self.seed, minimum=0, maximum=2**31 - 1)
        params.require_int("patience", self.patience, minimum=0)
        params.require_bool("restore_best_weights", self.restore_best_weights)


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic (call before building the model)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def _op_determinism_enabled() -> bool | None:
    try:  # TensorFlow exposes the setter publicly, the getter only here
        from tensorflow.python.framework.config import is_op_determinism_enabled
    except ImportError:
        return None
    return bool(is_op_determinism_enabled())


def environment() -> dict:
    """The settings that matter for reproducing a result: versions, determinism, threads."""
    return {
        "python": platform.python_version(),
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "op_determinism": _op_determinism_enabled(),
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "thread_variables": {name: os.environ.get(name) for name in THREAD_VARIABLES},
        "cpu_count": os.cpu_count(),
        "devices": [device.name for device in tf.config.list_logical_devices()],
    }


def write_environment(path: str | Path) -> dict:
    """Write `environment()` as JSON beside a result (versions, determinism, threads) and return it."""
    settings = environment()
    Path(path).write_text(json.dumps(settings, indent=2) + "\n")
    return settings


def input_pipeline(data: Dataset, batch_size: int) -> tf.data.Dataset:
    """Batches of (float32 pixels in 0..255, labels) from uint8 arrays, in order; scaling happens inside the model."""
    pipeline = tf.data.Dataset.from_tensor_slices((data.images, data.labels)).batch(batch_size)
    pipeline = pipeline.map(lambda images, labels: (tf.cast(images, tf.float32), labels), num_parallel_calls=tf.data.AUTOTUNE)
    return pipeline.prefetch(tf.data.AUTOTUNE)


def training_batches(data: Dataset, batch_size: int, seed: int, first_epoch: int, epochs: int) -> tf.data.Dataset:
    """Shuffled batches of epochs `first_epoch`..`epochs - 1`, one after another. Epoch e's order depends on
    (seed, e) only, so a run resumed at epoch e sees the batches an uninterrupted run would have seen."""
    images, labels = tf.constant(data.images), tf.constant(data.labels)
    count = len(data)

    def epoch_order(epoch: tf.Tensor) -> tf.data.Dataset:
        seeds = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=seeds)
        return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

    pipeline = tf.data.Dataset.range(first_epoch, epochs).flat_map(epoch_order)
    pipeline = pipeline.map(
        lambda index: (tf.cast(tf.gather(images, index), tf.float32), tf.gather(labels, index)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return pipeline.prefetch(tf.data.AUTOTUNE)


def compile_model(model: keras.Model, config: TrainConfig) -> keras.Model:
    """Attach optimizer, sparse cross-entropy loss and accuracy."""
    optimizer = OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def resume_path(out_dir: str | Path) -> Path:
    """Where `fit` keeps the state it resumes from: beside `out_dir`, not in it (DVC empties a stage's outputs first)."""
    out_dir = Path(out_dir).resolve()
    return out_dir.with_name(out_dir.name + ".resume.npz")


def resume_fingerprint(model: keras.Model, train: Dataset, val: Dataset, config: TrainConfig) -> dict:
    """What a resume state must have been saved with: configuration, variable shapes, data digests, versions."""
    return {
        "config": asdict(config),
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


def fit(
    model: keras.Model, train: Dataset, val: Dataset, config: TrainConfig, out_dir: str | Path,
    live_plot: bool = True, resume: bool = True,
) -> pd.DataFrame:
    """Compile and train (early stopping and best-weights restore on validation accuracy, never on test);
    resume from `resume_path(out_dir)` if a killed run left one; write history.csv into `out_dir`;
    return the whole history with an `epoch` column."""
    out_dir = Path(out_dir)
    history_csv = out_dir / "history.csv"
    compile_model(model, config)
    early_stopping = None
    if config.patience or config.restore_best_weights:
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=config.patience or config.epochs,
            restore_best_weights=config.restore_best_weights,
        )
    state = None
    if resume:
        state = ResumeState(resume_path(out_dir), resume_fingerprint(model, train, val, config), history_csv, early_stopping)
    epochs_done = state.restore(model) if state else 0
    # Order matters: CSVLogger writes the epoch's row, EarlyStopping updates, then the state saves both.
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.CSVLogger(str(history_csv), append=epochs_done > 0)]
    callbacks += [early_stopping] if early_stopping else []
    callbacks += [state] if state else []
    if live_plot:
        from livelossplot import PlotLossesKeras

        callbacks.append(PlotLossesKeras())
    # One pass over all remaining epochs (at least one epoch of data, even when a finished run has none left).
    batches = training_batches(train, config.batch_size, config.seed, min(epochs_done, config.epochs - 1), config.epochs)
    started = time.perf_counter()
    model.fit(
        batches,
        steps_per_epoch=math.ceil(len(train) / config.batch_size),
        validation_data=input_pipeline(val, 1024),
        epochs=config.epochs,
        initial_epoch=config.epochs if state and state.stopped else epochs_done,
        callbacks=callbacks,
        shuffle=False,  # the batches come shuffled (training_batches)
        verbose=2,  # one line per epoch: no progress-bar control characters in executed notebooks
    )
    seconds = time.perf_counter() - started
    if state:
        state.remove()
    history = pd.read_csv(history_csv)
    history.attrs.update(fit_seconds=seconds, resumed_from_epoch=epochs_done, epochs_this_run=len(history) - epochs_done)
    return history


def write_summary(
    out_dir: str | Path, model: keras.Model, config: TrainConfig, history: pd.DataFrame, n_train: int,
    model_sha256: str | None = None,
) -> dict:
    """Write train summary.json: config, parameter count, final and best validation figures, speed, resume,
    the model file's SHA-256, environment."""
    seconds = history.attrs.get("fit_seconds", float("nan"))
    epochs_this_run = history.attrs.get("epochs_this_run", len(history))
    best = history.loc[history["val_accuracy"].idxmax()]
    summary = {
        "config": asdict(config),
        "parameters": model.count_params(),
        "epochs_run": len(history),
        "final_val_accuracy": float(history["val_accuracy"].iloc[-1]),
        "best_val_accuracy": float(best["val_accuracy"]),
        "best_epoch": int(best["epoch"]) + 1,
        "weights_from_epoch": int(best["epoch"]) + 1 if config.restore_best_weights else len(history),
        "resumed_from_epoch": history.attrs.get("resumed_from_epoch", 0),
        "fit_seconds": round(seconds, 2),
        "train_images_per_second": round(n_train * epochs_this_run / seconds, 1) if epochs_this_run else None,
        "model_sha256": model_sha256,
        "environment": environment(),
    }
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
