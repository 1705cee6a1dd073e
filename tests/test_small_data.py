"""Small data: batch-norm statistics recomputed from training images (checked against moments computed by hand),
smaller batches for a small training split, fewer epochs only for a large one, and the warning when validation accuracy stays near chance or far
below training accuracy."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest

from conftest import draw_digits, same_weights
from mnist_lib import batchnorm, health, recipe, runtime, training
from mnist_lib.records import Dataset

# A plain recipe: constant rate, no label smoothing, no augmentation (params/train.yaml's defaults are the full one).
PLAIN = dict(lr_schedule="constant", label_smoothing=0.0, rotation=0.0, zoom=0.0, shift=0.0, tta=False)
from mnist_lib.recipe import TrainConfig


def conv_bn_model() -> keras.Model:
    inputs = keras.Input((8, 8, 1))
    x = keras.layers.Conv2D(3, 3, name="conv")(keras.layers.Rescaling(1 / 255)(inputs))
    x = keras.layers.BatchNormalization(name="bn")(x)
    outputs = keras.layers.Dense(2, activation="softmax")(keras.layers.Flatten()(keras.layers.ReLU()(x)))
    return keras.Model(inputs, outputs)


def hand_moments(features: np.ndarray, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and (biased) variance of each batch, averaged with the batches' sizes as weights."""
    means, variances, weights = [], [], []
    for start in range(0, len(features), batch_size):
        batch = features[start:start + batch_size].reshape(-1, features.shape[-1]).astype(np.float64)
        means.append(batch.mean(axis=0))
        variances.append(((batch - batch.mean(axis=0)) ** 2).mean(axis=0))
        weights.append(len(features[start:start + batch_size]))
    return np.average(means, axis=0, weights=weights), np.average(variances, axis=0, weights=weights)


