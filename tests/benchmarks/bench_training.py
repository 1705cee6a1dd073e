"""Training speed on this CPU: images/s, FLOP per image and share of the machine's peak of every registry model in
float32 and mixed precision; the levers tried on the default recipe's step (input pipeline, batch size, bfloat16,
steps_per_execution, XLA, threads); the reference notebook's recipe as plain Keras (its own float64 arrays and
model.fit) against the same model through mnist_lib; and the time the default recipe and the reference recipe need
to reach 99.0% and 99.5% test accuracy.

    python tests/benchmarks/bench_training.py [--images 12800] [--skip-time-to-accuracy] [--skip-levers]

The time-to-accuracy runs evaluate the test split every quarter epoch with the clock stopped. That evaluation is
this benchmark's only use of the test split: it selects nothing, and the runs' other settings are the recipes'.
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import benchlib  # noqa: E402
import flops  # noqa: E402
from mnist_lib import models, recipe, runtime, split, training  # noqa: E402
from mnist_lib.records import Dataset  # noqa: E402

THRESHOLDS = (0.990, 0.995)
TIME_TARGET = 0.5  # the fast profile must reach 99.0% in at most this share of the reference recipe's time
TIME_AIM = 0.1  # and aims at this share
# a model's or a lever's speed: a warm-up epoch, then the fastest of the rest (one epoch's figure moved by 30%
# between runs)
STEP_EPOCHS = 4


class EpochClock(keras.callbacks.Callback):
    """Wall seconds of each epoch."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._started = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._started)


class TestAccuracyClock(keras.callbacks.Callback):
    """Every `every` training steps, stop the clock, measure test accuracy, note (training seconds, accuracy), and
    restart the clock; with `stop`, end training once every threshold is reached. Training seconds count from
    `started`; `total` is the whole run's, without the evaluations."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, every: int, started: float, stop: bool = True):
        super().__init__()
        self.images, self.labels, self.every, self.stop = images.astype(np.float32), labels, every, stop
        self.started, self.paused, self.steps, self.total = started, 0.0, 0, None
        self.points: list[tuple[float, float]] = []

    def on_train_end(self, logs=None):
        self.total = time.perf_counter() - self.started - self.paused

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if self.steps % self.every:
            return
        now = time.perf_counter()
        accuracy = float((self.model.predict(self.images, batch_size=2000, verbose=0).argmax(axis=1) == self.labels).mean())
        self.points.append((now - self.started - self.paused, accuracy))
        self.paused += time.perf_counter() - now
        if self.stop and accuracy >= max(THRESHOLDS):
            self.model.stop_training = True

    def time_to(self, threshold: float) -> float | None:
        """Training seconds until test accuracy first reached `threshold` (None: never)."""
        return next((seconds for seconds, accuracy in self.points if accuracy >= threshold), None)


def read_raw(path: Path) -> bytes:
    """The bytes of an IDX file, plain or gzip-compressed (`path` or `path`.gz)."""
    return path.read_bytes() if path.is_file() else gzip.decompress(path.with_name(path.name + ".gz").read_bytes())


def read_idx_float64(raw_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """The reference notebook's loading: the training IDX files into a float64 array scaled to [0, 1]."""
    images = np.frombuffer(read_raw(raw_dir / "train-images-idx3-ubyte"), np.uint8, offset=16)
    labels = np.frombuffer(read_raw(raw_dir / "train-labels-idx1-ubyte"), np.uint8, offset=8)
    images = images.reshape(len(labels), 28, 28, 1)
    return images / 255.0, labels.astype(np.int64)


def reference_model() -> keras.Model:
    """The reference notebook's CNN as it built it: Sequential, float inputs already in [0, 1]."""
    from keras import layers

    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"), layers.Flatten(),
        layers.Dense(64, activation="relu"), layers.Dense(10, activation="softmax"),
    ])


def reference_fit(images: np.ndarray, labels: np.ndarray, epochs: int, callbacks: list) -> keras.Model:
    """The reference recipe: Adam 1e-3, sparse cross-entropy, batch 64, shuffled float64 arrays."""
    keras.utils.set_random_seed(1)
    model = reference_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(images, labels, batch_size=64, epochs=epochs, callbacks=callbacks, verbose=0)
    return model


