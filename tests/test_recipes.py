"""Training recipes: learning-rate schedules, label smoothing, augmentation in the tf.data pipeline, ensembles with
their own validation splits, test-time augmentation, and the precision policy."""

from __future__ import annotations

import json

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from conftest import digit_dataset, same_weights
from mnist_lib import batches, calibration, modelfile, models, recipe, runtime, training
from mnist_lib.params import ParameterError
from mnist_lib.recipe import TrainConfig

# A plain recipe (constant rate, no label smoothing, no augmentation, no test-time shifts) that each test changes in one respect;
# params/train.yaml's defaults are the full recipe.
BASE = dict(model="mlp", epochs=4, batch_size=32, learning_rate=0.01, optimizer="adam", seed=3, lr_schedule="constant",
            label_smoothing=0.0, rotation=0.0, zoom=0.0, shift=0.0, tta=False)


def plain(**changes) -> TrainConfig:
    """BASE with `changes`."""
    return TrainConfig(**{**BASE, **changes})


def rate(config: TrainConfig, steps_per_epoch: int, step: int) -> float:
    schedule = recipe.learning_rate(config, steps_per_epoch)
    return float(schedule(step)) if callable(schedule) else schedule


def test_each_schedule_follows_its_curve_over_the_run():
    steps, total = 10, 40  # 4 epochs of 10 steps
    constant = plain()
    assert rate(constant, steps, 0) == rate(constant, steps, total) == 0.01
    exponential = plain(lr_schedule="exponential", lr_decay=0.5)
    assert rate(exponential, steps, 0) == pytest.approx(0.01)
    assert rate(exponential, steps, 2 * steps) == pytest.approx(0.01 * 0.5**2)  # x lr_decay per epoch
    cosine = plain(lr_schedule="cosine")
    assert [rate(cosine, steps, s) for s in (0, total // 2, total)] == pytest.approx([0.01, 0.005, 0.0], abs=1e-9)
    cycle = plain(lr_schedule="one_cycle", warmup_fraction=0.25)
    rates = [rate(cycle, steps, s) for s in range(total + 1)]
    assert rates[0] == pytest.approx(0.01 / 25)
    assert int(np.argmax(rates)) == 10 and max(rates) == pytest.approx(0.01)  # the peak ends the warm-up
    assert np.all(np.diff(rates[:11]) > 0) and np.all(np.diff(rates[10:]) < 0) and rates[-1] == pytest.approx(0.0, abs=1e-9)


def test_history_logs_the_learning_rate_the_schedule_reached_at_each_epoch_end(tmp_path):
    data = digit_dataset(64, seed=3)
    config = plain(lr_schedule="exponential", lr_decay=0.5)
    _, history = training.train(data, data, config, tmp_path, live_plot=False)
    written = pd.read_csv(tmp_path / "history.csv")
    assert written["learning_rate"].to_numpy() == pytest.approx([0.01 * 0.5 ** (e + 1) for e in range(4)], rel=1e-5)
    assert history["learning_rate"].tolist() == written["learning_rate"].tolist()


def test_label_smoothing_reaches_the_compiled_loss():
    model = models.build_model("mlp", (28, 28, 1), 10)
    training.compile_model(model, plain(label_smoothing=0.1), 5)
    assert model.loss.label_smoothing == 0.1
    targets = np.eye(10, dtype="float32")[[3]]
    sure = np.eye(10, dtype="float32")[[3]] * 0.999 + 0.0001
    assert float(model.loss(targets, sure)) > 0.3  # a confident right answer still costs: the target is 0.91, not 1


def test_a_pure_shift_moves_a_dot_by_the_drawn_offset_within_the_limit():
    image = np.zeros((64, 28, 28, 1), np.float32)
    image[:, 14, 14, 0] = 255.0
    moved = batches.random_affine(tf.constant(image), tf.constant([1, 2], tf.int64), 0.0, 0.0, 0.1).numpy()
    peaks = np.array([np.unravel_index(np.argmax(m[..., 0]), (28, 28)) for m in moved]) - 14
    assert np.abs(peaks).max() <= 3 and (np.abs(peaks) > 0).any()  # within 0.1 x 28 px, and not all in place
    assert moved.sum(axis=(1, 2, 3)) == pytest.approx(image.sum(axis=(1, 2, 3)), rel=0.02)  # ink is kept
    still = batches.random_affine(tf.constant(image), tf.constant([1, 2], tf.int64), 0.0, 0.0, 0.0).numpy()
    np.testing.assert_allclose(still, image, atol=1e-3)  # no rotation, zoom or shift: the image itself


def test_batches_are_the_same_for_a_seed_and_epoch_and_differ_otherwise():
    data = digit_dataset(96, seed=3)
    config = plain(rotation=15.0, zoom=0.1, shift=0.1)

    def first_batch(first_epoch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        images, labels = next(iter(batches.training_batches(data, config, first_epoch, seed)))
        return images.numpy(), labels.numpy()

    images, labels = first_batch(0, 3)
    assert images.dtype == np.float32 and labels.shape == (32, 10) and labels.sum(axis=1).tolist() == [1.0] * 32
    np.testing.assert_array_equal(first_batch(0, 3)[0], images)
    assert not np.array_equal(first_batch(1, 3)[0], images) and not np.array_equal(first_batch(0, 4)[0], images)
    unaugmented = plain()
    raw, onehot = next(iter(batches.training_batches(data, unaugmented, 0)))
    index = [np.flatnonzero((data.images == row[..., None].astype(np.uint8)).all(axis=(1, 2, 3)))[0]
             for row in raw.numpy()[..., 0]]
    assert np.argmax(onehot.numpy(), axis=1).tolist() == data.labels[index].tolist()  # unaugmented: exact pixels


def test_augmentation_examples_put_each_original_first():
    data = digit_dataset(10, seed=3)
    examples = batches.augmentation_examples(data, plain(rotation=20.0), count=3, copies=2)
    assert examples.shape == (3, 3, 28, 28, 1) and examples.dtype == np.uint8
    np.testing.assert_array_equal(examples[:, 0], data.images[:3])
    assert not np.array_equal(examples[:, 1], examples[:, 0])


def shifted(images: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """`images` moved `rows` down and `columns` right, zeros coming in."""
    padded = np.pad(images, ((0, 0), (1, 1), (1, 1), (0, 0)))
    height, width = images.shape[1:3]
    return padded[:, 1 - rows:1 - rows + height, 1 - columns:1 - columns + width]


def test_the_tta_shifts_are_one_pixel_moves_with_zeros_coming_in():
    images = np.arange(2 * 5 * 5, dtype=np.float32).reshape(2, 5, 5, 1)
    for rows, columns in models.TTA_SHIFTS:
        view = keras.Model(inputs := keras.Input((5, 5, 1)), models._shifted(inputs, rows, columns))
        np.testing.assert_array_equal(view.predict(images, verbose=0), shifted(images, rows, columns))


def test_an_ensemble_trains_members_on_their_own_splits_and_saves_as_one_safe_model(tmp_path):
    train, val = digit_dataset(120, seed=3), digit_dataset(40, seed=4)
    config = plain(model="cnn_small", epochs=2, ensemble_size=2, tta=True)
    member_train, member_val = training.member_data(train, val, 1, config.seed)
    assert len(member_val) == len(val) and len(member_train) == len(train)
    pooled = np.concatenate([train.images, val.images])
    assert not np.array_equal(member_val.images, val.images)  # another validation split ...
    assert {row.tobytes() for row in member_train.images} | {row.tobytes() for row in member_val.images} \
        == {row.tobytes() for row in pooled}  # ... of the same pooled images

    model, history = training.train(train, val, config, tmp_path, live_plot=False)
    assert history.groupby("member")["epoch"].apply(list).to_dict() == {0: [0, 1], 1: [0, 1]}
    assert pd.read_csv(tmp_path / "history.csv")["member"].tolist() == [0, 0, 1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["history.csv"]  # member files and states cleaned up
    assert not any(tmp_path.parent.glob(f"{tmp_path.name}.member*.resume.npz"))
    summary = training.write_summary(tmp_path, model, config, history)
    assert [m["seed"] for m in summary["members"]] == [3, 4] and summary["epochs_run"] == 4

    digest = modelfile.save_model(model, tmp_path / "model.keras")
    loaded = modelfile.load_model(tmp_path / "model.keras", digest)  # safe mode: standard layers only
    members = [layer for layer in loaded.layers if isinstance(layer, keras.Model)]
    assert len(members) == 2
    images = val.images[:8].astype(np.float32)
    expected = np.mean([member.predict(shifted(images, *s), verbose=0) for member in members for s in models.TTA_SHIFTS], axis=0)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), expected, atol=1e-6)
    np.testing.assert_allclose(loaded.predict(images, verbose=0), model.predict(images, verbose=0), atol=1e-6)


def test_a_finished_member_is_not_trained_again_after_a_kill(tmp_path):
    train = digit_dataset(64, seed=3)
    config = plain(ensemble_size=2)
    first = training.build(config, train.image_shape, 10)
    training.fit(first, train, train, config, tmp_path, member=0, live_plot=False)
    again = training.build(config, train.image_shape, 10)
    history = training.fit(again, train, train, config, tmp_path, member=0, live_plot=False)
    assert history.attrs["epochs_this_run"] == 0 and history["epoch"].tolist() == [0, 1, 2, 3]
    assert same_weights(first.get_weights(), again.get_weights())


def test_mixed_precision_on_a_cpu_computes_in_bfloat16_and_answers_in_float32():
    try:
        assert runtime.set_precision("mixed") == "mixed_bfloat16"
        model = models.build_model("cnn_strong", (28, 28, 1), 10)
        assert model.layers[2].compute_dtype == "bfloat16" and model.output.dtype == "float32"
        assert model.layers[-1].compute_dtype == "float32"  # logits and softmax in float32, not just cast to it
    finally:
        runtime.set_precision("float32")
    assert keras.mixed_precision.global_policy().name == "float32"


def test_cnn_strong_is_deterministic_for_a_seed_and_fits_other_shapes():
    config = plain(model="cnn_strong")
    weights = [training.build(config, (28, 28, 1), 10).get_weights() for _ in range(2)]
    assert same_weights(*weights)
    assert training.build(config, (32, 32, 3), 15).output.shape == (None, 15)
    assert json.dumps(runtime.environment())  # recorded with every result


def test_temperature_scaling_sharpens_an_underconfident_network_on_validation_and_keeps_its_classes(tmp_path):
    train, val = digit_dataset(160, seed=3), digit_dataset(80, seed=4)
    (tmp_path / "raw").mkdir(), (tmp_path / "cal").mkdir()
    smoothed = plain(label_smoothing=0.4, temperature_scaling=False)  # heavy smoothing: underconfident
    raw, _ = training.train(train, val, smoothed, tmp_path / "raw", live_plot=False)
    before = raw.predict(val.images, verbose=0)
    head = raw.layers[-1]
    logits = keras.Model(raw.inputs, head.input).predict(val.images, verbose=0) @ head.get_weights()[0] + head.get_weights()[1]

    found = calibration.calibrate(raw, val)
    assert found["temperature"] < 1 and found["val_nll_after"] < found["val_nll_before"]
    after = raw.predict(val.images, verbose=0)
    np.testing.assert_allclose(after, tf.nn.softmax(logits / found["temperature"]).numpy(), atol=1e-4)
    assert np.array_equal(after.argmax(axis=1), before.argmax(axis=1))  # the same classes, sharper probabilities
    assert after.max(axis=1).mean() > before.max(axis=1).mean()
    # the temperature minimises the NLL: a little hotter or colder is worse
    nll = [calibration._nll(logits.astype(np.float64), val.labels, 1 / (found["temperature"] * f)) for f in (0.9, 1.0, 1.1)]
    assert nll[1] < nll[0] and nll[1] < nll[2]

    calibrated, history = training.train(train, val, plain(label_smoothing=0.4), tmp_path / "cal", live_plot=False)
    summary = training.write_summary(tmp_path / "cal", calibrated, plain(label_smoothing=0.4), history)
    assert summary["members"][0]["calibration"] == found  # the same seed, the same network, the same temperature
    np.testing.assert_allclose(calibrated.predict(val.images, verbose=0), after, atol=1e-6)


@pytest.mark.parametrize("change, named", [
    ({"lr_schedule": "cosine", "warmup_fraction": 0.1}, "warmup_fraction=0.1 has no effect with lr_schedule 'cosine'"),
    ({"lr_schedule": "constant", "lr_decay": 0.5}, "lr_decay=0.5 has no effect with lr_schedule 'constant'"),
    ({"model": "cnn_small", "hidden_activation": "tanh"}, "hidden_activation='tanh' has no effect with model 'cnn_small'"),
])
def test_a_parameter_the_chosen_recipe_ignores_is_refused_by_name(change, named):
    with pytest.raises(ParameterError) as caught:
        plain(**change)
    assert named in str(caught.value) and "leave" in str(caught.value)


def test_a_parameter_at_its_default_is_accepted_and_only_the_used_ones_are_effective():
    cosine = plain(lr_schedule="cosine")  # warmup_fraction, lr_decay at params/train.yaml's values: nothing to refuse
    assert "warmup_fraction" not in cosine.effective() and "lr_decay" not in cosine.effective()
    assert cosine.effective()["hidden_activation"] == "relu"  # an mlp-only option, and BASE's model is the mlp
    cycle = plain(model="cnn_small", lr_schedule="one_cycle", warmup_fraction=0.1)
    assert cycle.effective()["warmup_fraction"] == 0.1 and "hidden_activation" not in cycle.effective()
    exponential = plain(lr_schedule="exponential", lr_decay=0.5)
    assert exponential.effective()["lr_decay"] == 0.5 and exponential.effective()["hidden_activation"] == "relu"
