"""Training: seeds and determinism, the tf.data input pipeline, callbacks, resume after a kill, and `fit`."""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os
import time
import warnings
import zipfile
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf

from mnist_lib import batchnorm, health, models, params, split
from mnist_lib.records import Dataset
from mnist_lib.runtime import environment

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
SCHEDULES = ("constant", "exponential", "cosine", "one_cycle")
PRECISIONS = ("float32", "mixed")
ACTIVATIONS = ("relu", "softmax", "sigmoid", "tanh", "gelu", "elu", "selu", "swish", "linear")
MIN_STEPS_PER_EPOCH = 8  # a smaller dataset trains on smaller batches, so that an epoch still makes this many steps


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
    lr_schedule: str = "constant"
    lr_decay: float = 0.9
    warmup_fraction: float = 0.25
    label_smoothing: float = 0.0
    rotation: float = 0.0
    zoom: float = 0.0
    shift: float = 0.0
    ensemble_size: int = 1
    tta: bool = False
    hidden_activation: str = "relu"
    precision: str = "float32"
    temperature_scaling: bool = True

    def __post_init__(self) -> None:
        models.check_model_name(params.require_str("model", self.model))
        params.require_int("epochs", self.epochs, minimum=1, maximum=10_000)
        params.require_int("batch_size", self.batch_size, minimum=1, maximum=65_536)
        params.require_float("learning_rate", self.learning_rate, minimum=0.0, maximum=10.0, inclusive=False)
        params.require_choice("optimizer", self.optimizer, OPTIMIZERS)
        params.require_int("seed", self.seed, minimum=0, maximum=2**31 - 1)
        params.require_int("patience", self.patience, minimum=0)
        params.require_bool("restore_best_weights", self.restore_best_weights)
        params.require_choice("lr_schedule", self.lr_schedule, SCHEDULES)
        params.require_float("lr_decay", self.lr_decay, minimum=0.0, maximum=1.0)
        params.require_float("warmup_fraction", self.warmup_fraction, minimum=0.0, maximum=1.0, inclusive=False)
        params.require_float("label_smoothing", self.label_smoothing, minimum=0.0, maximum=0.5)
        params.require_float("rotation", self.rotation, minimum=0.0, maximum=180.0)
        params.require_float("zoom", self.zoom, minimum=0.0, maximum=1.0)
        params.require_float("shift", self.shift, minimum=0.0, maximum=1.0)
        params.require_int("ensemble_size", self.ensemble_size, minimum=1, maximum=100)
        params.require_bool("tta", self.tta)
        params.require_choice("hidden_activation", self.hidden_activation, ACTIVATIONS)
        params.require_choice("precision", self.precision, PRECISIONS)
        params.require_bool("temperature_scaling", self.temperature_scaling)

    @property
    def augments(self) -> bool:
        """Whether training images are randomly rotated, zoomed or shifted."""
        return bool(self.rotation or self.zoom or self.shift)

    def model_options(self) -> dict:
        """Builder options this configuration sets for its model (the mlp's hidden activation)."""
        return {"hidden_activation": self.hidden_activation} if self.model == "mlp" else {}


def batch_size_for(batch_size: int, train_images: int) -> int:
    """`batch_size`, lowered for fewer than MIN_STEPS_PER_EPOCH batches of training images so that every epoch
    still makes that many optimizer steps (300 images at batch 128 would make 3 steps an epoch, 54 in 18 epochs)."""
    return max(1, min(batch_size, math.ceil(train_images / MIN_STEPS_PER_EPOCH)))