def images_per_second(part, val, name: str, precision: str = "float32") -> float:
    """Training images/s of the fastest of epochs 2 to STEP_EPOCHS of `name` over `part` (the first warms up),
    batch 128, Adam, no augmentation, through training.train."""
    config = recipe.TrainConfig(model=name, epochs=STEP_EPOCHS, batch_size=128, learning_rate=0.001, optimizer="adam", seed=1,
                                lr_schedule="constant", label_smoothing=0.0, rotation=0.0, zoom=0.0, shift=0.0,
                                precision=precision, tta=False)
    clock = EpochClock()
    with tempfile.TemporaryDirectory() as out:
        training.train(part, split.subset(val, np.arange(min(1000, len(val)))), config, out, live_plot=False, resume=False,
                       callbacks=[clock])
    runtime.set_precision("float32")
    return len(part) / min(clock.seconds[1:])


def efficiency_rows(train, val, images: int, names: list[str], machine: dict, ceiling: dict[str, float]) -> list[list]:
    """Per model: FLOP per training image (counted from the model), then images/s, achieved GFLOP/s and its share of
    the machine's computed peak and of the measured matrix-product `ceiling`, in float32 and in mixed precision
    (bfloat16 compute on a CPU)."""
    part = split.subset(train, np.arange(min(images, len(train))))
    rows = []
    for name in names:
        flop = flops.training_flops(models.build_model(name, train.image_shape, train.num_classes))
        row = [name, f"{flop / 1e6:,.1f}"]
        for precision, peak_name in (("float32", "float32"), ("mixed", "bfloat16")):
            speed = images_per_second(part, val, name, precision)
            achieved = speed * flop / 1e9
            peak = machine["gflops"][peak_name] or machine["gflops"]["float32"]
            row += [f"{speed:,.0f}", f"{achieved:,.1f}", f"{100 * achieved / peak:.1f}%",
                    f"{100 * achieved / ceiling[peak_name]:.1f}%"]
            print(f"{name} {precision}: {speed:,.0f} images/s, {achieved:,.1f} GFLOP/s", flush=True)
        rows.append(row)
    return rows


def step_images_per_second(part, config: recipe.TrainConfig, steps_per_execution: int = 1, jit_compile: bool = False,
                           cached: bool = False) -> float:
    """Images/s of the fastest of epochs 2 to STEP_EPOCHS of plain `model.fit` steps (the first warms up; no
    validation, no batch-norm recompute) on the recipe's batches (`batches.training_batches`; `cached`: one batch
    repeated, so no input pipeline work)."""
    from mnist_lib.batches import training_batches

    model = training.build(config, part.image_shape, part.num_classes)
    if jit_compile:  # Keras silently drops jit_compile while TensorFlow's op determinism (training.build's) is on;
        # only TensorFlow's internal config module can turn it off again (the next training.build turns it back on)
        from tensorflow.python.framework import config as tf_config

        tf_config.disable_op_determinism()
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing),
                  steps_per_execution=steps_per_execution, jit_compile=jit_compile)
    steps = math.ceil(len(part) / config.batch_size)  # one epoch of data per Keras epoch
    batches = training_batches(part, config, 0)
    if cached:
        batches = batches.take(1).cache().repeat()
    clock = EpochClock()
    model.fit(batches, steps_per_epoch=steps, epochs=STEP_EPOCHS, callbacks=[clock], verbose=0)
    runtime.set_precision("float32")
    return (steps * min(config.batch_size, len(part)) if cached else len(part)) / min(clock.seconds[1:])


def step_in_child(part, config: recipe.TrainConfig, threads: int, **options) -> dict:
    """`step_images_per_second` in a fresh process capped at `threads` CPU threads (`runtime.thread_variables`, as
    `mnist sweep --jobs` sets them): TensorFlow reads its thread counts once, when it starts, so a process cannot
    change its own. Returns the child's images/s and the thread variables it ran with."""
    with tempfile.TemporaryDirectory() as folder:
        np.savez(Path(folder, "part.npz"), images=part.images, labels=part.labels)
        Path(folder, "job.json").write_text(json.dumps({"config": config.__dict__, "options": options,
                                                        "class_names": list(part.class_names)}))
        child = subprocess.run([sys.executable, __file__, "--step-child", folder], capture_output=True, text=True,
                               env={**os.environ, **runtime.thread_variables(threads)})
        if child.returncode:
            raise RuntimeError(f"the {threads}-thread step process failed: {child.stderr.strip()[-2000:]}")
        return json.loads(Path(folder, "result.json").read_text())


def step_child(folder: Path) -> None:
    """The child of `step_in_child`: time the step on the job in `folder`, write result.json there."""
    job, arrays = json.loads((folder / "job.json").read_text()), np.load(folder / "part.npz")
    part = Dataset(arrays["images"], arrays["labels"], tuple(job["class_names"]))
    speed = step_images_per_second(part, recipe.TrainConfig(**job["config"]), **job["options"])
    (folder / "result.json").write_text(json.dumps({
        "images_per_second": speed, "thread_variables": {name: os.environ.get(name) for name in runtime.THREAD_VARIABLES}}))


