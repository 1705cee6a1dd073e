"""The training recipe: `TrainConfig` (every choice, checked on creation) and the learning-rate schedule it implies."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import keras

from mnist_lib import models, params

OPTIMIZERS = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD, "rmsprop": keras.optimizers.RMSprop}
SCHEDULES = ("constant", "exponential", "cosine", "one_cycle")
PRECISIONS = ("float32", "mixed")
ACTIVATIONS = ("relu", "softmax", "sigmoid", "tanh", "gelu", "elu", "selu", "swish", "linear")
MIN_STEPS_PER_EPOCH = 8  # a smaller dataset trains on smaller batches, so that an epoch still makes this many steps
# Parameters that only some recipes use: name -> (the parameter that decides, the values for which it has an effect).
USED_ONLY_WITH = {
    "lr_decay": ("lr_schedule", ("exponential",)),
    "warmup_fraction": ("lr_schedule", ("one_cycle",)),
    "hidden_activation": ("model", ("mlp",)),
}


@dataclass(frozen=True)
class TrainConfig:
    """The training parameters, checked on creation (types, ranges, and no parameter the recipe would ignore) so
    bad values fail before any work. The defaults are params/train.yaml's (a test keeps them equal)."""

    model: str = "cnn_strong"
    epochs: int = 18
    max_images_seen: int = 0
    batch_size: int = 128
    learning_rate: float = 0.003
    optimizer: str = "adam"
    lr_schedule: str = "one_cycle"
    lr_decay: float = 0.9
    warmup_fraction: float = 0.25
    label_smoothing: float = 0.1
    rotation: float = 10.0
    zoom: float = 0.1
    shift: float = 0.1
    seed: int = 42
    patience: int = 0
    restore_best_weights: bool = True
    ensemble_size: int = 1
    tta: bool = True
    hidden_activation: str = "relu"
    precision: str = "float32"
    temperature_scaling: bool = True

    def __post_init__(self) -> None:
        models.check_model_name(params.require_str("model", self.model))
        params.require_int("epochs", self.epochs, minimum=1, maximum=10_000)
        params.require_int("max_images_seen", self.max_images_seen, minimum=0)
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
        for name in self.ignored():
            decider, users = USED_ONLY_WITH[name]
            raise params.ParameterError(
                f"{name}={getattr(self, name)!r} has no effect with {decider} {getattr(self, decider)!r} (only "
                f"{' or '.join(users)} uses it): leave {name} at its default {DEFAULTS[name]!r} or choose "
                f"{decider} {users[0]!r}")

    def ignored(self) -> list[str]:
        """Parameters set away from their default that this recipe would not use (see USED_ONLY_WITH)."""
        return [name for name, (decider, users) in USED_ONLY_WITH.items()
                if getattr(self, decider) not in users and getattr(self, name) != DEFAULTS[name]]

    def effective(self) -> dict:
        """The parameters with an effect in this recipe (those USED_ONLY_WITH other choices left out)."""
        return {field.name: getattr(self, field.name) for field in fields(self)
                if field.name not in USED_ONLY_WITH or getattr(self, USED_ONLY_WITH[field.name][0]) in USED_ONLY_WITH[field.name][1]}

    @property
    def augments(self) -> bool:
        """Whether training images are randomly rotated, zoomed or shifted."""
        return bool(self.rotation or self.zoom or self.shift)

    def model_options(self) -> dict:
        """Builder options this configuration sets for its model (the mlp's hidden activation)."""
        return {"hidden_activation": self.hidden_activation} if self.model == "mlp" else {}


DEFAULTS = {field.name: field.default for field in fields(TrainConfig)}


def epochs_for(epochs: int, max_images_seen: int, train_images: int) -> int:
    """`epochs`, cut so that one network sees at most `max_images_seen` training images (0: no limit), and at least
    one epoch: a large training split is cut to fewer passes (54,000 MNIST images: 9 of 18 epochs under 500,000),
    a small one keeps every epoch."""
    if not max_images_seen:
        return epochs
    return max(1, min(epochs, max_images_seen // max(1, train_images)))


def batch_size_for(batch_size: int, train_images: int) -> int:
    """`batch_size`, lowered for fewer than MIN_STEPS_PER_EPOCH batches of training images so that every epoch
    still makes that many optimizer steps (300 images at batch 128 would make 3 steps an epoch, 54 in 18 epochs)."""
    return max(1, min(batch_size, math.ceil(train_images / MIN_STEPS_PER_EPOCH)))


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