def test_recompute_sets_each_batch_norm_layer_to_the_training_images_batch_moments():
    keras.utils.set_random_seed(0)
    model = conv_bn_model()
    images = np.random.default_rng(1).integers(0, 256, (70, 8, 8, 1)).astype(np.uint8)
    batchnorm.Recompute(model, images, batch_size=32)()  # batches of 32, 32 and 6
    features = keras.Model(model.inputs, model.get_layer("conv").output).predict(images, verbose=0)
    mean, variance = hand_moments(features, 32)
    layer = model.get_layer("bn")
    np.testing.assert_allclose(layer.moving_mean.numpy(), mean, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(layer.moving_variance.numpy(), variance, rtol=1e-4, atol=1e-6)
    assert not np.allclose(mean, 0) and not np.allclose(variance, 1)  # far from Keras' initial 0 and 1


def test_statistics_come_from_at_most_the_limit_evenly_spaced_training_images():
    images = np.arange(10).reshape(10, 1, 1, 1)
    assert batchnorm.statistics_images(images, limit=4)[:, 0, 0, 0].tolist() == [0, 3, 6, 9]
    assert batchnorm.statistics_images(images, limit=20) is images


def test_a_model_without_batch_norm_is_left_alone():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    before = [weight.copy() for weight in model.get_weights()]
    batchnorm.Recompute(model, np.zeros((5, 4, 4, 1), np.uint8), 2)()
    assert same_weights(before, model.get_weights())


def digits(count: int, seed: int, size: int = 8) -> Dataset:
    images, labels = draw_digits(count, seed, size=size)
    return Dataset(images[..., None], labels.astype(np.int64), tuple("0123456789"))


def test_after_fit_the_saved_statistics_are_the_final_weights_batch_moments(tmp_path):
    # Keras' own moving averages (momentum 0.99) would still be near their initial 0 and 1 after 4 steps.
    train, val = digits(120, 1), digits(40, 2)
    config = TrainConfig(model="cnn_small", epochs=2, batch_size=32, learning_rate=0.01, optimizer="adam", seed=3,
                         temperature_scaling=False, **PLAIN)
    runtime.set_determinism(3)
    model = conv_bn_model()
    training.fit(model, Dataset(train.images, train.labels % 2, ("even", "odd")), Dataset(val.images, val.labels % 2,
                 ("even", "odd")), config, tmp_path, live_plot=False, resume=False)
    features = keras.Model(model.inputs, model.get_layer("conv").output).predict(train.images, verbose=0)
    mean, variance = hand_moments(features, 32)
    np.testing.assert_allclose(model.get_layer("bn").moving_mean.numpy(), mean, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(model.get_layer("bn").moving_variance.numpy(), variance, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize(("batch_size", "images", "expected"), [
    (128, 54_000, 128), (128, 1024, 128), (128, 1000, 125), (128, 300, 38), (32, 150, 19), (128, 5, 1),
])
def test_a_small_training_split_trains_on_batches_that_make_eight_steps_an_epoch(batch_size, images, expected):
    assert recipe.batch_size_for(batch_size, images) == expected


@pytest.mark.parametrize(("epochs", "limit", "images", "expected"), [
    (18, 500_000, 54_000, 9), (18, 500_000, 60_000, 8), (18, 500_000, 42_000, 11), (18, 500_000, 27_777, 18),
    (18, 500_000, 27_778, 17), (18, 500_000, 300, 18), (18, 0, 54_000, 18), (3, 100, 1_000, 1), (18, 500_000, 0, 18),
])
def test_a_large_training_split_trains_fewer_epochs_so_each_network_sees_at_most_max_images_seen(epochs, limit, images,
                                                                                                  expected):
    assert recipe.epochs_for(epochs, limit, images) == expected  # floor(500,000 / 54,000) = 9; 18 x 27,777 < 500,000


def test_the_cut_run_trains_its_epochs_with_the_schedule_over_them_and_records_them(tmp_path, capsys):
    # 3 epochs of 100 images, at most 250 seen: 2 epochs; one-cycle must reach 0 at their end, not at 3 epochs'.
    train, val = digits(100, 1), digits(40, 2)
    config = TrainConfig(model="mlp", epochs=3, max_images_seen=250, batch_size=25, learning_rate=0.01, seed=3,
                         lr_schedule="one_cycle", temperature_scaling=False, tta=False)
    model, history = training.train(train, val, config, tmp_path, live_plot=False, resume=False)
    assert "epochs 3 -> 2: 100 training images, max_images_seen 250 (0 trains every epoch)" in capsys.readouterr().out
    assert history["epoch"].tolist() == [0, 1] and history["learning_rate"].iloc[-1] == pytest.approx(0.0, abs=1e-9)
    summary = training.write_summary(tmp_path, model, config, history)
    assert summary["members"][0]["epochs"] == 2 and summary["epochs_run"] == 2 and summary["config"]["epochs"] == 3


def history(train: list[float], val: list[float]) -> pd.DataFrame:
    return pd.DataFrame({"epoch": range(len(train)), "accuracy": train, "val_accuracy": val})


def test_validation_near_chance_is_reported_with_what_to_try():
    (message,) = health.check(history([0.3, 0.9], [0.11, 0.18]), num_classes=10)
    assert message.startswith("validation accuracy never rose above 18.0%, near chance (10.0% for 10 classes)")
    assert "learning_rate" in message and "fast profile" in message


def test_validation_far_below_training_accuracy_is_reported():
    (message,) = health.check(history([0.5, 0.93], [0.30, 0.66]), num_classes=15)
    assert message.startswith("training accuracy reached 93.0% but validation accuracy only 66.0%")
    assert "augmentation" in message and "batch-normalised" in message


@pytest.mark.parametrize(("train", "val"), [([0.5, 0.99], [0.6, 0.98]), ([0.4, 1.0], [0.5, 0.76]), ([0.1, 0.2], [0.2, 0.2])])
def test_a_healthy_or_merely_small_gap_run_gets_no_warning(train, val):
    assert health.check(history(train, val), num_classes=10) == []


def test_a_run_made_to_fail_warns_in_the_notebook_and_records_it_in_the_summary(tmp_path):
    train, val = digits(200, 4, size=28), digits(300, 5, size=28)
    shuffled = Dataset(train.images, np.random.default_rng(0).permutation(train.labels), train.class_names)  # broken labels
    config = TrainConfig(model="cnn_small", epochs=3, batch_size=32, learning_rate=0.003, optimizer="adam", seed=1, **PLAIN)
    with pytest.warns(UserWarning, match="near chance"):
        model, trained = training.train(shuffled, val, config, tmp_path, live_plot=False, resume=False)
    summary = training.write_summary(tmp_path, model, config, trained)
    assert len(summary["warnings"]) == 1 and "near chance (10.0% for 10 classes)" in summary["warnings"][0]
    assert json.loads((tmp_path / "summary.json").read_text())["warnings"] == summary["warnings"]


def test_the_learning_curve_over_data_draws_each_groups_mean_and_sd_per_training_size():
    from mnist_lib import sweep_plots

    table = pd.DataFrame({
        "status": ["done"] * 6 + ["failed"], "model": ["a", "a", "a", "a", "b", "b", "a"],
        "seed": [1, 2, 1, 2, 1, 2, 3], "train_size": [100, 100, 0.5, 0.5, 100, 100, 100],
        sweep_plots.SIZE_COLUMN: [100, 100, 400, 400, 100, 100, 100], "test": [0.5, 0.7, 0.8, 0.9, 0.2, 0.4, 0.0],
    })
    fig = sweep_plots.accuracy_by_train_size(table, ["test"], ["model", "train_size", "seed"])
    ax = fig.axes[0]
    drawn = {container.get_label(): container for container in ax.containers}  # one errorbar per line
    assert sorted(drawn) == ["model=a: test", "model=b: test"] and ax.get_xscale() == "log"
    line, _, (bars,) = drawn["model=a: test"].lines
    np.testing.assert_allclose(line.get_xydata(), [[100, 0.6], [400, 0.85]])  # the failed run left out
    np.testing.assert_allclose(drawn["model=b: test"].lines[0].get_xydata(), [[100, 0.3]])
    sd = np.std([0.5, 0.7], ddof=1)  # mean +- sd over seeds, ddof 1
    np.testing.assert_allclose(sorted(bars.get_segments()[0][:, 1]), [0.6 - sd, 0.6 + sd])
    no_sizes = sweep_plots.accuracy_by_train_size(table.assign(**{sweep_plots.SIZE_COLUMN: 100}), ["test"], ["seed"])
    assert "did not vary the training images" in no_sizes.axes[0].texts[0].get_text()


def test_the_data_efficiency_sweep_gives_the_split_its_size_and_seed_and_the_training_its_seed():
    from conftest import REPO
    from mnist_lib import sweeps

    sweep = sweeps.load(REPO / "params/sweeps/data_efficiency.yaml", REPO)
    assert [step.notebook for step in sweep.chain] == ["notebooks/02_split.py", "notebooks/03_train.py", "notebooks/04_evaluate.py"]
    assert len(sweep.runs) == 15 and sweep.swept_names == ["train_size", "seed"]
    sizes = sorted({run.values[0]["train_size"] for run in sweep.runs})
    assert sizes == [1.0, 300, 1000, 3000, 10000]
    assert all(run.values[0]["seed"] == run.values[1]["seed"] == run.swept["seed"] for run in sweep.runs)
