"""Training: parameters checked before work, and the same seed gives bit-identical weights in fresh processes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mnist_lib.params import ParameterError
from mnist_lib.training import TrainConfig

GOOD = dict(model="cnn_small", epochs=1, batch_size=32, learning_rate=0.001, optimizer="adam", seed=1)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"epochs": -3}, r"epochs = -3 is outside \[1, 10000\]"),
        ({"epochs": 2.0}, "epochs must be an integer, got 2.0"),
        ({"seed": "42"}, "seed must be an integer, got '42'"),
        ({"learning_rate": "1e-3"}, "learning_rate must be a finite number, got '1e-3'.*1.0e-3"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number, got nan"),
        ({"learning_rate": 0.0}, r"learning_rate = 0.0 is outside \(0.0, 10.0\]"),
        ({"optimizer": "adamw2"}, "optimizer must be one of adam, sgd, rmsprop"),
        ({"model": "resnet9"}, "unknown model 'resnet9'; known models:"),
        ({"restore_best_weights": "false"}, "restore_best_weights must be true or false, got 'false'"),
    ],
)
def test_bad_training_parameters_are_refused_with_the_parameter_named(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**GOOD, **change})


def test_parameter_errors_are_value_errors_a_notebook_user_can_catch():
    assert issubclass(ParameterError, ValueError)


SCRIPT = """
import hashlib, sys, tempfile
import numpy as np
sys.path.insert(0, {tests!r})
from conftest import draw_digits
from mnist_lib import models, training
from mnist_lib.datasets import Dataset
images, labels = draw_digits(256, seed=5)
data = Dataset(images[..., None], labels.astype(np.int64), tuple("0123456789"))
config = training.TrainConfig(**{config!r})
training.set_determinism(config.seed)
net = models.build_model(config.model, data.image_shape, data.num_classes)
history = training.fit(net, data, data, config, tempfile.mkdtemp(), live_plot=False)
digest = hashlib.sha256(b"".join(np.ascontiguousarray(w).tobytes() for w in net.get_weights())).hexdigest()
print("DIGEST", digest, "LOSS", history["loss"].iloc[-1])
"""


def train_in_fresh_process(config: dict) -> str:
    from conftest import REPO

    code = SCRIPT.format(tests=str(REPO / "tests"), config=config)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return next(line for line in done.stdout.splitlines() if line.startswith("DIGEST"))


@pytest.mark.slow
def test_same_seed_gives_bit_identical_weights_in_two_fresh_processes():
    config = {**GOOD, "epochs": 2}
    first, second = train_in_fresh_process(config), train_in_fresh_process(config)
    assert first == second
    assert train_in_fresh_process({**config, "seed": 2}) != first
