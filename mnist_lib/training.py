"""Training: build the configured model, fit it (callbacks, resume, early stopping on validation), train an ensemble
of members, and write the run's summary."""

from __future__ import annotations

import json
import math
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path

import keras
import numpy as np
import pandas as pd

from mnist_lib import batchnorm, health, models, recipe, split
from mnist_lib.batches import input_pipeline, training_batches
from mnist_lib.calibration import calibrate
from mnist_lib.recipe import TrainConfig
from mnist_lib.records import Dataset
from mnist_lib.resume import ResumeState, resume_fingerprint, resume_path
from mnist_lib.runtime import environment, set_determinism, set_precision, strategy


class LogLearningRate(keras.callbacks.Callback):
    """Add the learning rate reached at each epoch's end to the epoch's logs (and so to history.csv)."""

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))


def compile_model(model: keras.Model, config: TrainConfig, steps_per_epoch: int) -> keras.Model:
    """Attach the optimizer with its learning-rate schedule, cross-entropy (with label smoothing) and accuracy.
    The accuracy metric and the optimizer's slots are made here, not in the first training step: a variable made
    while TensorFlow traces the step makes it trace the step a second time (seconds of a small data set's run)."""
    with strategy().scope():
        optimizer = recipe.OPTIMIZERS[config.optimizer](learning_rate=recipe.learning_rate(config, steps_per_epoch))
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
        model.compile(optimizer=optimizer, loss=loss, metrics=[keras.metrics.CategoricalAccuracy(name="accuracy")])
        optimizer.build(model.trainable_variables)
    return model


def build(config: TrainConfig, image_shape: tuple[int, int, int], num_classes: int, seed: int | None = None) -> keras.Model:
    """Seed (`config.seed` unless given) with op determinism, then build the configured model under the
    precision policy and the distribution strategy."""
    set_determinism(config.seed if seed is None else seed)
    set_precision(config.precision)
    with strategy().scope():
        return models.build_model(config.model, image_shape, num_classes, **config.model_options())


def history_path(out_dir: str | Path, member: int | None = None) -> Path:
    """The CSV `fit` logs epochs to: history.csv, or history.member<k>.csv for ensemble member k."""
    return Path(out_dir) / ("history.csv" if member is None else f"history.member{member}.csv")


def fit(
    model: keras.Model, train: Dataset, val: Dataset, config: TrainConfig, out_dir: str | Path,
    member: int | None = None, live_plot: bool = True, resume: bool = True, callbacks: list[keras.callbacks.Callback] = (),
) -> pd.DataFrame:
    """Compile and train (early stopping and best-weights restore on validation accuracy, never on test);
    resume from `resume_path(out_dir, member)` if a killed run left one; write the history CSV into `out_dir`
    (history.csv, or history.member<k>.csv for an ensemble member); return the whole history with an `epoch`
    column. Ensemble member k (`member`; None for a single model) orders and augments its batches with seed
    `config.seed + k` and keeps its final state until `train` has finished every member; `callbacks` come last.
    A small training split trains on smaller batches (`recipe.batch_size_for`), a large one for fewer epochs
    (`recipe.epochs_for`, up to `config.max_images_seen` images); batch-norm statistics are
    recomputed from training images before every validation (`batchnorm.Recompute`)."""
    out_dir = Path(out_dir)
    history_csv = history_path(out_dir, member)
    seed = config.seed + (member or 0)
    batch_size = recipe.batch_size_for(config.batch_size, len(train))
    if batch_size != config.batch_size:
        print(f"batch_size {config.batch_size} -> {batch_size}: {len(train)} training images, at least "
              f"{recipe.MIN_STEPS_PER_EPOCH} steps an epoch")
        config = replace(config, batch_size=batch_size)
    epochs = recipe.epochs_for(config.epochs, config.max_images_seen, len(train))
    if epochs != config.epochs:
        print(f"epochs {config.epochs} -> {epochs}: {len(train):,} training images, max_images_seen "
              f"{config.max_images_seen:,} (0 trains every epoch)")
        config = replace(config, epochs=epochs)
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
    if state and member is None:
        state.remove()
    history = pd.read_csv(history_csv)
    history.attrs.update(fit_seconds=seconds, resumed_from_epoch=epochs_done, epochs_this_run=len(history) - epochs_done,
                         batch_size=batch_size, epochs=config.epochs)
    return history


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
    members, histories, calibrations, batch_sizes, epochs, alerts, seconds, images_seen = [], [], [], [], [], [], 0.0, 0
    for member in range(config.ensemble_size):
        seed = config.seed + member
        member_train, member_val = member_data(train_data, val, member, config.seed)
        net = build(config, train_data.image_shape, train_data.num_classes, seed)
        history = fit(net, member_train, member_val, config, out_dir, None if single else member, live_plot, resume,
                      callbacks)
        seconds += history.attrs["fit_seconds"]
        batch_sizes.append(history.attrs["batch_size"])
        epochs.append(history.attrs["epochs"])
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
        epochs=epochs,
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
    epochs = history.attrs.get("epochs") or [config.epochs] * config.ensemble_size
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
            "epochs": epochs[int(member)],
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