CORES = os.cpu_count() or 1
# The default recipe's training step (cnn_strong, batch 128, augmentation, float32) and the levers tried on it:
# (label, changes to the recipe, step options; "threads": the step in a fresh process with that many threads).
LEVERS = (
    ("the default recipe's step (float32, batch 128, augmentation)", {}, {}),
    ("no augmentation (input pipeline lighter)", {"rotation": 0.0, "zoom": 0.0, "shift": 0.0}, {}),
    ("one cached batch (no input pipeline at all)", {}, {"cached": True}),
    ("batch 256", {"batch_size": 256}, {}),
    ("batch 512", {"batch_size": 512}, {}),
    ("mixed precision (bfloat16 compute)", {"precision": "mixed"}, {}),
    ("mixed precision, batch 256", {"precision": "mixed", "batch_size": 256}, {}),
    ("steps_per_execution 16", {}, {"steps_per_execution": 16}),
    ("XLA (jit_compile; op determinism off: Keras refuses XLA under it)", {}, {"jit_compile": True}),
    ("1 thread (TF_NUM_INTRAOP_THREADS=1, OMP_NUM_THREADS=1; a fresh process)", {}, {"threads": 1}),
    (f"{CORES} threads set explicitly (intra-op {CORES}, inter-op {min(CORES, 2)}; a fresh process)", {}, {"threads": CORES}),
)


def lever_rows(train, images: int, levers: tuple = LEVERS) -> list[list]:
    """Images/s of the default recipe's training step and of each lever (`levers`, the first the default step's),
    and the ratio to the first."""
    part = split.subset(train, np.arange(min(images, len(train))))
    default = benchlib.train_config([], seed=1, tta=False)
    rows, base = [], None
    for label, changes, options in levers:
        config = recipe.TrainConfig(**{**default.__dict__, **changes})
        try:
            speed = step_in_child(part, config, **options)["images_per_second"] if "threads" in options else \
                step_images_per_second(part, config, **options)
        except Exception as error:  # a lever this machine cannot run (XLA on some CPUs) is reported, not fatal
            rows.append([label, f"failed: {type(error).__name__}", ""])
            print(f"{label}: failed ({error})", flush=True)
            continue
        base = base or speed
        rows.append([label, f"{speed:,.0f}", f"{speed / base:.2f}x"])
        print(f"{label}: {speed:,.0f} images/s ({speed / base:.2f}x)", flush=True)
    return rows


def recipe_speed(train, val, raw_dir: Path) -> tuple[list, float]:
    """One epoch of the reference recipe as plain Keras (float64 arrays) and through mnist_lib (uint8, tf.data):
    rows and the speed-up."""
    started = time.perf_counter()
    images, labels = read_idx_float64(raw_dir)
    images, labels = images[: len(train)], labels[: len(train)]
    load_plain = time.perf_counter() - started
    plain = EpochClock()
    reference_fit(images, labels, 1, [plain])
    config = benchlib.train_config(["params/profiles/reference_cnn_small.yaml"], epochs=1, seed=1)
    ours = EpochClock()
    with tempfile.TemporaryDirectory() as out:
        training.train(train, val, config, out, live_plot=False, resume=False, callbacks=[ours])
    speedup = plain.seconds[0] / ours.seconds[0]
    rows = [
        ["reference recipe, plain Keras (float64 arrays)", f"{len(images) / plain.seconds[0]:,.0f}", f"{plain.seconds[0]:.1f}",
         f"{images.nbytes / 2**20:,.0f} MiB float64 ({load_plain:.1f} s to load)"],
        ["reference recipe through mnist_lib (uint8 + tf.data)", f"{len(train) / ours.seconds[0]:,.0f}", f"{ours.seconds[0]:.1f}",
         f"{train.images.nbytes / 2**20:,.0f} MiB uint8"],
    ]
    return rows, speedup


# our recipes timed against the reference recipe: (column, parameter files over params/train.yaml)
RECIPES = (("fast profile (params/profiles/fast.yaml)", ["params/profiles/fast.yaml"]),
           ("default recipe (params/train.yaml)", []))