def set_determinism(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow and make TF ops deterministic (call before building the model)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def input_pipeline(data: Dataset, batch_size: int) -> tf.data.Dataset:
    """Batches of (float32 pixels in 0..255, one-hot labels) from uint8 arrays, in order; the model scales."""
    pipeline = tf.data.Dataset.from_tensor_slices((data.images, data.labels)).batch(batch_size)
    pipeline = pipeline.map(
        lambda images, labels: (tf.cast(images, tf.float32), tf.one_hot(labels, data.num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return pipeline.prefetch(tf.data.AUTOTUNE)


def random_affine(images: tf.Tensor, seed: tf.Tensor, rotation: float, zoom: float, shift: float) -> tf.Tensor:
    """Rotate each image by up to +-`rotation` degrees, scale it by 1 +- `zoom` and move it by up to +-`shift`
    of its size, about its centre, in one bilinear resampling; the draws depend on the stateless `seed` only."""
    count, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    draws = tf.random.stateless_uniform([count, 4], seed=seed, minval=-1.0, maxval=1.0)
    angle = draws[:, 0] * (rotation * math.pi / 180.0)
    scale = 1.0 + draws[:, 1] * zoom
    move_x, move_y = draws[:, 2] * (shift * width), draws[:, 3] * (shift * height)
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    # Each output pixel (x, y) samples the input at (cos*x - sin*y + a, sin*x + cos*y + b).
    a = centre_x - cos * (centre_x + move_x) + sin * (centre_y + move_y)
    b = centre_y - sin * (centre_x + move_x) - cos * (centre_y + move_y)
    zeros = tf.zeros_like(angle)
    transforms = tf.stack([cos, -sin, a, sin, cos, b, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[height, width], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST",
    )


def augmentation_examples(data: Dataset, config: TrainConfig, count: int = 6, copies: int = 5) -> np.ndarray:
    """The first `count` training images, each followed by `copies` augmented versions as training draws them:
    uint8, shape (count, copies + 1, height, width, channels)."""
    images = tf.cast(tf.constant(data.images[:count]), tf.float32)
    versions = [images] + [
        random_affine(images, tf.constant([config.seed, copy], tf.int64), config.rotation, config.zoom, config.shift)
        for copy in range(copies)
    ]
    return np.clip(np.round(np.stack([v.numpy() for v in versions], axis=1)), 0, 255).astype(np.uint8)


def training_batches(data: Dataset, config: TrainConfig, first_epoch: int, seed: int | None = None) -> tf.data.Dataset:
    """Shuffled (and, if configured, augmented) batches of epochs `first_epoch`..`config.epochs - 1`, one after
    another. Epoch e's order and augmentation depend on (seed, e) only, so a run resumed at epoch e sees the
    batches an uninterrupted run would have seen. Images stay uint8 until their batch is drawn."""
    seed = config.seed if seed is None else seed
    images, labels = tf.constant(data.images), tf.constant(data.labels)
    count, batch_size = len(data), config.batch_size

    def epoch_order(epoch: tf.Tensor) -> tf.data.Dataset:
        seeds = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=seeds)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()
        return batches.map(lambda step, index: (tf.stack([seeds[0], epoch * 2**20 + step]), index))

    def draw(batch_seed: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch = tf.cast(tf.gather(images, index), tf.float32)
        if config.augments:
            batch = random_affine(batch, batch_seed, config.rotation, config.zoom, config.shift)
        return batch, tf.one_hot(tf.gather(labels, index), data.num_classes)

    pipeline = tf.data.Dataset.range(first_epoch, config.epochs).flat_map(epoch_order)
    return pipeline.map(draw, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def learning_rate(config: TrainConfig, steps_per_epoch: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The learning rate per step: constant; exponential (times `lr_decay` each epoch); cosine (from the rate
    down to 0 over the run); one-cycle (a linear rise from rate/25 over `warmup_fraction` of the steps, then
    cosine down to 0)."""
    total = steps_per_epoch * config.epochs
    schedules = keras.optimizers.schedules
    if config.lr_schedule == "exponential":
        return schedules.ExponentialDecay(config.learning_rate, steps_per_epoch, config.lr_decay)
    if config.lr_schedule == "cosine":
        return schedules.CosineDecay(config.learning_rate, total)
    if config.lr_schedule == "one_cycle":
        warmup = max(1, round(total * config.warmup_fraction))
        return schedules.CosineDecay(config.learning_rate / 25, max(1, total - warmup),
                                     warmup_target=config.learning_rate, warmup_steps=warmup)
    return config.learning_rate


class LogLearningRate(keras.callbacks.Callback):
    """Add the learning rate reached at each epoch's end to the epoch's logs (and so to history.csv)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> keras.Model:
    """Attach the optimizer with its learning-rate schedule, cross-entropy (with label smoothing) and accuracy."""
    with strategy().scope():
        optimizer = OPTIMIZERS[config.optimizer](learning_rate=learning_rate(config, steps_per_epoch))
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def set_precision(precision: str) -> str:
    """Set Keras's global dtype policy: float32, or for "mixed" float16 compute on a GPU, bfloat16 on a CPU.
    Returns the policy's name."""
    policy = "float32"
    if precision == "mixed":
        policy = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    keras.mixed_precision.set_global_policy(policy)
    return policy


@functools.cache
def strategy() -> tf.distribute.Strategy:
    """Data-parallel training over every visible GPU (`MirroredStrategy`); the default strategy on a CPU."""
    return tf.distribute.MirroredStrategy() if tf.config.list_logical_devices("GPU") else tf.distribute.get_strategy()


def build(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int, seed: int | None = None) -> keras.Model:
    """Seed (`config.seed` unless given) with op determinism, then build the configured model under the
    precision policy and the distribution strategy."""
    set_determinism(config.seed if seed is None else seed)
    set_precision(config.precision)
    with strategy().scope():
        return models.build_model(config.model, image_shape, num_classes, **config.model_options())


def resume_path(out_dir: str | Path, member: int | None = None) -> Path:
    """Where `fit` keeps the state it resumes from: beside `out_dir`, not in it (DVC empties a stage's outputs
    first); one file per ensemble member."""
    out_dir = Path(out_dir).resolve()
    return out_dir.with_name(out_dir.name + ("" if member is None else f".member{member}") + ".resume.npz")


def history_path(out_dir: str | Path, member: int | None = None) -> Path:
    """The CSV `fit` logs epochs to: history.csv, or history.member<k>.csv for ensemble member k."""
    return Path(out_dir) / ("history.csv" if member is None else f"history.member{member}.csv")


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


def fit(
    model: keras.Model, train: Dataset, val: Dataset, config: TrainConfig, out_dir: str | Path,
    live_plot: bool = True, resume: bool = True, member: int | None = None, seed: int | None = None,
    keep_state: bool = False, callbacks: list[keras.callbacks.Callback] = (),
) -> pd.DataFrame:
    """Compile and train (early stopping and best-weights restore on validation accuracy, never on test);
    resume from `resume_path(out_dir, member)` if a killed run left one; write the history CSV into `out_dir`
    (history.csv, or history.member<k>.csv for an ensemble member); return the whole history with an `epoch`
    column. `seed` (default `config.seed`) orders and augments the batches; `keep_state` keeps the final state
    (an ensemble keeps finished members until all are done); `callbacks` are added last. A small training split
    trains on smaller batches (`batch_size_for`); batch-norm statistics are recomputed from training images before
    every validation (`batchnorm.Recompute`)."""
    out_dir = Path(out_dir)
    history_csv = history_path(out_dir, member)
    seed = config.seed if seed is None else seed
    batch_size = batch_size_for(config.batch_size, len(train))
    if batch_size != config.batch_size:
        print(f"batch_size {config.batch_size} -> {batch_size}: {len(train)} training images, at least "
              f"{MIN_STEPS_PER_EPOCH} steps an epoch")
        config = replace(config, batch_size=batch_size)
    steps_per_epoch = math.ceil(len(train) / config.batch_size)
    compile_model(model, config, steps_per_epoch)
    early_stopping = None
    if config.patience or config.restore_best_weights:
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_accuracy", mode="max", patience=config.patience or config.epochs,
            restore_best_weights=config.restore_best_weights,
        )
    state = None
    if resume:
        fingerprint = resume_fingerprint(model, train, val, config, seed)
        state = ResumeState(resume_path(out_dir, member), fingerprint, history_csv, early_stopping)
    epochs_done = state.restore(model) if state else 0
    # Order matters: the learning rate joins the logs, CSVLogger writes the epoch's row, EarlyStopping updates,
    # then the state saves all of them.
    logged: list[keras.callbacks.Callback] = [
        batchnorm.RecomputeBeforeValidation(batchnorm.Recompute(model, train.images, config.batch_size)),
        LogLearningRate(), keras.callbacks.CSVLogger(str(history_csv), append=epochs_done > 0),
    ]
    logged += [early_stopping] if early_stopping else []
    logged += [state] if state else []
    if live_plot:
        from livelossplot import PlotLossesKeras

        logged.append(PlotLossesKeras())
    # One pass over all remaining epochs (at least one epoch of data, even when a finished run has none left).
    batches = training_batches(train, config, min(epochs_done, config.epochs - 1), seed)
    started = time.perf_counter()
    model.fit(
        batches,
        steps_per_epoch=steps_per_epoch,
        validation_data=input_pipeline(val, 1024),
        epochs=config.epochs,
        initial_epoch=config.epochs if state and state.stopped else epochs_done,
        callbacks=logged + list(callbacks),
        shuffle=False,  # the batches come shuffled (training_batches)
        verbose=2,  # one line per epoch: no progress-bar control characters in executed notebooks
    )
    seconds = time.perf_counter() - started
    if state and not keep_state:
        state.remove()
    history = pd.read_csv(history_csv)
    history.attrs.update(fit_seconds=seconds, resumed_from_epoch=epochs_done, epochs_this_run=len(history) - epochs_done,
                         batch_size=batch_size)
    return history


def _nll(logits: np.ndarray, labels: np.ndarray, beta: float) -> float:
    """Mean negative log-likelihood of softmax(beta * logits) for the true labels."""
    scaled = beta * logits
    top = scaled.max(axis=1)
    log_norm = top + np.log(np.exp(scaled - top[:, None]).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))


def calibrate(model: keras.Model, val: Dataset) -> dict:
    """Temperature scaling (Guo et al., 2017): find the temperature T minimising the validation negative
    log-likelihood of softmax(logits / T), then fold 1/T into the output layer's kernel and bias, so the model
    outputs calibrated probabilities and still predicts the same classes (label smoothing, for one, leaves a
    network underconfident). Returns T and the validation NLL before and after."""
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense) or head.activation is not keras.activations.softmax:
        raise ValueError(f"calibrate: {model.name}'s last layer must be a softmax Dense, not {type(head).__name__}")
    features = keras.Model(model.inputs, head.input).predict(val.images, batch_size=1024, verbose=0)
    kernel, bias = (np.asarray(weight, np.float64) for weight in head.get_weights())
    logits, labels = np.asarray(features, np.float64) @ kernel + bias, np.asarray(val.labels)
    # The NLL is convex in beta = 1/T: golden-section search over log(beta) in [log 0.01, log 100].
    low, high, ratio = math.log(0.01), math.log(100.0), (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if _nll(logits, labels, math.exp(a)) <= _nll(logits, labels, math.exp(b)):
            high = b
        else:
            low = a
    beta = math.exp((low + high) / 2)
    head.set_weights([(kernel * beta).astype(np.float32), (bias * beta).astype(np.float32)])
    return {"temperature": round(1 / beta, 4), "val_nll_before": round(_nll(logits, labels, 1.0), 5),
            "val_nll_after": round(_nll(logits, labels, beta), 5)}


def member_data(train: Dataset, val: Dataset, member: int, seed: int) -> tuple[Dataset, Dataset]:
    """Ensemble member `member`'s (train, val): member 0 keeps the split stage's; member k > 0 draws a new
    stratified validation split of the same size from train + val with seed `seed + k`."""
    if member == 0:
        return train, val
    pooled = Dataset(np.concatenate([train.images, val.images]), np.concatenate([train.labels, val.labels]), train.class_names)
    train_indices, val_indices = split.stratified_split(pooled.labels, len(val) / len(pooled), seed + member)
    return split.subset(pooled, train_indices), split.subset(pooled, val_indices)


def train(
    train_data: Dataset, val: Dataset, config: TrainConfig, out_dir: str | Path, live_plot: bool = True,
    resume: bool = True, callbacks: list[keras.callbacks.Callback] = (),
) -> tuple[keras.Model, pd.DataFrame]:
    """Train `config.ensemble_size` members (member k: seed + k, its own validation split, see `member_data`),
    each resumable after a kill; return the model to save (the member itself, or the average of the members'
    softmax outputs, over shifted copies of the input when `config.tta`) and the history of every member (a
    `member` column; history.csv in `out_dir` holds it). A member whose validation accuracy stays near chance or
    far below its training accuracy gets a warning (`health.check`), kept in the history's attrs for the summary."""
    out_dir = Path(out_dir)
    single = config.ensemble_size == 1
    members, histories, calibrations, batch_sizes, alerts, seconds, images_seen = [], [], [], [], [], 0.0, 0
    for member in range(config.ensemble_size):
        seed = config.seed + member
        member_train, member_val = member_data(train_data, val, member, config.seed)
        net = build(config, train_data.image_shape, train_data.num_classes, seed)
        history = fit(net, member_train, member_val, config, out_dir, live_plot, resume, None if single else member,
                      seed, keep_state=not single, callbacks=callbacks)
        seconds += history.attrs["fit_seconds"]
        batch_sizes.append(history.attrs["batch_size"])
        for message in health.check(history, train_data.num_classes):
            alerts.append(message if single else f"member {member}: {message}")
            warnings.warn(alerts[-1], stacklevel=2)
        calibrations.append(calibrate(net, member_val) if config.temperature_scaling else None)
        images_seen += len(member_train) * history.attrs["epochs_this_run"]
        members.append(net)
        histories.append(history if single else history.assign(member=member))
    history = pd.concat(histories, ignore_index=True)
    if not single:
        for member in range(config.ensemble_size):
            resume_path(out_dir, member).unlink(missing_ok=True)
            history_path(out_dir, member).unlink(missing_ok=True)
        history.to_csv(out_dir / "history.csv", index=False)
    history.attrs.update(
        fit_seconds=seconds,
        resumed_from_epoch=sum(h.attrs["resumed_from_epoch"] for h in histories),
        epochs_this_run=sum(h.attrs["epochs_this_run"] for h in histories),
        images_seen=images_seen,
        calibrations=calibrations,
        batch_sizes=batch_sizes,
        warnings=alerts,
    )
    with strategy().scope():
        model = models.combine(members, train_data.image_shape, config.tta)
    return model, history


def write_summary(
    out_dir: str | Path, model: keras.Model, config: TrainConfig, history: pd.DataFrame, model_sha256: str | None = None,
) -> dict:
    """Write train summary.json: config, parameter count, validation figures (the mean over ensemble members,
    and each member's own in `members`), speed, resume, the model file's SHA-256, environment."""
    seconds = history.attrs.get("fit_seconds", float("nan"))
    images_seen = history.attrs.get("images_seen")
    members = []
    calibrations = history.attrs.get("calibrations") or [None] * config.ensemble_size
    batch_sizes = history.attrs.get("batch_sizes") or [config.batch_size] * config.ensemble_size
    for member, rows in history.groupby("member") if "member" in history else [(0, history)]:
        best = rows.loc[rows["val_accuracy"].idxmax()]
        members.append({
            "member": int(member),
            "seed": config.seed + int(member),
            "epochs_run": len(rows),
            "final_val_accuracy": float(rows["val_accuracy"].iloc[-1]),
            "best_val_accuracy": float(best["val_accuracy"]),
            "best_epoch": int(best["epoch"]) + 1,
            "weights_from_epoch": int(best["epoch"]) + 1 if config.restore_best_weights else len(rows),
            "calibration": calibrations[int(member)],
            "batch_size": batch_sizes[int(member)],
        })
    summary = {
        "config": asdict(config),
        "parameters": model.count_params(),
        "epochs_run": sum(member["epochs_run"] for member in members),
        "final_val_accuracy": float(np.mean([member["final_val_accuracy"] for member in members])),
        "best_val_accuracy": float(np.mean([member["best_val_accuracy"] for member in members])),
        "members": members,
        "resumed_from_epoch": history.attrs.get("resumed_from_epoch", 0),
        "fit_seconds": round(seconds, 2),
        "train_images_per_second": round(images_seen / seconds, 1) if images_seen else None,
        "warnings": history.attrs.get("warnings", []),
        "model_sha256": model_sha256,
        "environment": environment(),
    }
    (Path(out_dir) / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
