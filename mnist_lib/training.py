"""Training: seeds and determinism, the tf.data input pipeline, callbacks, and `fit`."""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from mnist_lib import params
from mnist_lib.datasets import Dataset
from mnist_lib.models import check_model_name

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
        "cpu_count": os.cpu_count(),
        "devices": [device.name for device in tf.config.list_logical_devices()],
    }


def input_pipeline(data: Dataset, batch_size: int, shuffle: bool = False, seed: int = 0) -> tf.data.Dataset:
    """Batches of (float32 pixels in 0..255, labels) from uint8 arrays; scaling happens inside the model."""
    pipeline = tf.data.Dataset.from_tensor_slices((data.images, data.labels))
    if shuffle:
        pipeline = pipeline.shuffle(len(data), seed=seed, reshuffle_each_iteration=True)
    pipeline = pipeline.batch(batch_size).map(
        lambda images, labels: (tf.cast(images, tf.float32), labels), num_parallel_calls=tf.data.AUTOTUNE
    )
    return pipeline.prefetch(tf.data.AUTOTUNE)


def compile_model(model: keras.Model, config: TrainConfig) -> keras.Model:
    """Attach optimizer, sparse cross-entropy loss and accuracy."""
    optimizer = OPTIMIZERS[config.optimizer](learning_rate=config.learning_rate)
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def fit(
    model: keras.Model, train: Dataset, val: Dataset, config: TrainConfig, out_dir: str | Path, live_plot: bool = True
) -> pd.DataFrame:
    """Compile and train (early stopping and best-weights restore on validation accuracy, never on test);
    write history.csv into `out_dir`; return the history with an `epoch` column."""
    out_dir = Path(out_dir)
    compile_model(model, config)
    callbacks: list[keras.callbacks.Callback] = [keras.callbacks.CSVLogger(str(out_dir / "history.csv"))]
    if config.patience or config.restore_best_weights:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=config.patience or config.epochs,
            restore_best_weights=config.restore_best_weights,
        ))
    if live_plot:
        from livelossplot import PlotLossesKeras

        callbacks.append(PlotLossesKeras())
    started = time.perf_counter()
    model.fit(
        input_pipeline(train, config.batch_size, shuffle=True, seed=config.seed),
        validation_data=input_pipeline(val, 1024),
        epochs=config.epochs,
        callbacks=callbacks,
        verbose=2,  # one line per epoch: no progress-bar control characters in executed notebooks
    )
    seconds = time.perf_counter() - started
    history = pd.read_csv(out_dir / "history.csv")
    history.attrs["fit_seconds"] = seconds
    return history


def write_summary(out_dir: str | Path, model: keras.Model, config: TrainConfig, history: pd.DataFrame, n_train: int) -> dict:
    """Write train summary.json: config, parameter count, final and best validation figures, speed, environment."""
    seconds = history.attrs.get("fit_seconds", float("nan"))
    best = history.loc[history["val_accuracy"].idxmax()]
    summary = {
        "config": asdict(config),
        "parameters": model.count_params(),
        "epochs_run": len(history),
        "final_val_accuracy": float(history["val_accuracy"].iloc[-1]),
        "best_val_accuracy": float(best["val_accuracy"]),
        "best_epoch": int(best["epoch"]) + 1,
        "weights_from_epoch": int(best["epoch"]) + 1 if config.restore_best_weights else len(history),
        "fit_seconds": round(seconds, 2),
        "train_images_per_second": round(n_train * len(history) / seconds, 1),
        "environment": environment(),
    }
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