def recipe_clock(train, val, test, files: list[str], every_images: int) -> tuple[recipe.TrainConfig, TestAccuracyClock]:
    """Train params/train.yaml with `files` over it (the whole schedule), test evaluated every `every_images`."""
    config = benchlib.train_config(files)
    started = time.perf_counter()
    clock = TestAccuracyClock(test.images, test.labels, max(1, round(every_images / config.batch_size)), started, stop=False)
    with tempfile.TemporaryDirectory() as out:
        training.train(train, val, config, out, live_plot=False, resume=False, callbacks=[clock])
    runtime.set_precision("float32")
    return config, clock


def fast_targets(fast: float | None, ref: float | None, measured: str) -> list[dict]:
    """The fast profile's time-to-99.0% targets, from its seconds and the reference recipe's (None: not reached):
    at most TIME_TARGET of the reference recipe's time, and the TIME_AIM aimed at."""
    return [{"target": f"time to 99.0% test: fast profile <= {share}x the reference recipe{aim}", "measured": measured,
             "met": bool(ref and fast and fast / ref <= share)}
            for share, aim in ((TIME_TARGET, ""), (TIME_AIM, " (the aim)"))]


def time_to_accuracy(train, val, test, raw_dir: Path, every_images: int = 13_500) -> tuple[list, list]:
    """Training seconds to 99.0% and 99.5% test accuracy, test evaluated every `every_images` training images (a
    quarter epoch): the fast profile and the default recipe vs the reference recipe, one after the other."""
    started = time.perf_counter()
    images, labels = read_idx_float64(raw_dir)
    images, labels = images[: len(train)], labels[: len(train)]
    reference = TestAccuracyClock(test.images, test.labels, max(1, round(every_images / 64)), started)
    reference_fit(images, labels, 10, [reference])
    ours = [recipe_clock(train, val, test, files, every_images) for _, files in RECIPES]
    rows, targets = [], []
    for threshold in THRESHOLDS:
        ref = reference.time_to(threshold)
        times = [clock.time_to(threshold) for _, clock in ours]
        ratios = [f"{t / ref:.2f}" if ref and t else "-" for t in times]
        rows.append([f"{threshold:.1%}", *("not reached" if t is None else f"{t:.0f}" for t in times),
                     "not reached in 10 epochs" if ref is None else f"{ref:.0f}", *ratios])
        if threshold == 0.990:
            fast, (last_seconds, last_accuracy) = times[0], ours[0][1].points[-1]
            if fast:
                measured = f"{ratios[0]}x ({fast:.0f} s"
            else:
                measured = f"not reached (fast profile: {last_accuracy:.2%} after {last_seconds:.0f} s"
            measured += "; reference not reached)" if ref is None else f" vs {ref:.0f} s; the default recipe {ratios[1]}x)"
            targets += fast_targets(fast, ref, measured)
    rows.append(["last evaluation (accuracy)", *(f"{clock.points[-1][1]:.2%}" for _, clock in ours),
                 f"{reference.points[-1][1]:.2%}", "", ""])
    rows.append(["whole run (s, evaluations excluded)", *(f"{clock.total:.0f}" for _, clock in ours),
                 f"{reference.total:.0f}", "", ""])
    config, default = ours[1]
    targets.append({"target": "default recipe trains in <= 600 s on this CPU", "measured": f"{default.total:.0f} s "
                    f"(seed {config.seed}, {config.epochs} epochs, data loading included)", "met": default.total <= 600})
    return rows, targets


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=12_800, help="training images per throughput run")
    parser.add_argument("--split-dir", type=Path, default=Path("outputs/split"))
    parser.add_argument("--out-dir", type=Path, help="where the section's JSON goes (default: outputs/bench)")
    parser.add_argument("--raw-dir", type=Path, default=Path("outputs/data/raw"))
    parser.add_argument("--models", nargs="+", default=sorted(models.MODELS), help="registry names (default: all)")
    parser.add_argument("--every-images", type=int, default=13_500, help="test evaluated after this many images")
    parser.add_argument("--skip-time-to-accuracy", action="store_true", help="only the throughput tables (minutes)")
    parser.add_argument("--skip-levers", action="store_true", help="no table of the default step's speed levers")
    parser.add_argument("--step-child", type=Path, help=argparse.SUPPRESS)  # step_in_child's own process
    args = parser.parse_args(argv)
    if args.step_child:
        step_child(args.step_child)
        return 0
    train, val, test = (split.load_split(args.split_dir, name) for name in ("train", "val", "test"))
    command = benchlib.command_line(__file__, argv)  # each section is written with the command that measured it
    machine = flops.peak()
    ceiling = {precision: flops.gemm_gflops(precision) for precision in ("float32", "bfloat16")}
    rows = efficiency_rows(train, val, args.images, args.models, machine, ceiling)
    recipe_rows, speedup = recipe_speed(train, val, args.raw_dir)
    notes = [
        f"Per model: images/s of the fastest of epochs 2 to {STEP_EPOCHS} (the first warms up) over {args.images:,} "
        "training images, batch 128, Adam, no "
        "augmentation, through mnist_lib.training.train (uint8 arrays, tf.data, scaling inside the model, batch-norm "
        "statistics recomputed and 1,000 validation images measured after each epoch, all inside the clock).",
        "MFLOP per training image: counted from each model's layers (tests/benchmarks/flops.py): 2 FLOP per "
        "multiply-add of the convolutions and dense layers, 3 passes per training image (forward, input gradients, "
        "weight gradients); bias, batch norm, activations and pooling left out. GFLOP/s = images/s x FLOP per image.",
        flops.describe(machine) + " Mixed precision's share is of the bfloat16 peak where the CPU has one. "
        "A virtual machine's clock is its nominal one: under turbo the true peak is higher and the share lower.",
        "Measured ceiling (GEMM columns): a 2048 x 2048 matrix product (tf.matmul through oneDNN, best of 8, in this "
        "run, on the threads the models trained with) reached " + ", ".join(
            f"{ceiling[name]:,.0f} GFLOP/s in {name} " + (f"({100 * ceiling[name] / value:.0f}% of the computed peak)"
                                                          if value else "(no bfloat16 unit: it runs as float32)")
            for name, value in machine["gflops"].items()) + "; a share of it says how far a model's training "
        "is from what this machine's arithmetic does reach.",
        f"Reference recipe (cnn_small, batch 64, Adam 1e-3): one epoch over the {len(train):,} training images. "
        f"mnist_lib is {speedup:.2f}x the plain-Keras speed. " + "; ".join(f"{r[0]}: {r[1]} images/s, {r[3]}"
                                                                           for r in recipe_rows) + ".",
    ]
    benchlib.write_section({
        "section": "training", "title": "Training speed", "order": 20,
        "command": command,
        "columns": ["model", "MFLOP / training image", "float32 images/s", "GFLOP/s", "% of float32 peak",
                    "% of float32 GEMM", "mixed images/s", "GFLOP/s", "% of bfloat16 peak", "% of bfloat16 GEMM"],
        "rows": rows, "notes": notes, "targets": [],
    }, args.out_dir)
    if not args.skip_levers:
        benchlib.write_section({
            "section": "training_levers", "title": "Training speed levers on the default recipe's step", "order": 21,
            "command": command,
            "columns": ["what changed", "train images/s", "vs the default step"],
            "rows": lever_rows(train, args.images),
            "notes": [f"Each row: images/s of the fastest of epochs 2 to {STEP_EPOCHS} (the first warms up) of plain "
                      f"model.fit steps over {args.images:,} "
                      "training images (cnn_strong, Adam, the default recipe's batches from mnist_lib.batches; no "
                      "validation, no batch-norm recompute), one lever changed from the first row, all in one run.",
                      "Speed only: a lever that changes the arithmetic (batch size, bfloat16) must also keep the "
                      "validation accuracy before the recipe can take it.",
                      "Thread rows: the step in a fresh process with TF_NUM_INTRAOP_THREADS, TF_NUM_INTEROP_THREADS "
                      "and OMP_NUM_THREADS set (TensorFlow reads them once, at start-up; the values `mnist sweep "
                      "--jobs` sets), timed as the other rows; the other rows leave the counts to "
                      f"TensorFlow, which uses the {CORES} cores it finds."],
            "targets": [],
        }, args.out_dir)
    if not args.skip_time_to_accuracy:
        tta_rows, targets = time_to_accuracy(train, val, test, args.raw_dir, args.every_images)
        benchlib.write_section({
            "section": "time_to_accuracy", "title": "Time to test accuracy: our recipes vs the reference recipe", "order": 25,
            "command": command,
            "columns": ["milestone", *(name for name, _ in RECIPES), "reference recipe (plain Keras)",
                        "fast / reference", "default / reference"],
            "rows": tta_rows, "targets": targets,
            "notes": ["Training seconds from the start of data loading, with the clock stopped while the test split is "
                      "evaluated every quarter epoch (this benchmark's only use of it: it selects nothing).",
                      "The reference recipe (cnn_small, batch 64, Adam 1e-3, float64 arrays, plain model.fit) stops at "
                      "99.5% or after its 10 epochs; ours run their whole schedules, so their whole-run times are "
                      "their training times. The fast profile is the reference CNN for two epochs of batch 128 with a "
                      "cosine schedule, label smoothing and bfloat16 compute (params/profiles/fast.yaml)."],
        }, args.out_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
