"""Prediction on image files: real PNG and JPG files written with Pillow, a small model trained here on drawn digits,
and the `mnist predict` command run as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

from conftest import draw_digits
from mnist_lib import cli, modelfile, models, predict
from mnist_lib.checksums import sha256_file

SHAPE = (28, 28, 1)


def prepared(image: np.ndarray, **options) -> tuple[np.ndarray, bool]:
    return predict.prepare_image(Image.fromarray(image), SHAPE, **options)


@pytest.fixture(scope="module")
def digit_model(tmp_path_factory) -> Path:
    """An MLP trained on 600 drawn digits prepared as files are (fitted and centred), saved as .keras."""
    images, labels = draw_digits(600, seed=11)
    inputs = np.stack([prepared(image)[0] for image in images]).astype(np.float32)
    keras.utils.set_random_seed(0)
    net = models.build_model("mlp", SHAPE, 10)
    net.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    net.fit(inputs, labels, epochs=15, batch_size=32, verbose=0)
    path = tmp_path_factory.mktemp("model") / "digits.keras"
    modelfile.save_model(net, path)
    return path


@pytest.fixture(scope="module")
def unseen() -> tuple[np.ndarray, np.ndarray]:
    """30 digits the model never saw: white on black, 28x28, at random offsets and sizes."""
    return draw_digits(30, seed=12)


def mnist(*args: str) -> subprocess.CompletedProcess:
    """Run the installed `mnist` command."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["mnist", *args], capture_output=True, text=True, timeout=300, env=env)


def test_dark_on_light_and_light_on_dark_prepare_to_the_same_image(unseen):
    for image in unseen[0][:10]:
        light_ink, flipped_light = prepared(image)
        dark_ink, flipped_dark = prepared(255 - image)
        assert np.array_equal(light_ink, dark_ink)
        assert (flipped_light, flipped_dark) == (False, True)


def test_invert_can_be_forced_or_refused(unseen):
    image = unseen[0][0]
    assert np.array_equal(prepared(image, invert="yes")[0], prepared(255 - image, invert="no")[0])
    with pytest.raises(ValueError, match="invert must be one of auto, yes, no"):
        prepared(image, invert="maybe")


def test_the_digit_is_fitted_in_mnists_20_pixel_box_and_centred_by_mass(unseen):
    for image in unseen[0][:10]:
        pixels = prepared(image)[0][..., 0].astype(float)
        rows, cols = np.nonzero(pixels > 0.25 * 255)
        assert max(np.ptp(rows), np.ptp(cols)) + 1 in (19, 20, 21)
        centre = [(pixels.sum(axis=1 - axis) * np.arange(28)).sum() / pixels.sum() for axis in (0, 1)]
        assert centre == pytest.approx([13.5, 13.5], abs=1.0)


def test_without_centering_an_image_is_only_resized(unseen):
    image = unseen[0][0]
    assert np.array_equal(prepared(image, center=False)[0][..., 0], image)


def test_a_transparent_png_with_dark_ink_reads_as_the_digit(unseen, tmp_path):
    image = unseen[0][3]
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = image  # black ink, visible where the digit is
    Image.fromarray(rgba, "RGBA").save(tmp_path / "ink.png")
    array, _ = predict.load_image(tmp_path / "ink.png", SHAPE)
    assert np.abs(array.astype(int) - prepared(image)[0].astype(int)).mean() < 3


def test_rgb_models_get_the_resized_colour_image_and_auto_never_inverts():
    image = np.zeros((64, 48, 3), np.uint8)
    image[..., 0] = 250  # a red image with a light background
    array, flipped = predict.prepare_image(Image.fromarray(image), (32, 32, 3))
    assert array.shape == (32, 32, 3) and not flipped
    assert (array[..., 0] > 240).all() and (array[..., 1:] < 10).all()


@pytest.mark.parametrize(
    ("variant", "inverted"),
    [("png28", False), ("png_big_dark_on_light", True), ("jpg_rgb_dark_on_light", True), ("png_gray_alpha", False)],
)
def test_files_of_any_size_format_and_polarity_are_predicted_as_their_digits(digit_model, unseen, tmp_path, variant, inverted):
    images, labels = unseen
    paths = []
    for index, image in enumerate(images):
        picture = Image.fromarray(image)
        if variant == "png28":
            path = tmp_path / f"{index}.png"
            picture.save(path)
        elif variant == "png_big_dark_on_light":
            path = tmp_path / f"{index}.png"
            Image.fromarray(255 - image).resize((280, 280), Image.Resampling.BICUBIC).save(path)
        elif variant == "jpg_rgb_dark_on_light":
            path = tmp_path / f"{index}.jpg"
            Image.fromarray(255 - image).resize((150, 150), Image.Resampling.BICUBIC).convert("RGB").save(path, quality=80)
        else:
            path = tmp_path / f"{index}.png"
            Image.merge("LA", (picture, Image.new("L", picture.size, 255))).resize((56, 56)).save(path)
        paths.append(path)
    results = predict.predict_files(modelfile.load_model(digit_model), paths)
    assert [r.error for r in results] == [None] * len(paths)
    assert all(r.inverted is inverted for r in results)
    accuracy = np.mean([r.prediction == str(label) for r, label in zip(results, labels)])
    assert accuracy >= 0.9, f"{variant}: {accuracy:.2f}"
    assert all(0.0 < r.probability <= 1.0 for r in results)


def test_unreadable_files_get_an_error_naming_them_and_the_others_are_predicted(digit_model, unseen, tmp_path):
    Image.fromarray(unseen[0][0]).save(tmp_path / "good.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not really")
    (tmp_path / "empty.jpg").write_bytes(b"")
    files = [tmp_path / "broken.png", tmp_path / "good.png", tmp_path / "missing.png", tmp_path / "empty.jpg"]
    results = predict.predict_files(modelfile.load_model(digit_model), files, top=3)
    assert [r.file for r in results] == [str(f) for f in files]
    assert results[1].error is None and len(results[1].top) == 3
    assert "broken.png: cannot read it as an image" in results[0].error
    assert results[2].error == f"{tmp_path / 'missing.png'}: no such file"
    assert "empty.jpg" in results[3].error and results[3].top == ()


def test_top_k_lists_distinct_classes_most_probable_first(digit_model, unseen, tmp_path):
    Image.fromarray(unseen[0][1]).save(tmp_path / "d.png")
    (result,) = predict.predict_files(modelfile.load_model(digit_model), [tmp_path / "d.png"], top=10)
    probabilities = [p for _, p in result.top]
    assert sorted(name for name, _ in result.top) == list("0123456789")
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) == pytest.approx(1.0, abs=1e-4)


def test_top_beyond_the_class_count_and_wrong_class_names_are_refused(digit_model):
    net = modelfile.load_model(digit_model)
    with pytest.raises(ValueError, match="top must be between 1 and 10"):
        predict.predict_files(net, [], top=11)
    with pytest.raises(ValueError, match="the model predicts 10 classes but 3 class names were given"):
        predict.predict_files(net, [], class_names=("cat", "dog", "owl"))


@pytest.mark.slow
def test_cli_prints_each_file_with_its_digit_and_exits_non_zero_naming_the_unreadable_one(digit_model, unseen, tmp_path):
    images, labels = unseen
    Image.fromarray(images[0]).save(tmp_path / "a.png")
    Image.fromarray(255 - images[1]).resize((90, 120)).convert("RGB").save(tmp_path / "b.jpg")
    (tmp_path / "c.png").write_text("not an image")
    done = mnist("predict", str(digit_model), str(tmp_path / "a.png"), str(tmp_path / "c.png"), str(tmp_path / "b.jpg"),
                 "--top", "3")
    assert done.returncode == 1, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == [str(tmp_path / "a.png"), str(tmp_path / "b.jpg")]
    assert lines[0].split(": ")[1].startswith(f"{labels[0]} (") and lines[0].count("(") == 3
    assert lines[1].endswith("[inverted]")
    assert f"{tmp_path / 'c.png'}: cannot read it as an image" in done.stderr
    assert "1 of 3 file(s) could not be predicted" in done.stderr


@pytest.mark.slow
def test_cli_json_output_equals_the_library_function(digit_model, unseen, tmp_path):
    files = []
    for index, image in enumerate(unseen[0][:4]):
        files.append(tmp_path / f"{index}.png")
        Image.fromarray(image).save(files[-1])
    done = mnist("predict", str(digit_model), *map(str, files), "--json", "--top", "2")
    assert done.returncode == 0, done.stderr[-2000:]
    printed = json.loads(done.stdout)
    expected = predict.predict_files(modelfile.load_model(digit_model), files, top=2)
    assert [entry["file"] for entry in printed] == [str(f) for f in files]
    for entry, result in zip(printed, expected):
        assert entry["prediction"] == result.prediction and entry["error"] is None
        assert entry["probability"] == pytest.approx(result.probability, abs=1e-5)
        assert [t["class"] for t in entry["top"]] == [name for name, _ in result.top]


@pytest.mark.slow
def test_cli_names_classes_of_an_rgb_model(tmp_path):
    net = models.build_model("baseline", (32, 32, 3), 3)
    modelfile.save_model(net, tmp_path / "rgb.keras")
    Image.fromarray(np.full((50, 70, 3), (20, 200, 40), np.uint8)).save(tmp_path / "green.jpg")
    done = mnist("predict", str(tmp_path / "rgb.keras"), str(tmp_path / "green.jpg"), "--classes", "cat,dog,owl",
                 "--top", "3", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    (entry,) = json.loads(done.stdout)
    assert sorted(t["class"] for t in entry["top"]) == ["cat", "dog", "owl"]


@pytest.mark.slow
def in_process(capsys, *args: str) -> tuple[int, str, str]:
    """`mnist ARGS` run in this process (the same `cli.main` the command calls): exit code, stdout, stderr.
    Used for refusals, which happen before any prediction; each test keeps one real `mnist` process."""
    capsys.readouterr()
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_refuses_a_model_that_would_run_code_and_a_missing_model(tmp_path, capsys):
    inputs = keras.Input(SHAPE)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(keras.layers.Lambda(lambda x: x * 2)(inputs)))
    modelfile.save_model(keras.Model(inputs, outputs), tmp_path / "lambda.keras")
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    done = mnist("predict", str(tmp_path / "lambda.keras"), str(tmp_path / "x.png"))
    assert done.returncode == 1 and done.stdout == ""
    assert "Lambda" in done.stderr and "refused to load it in safe mode" in done.stderr
    code, out, err = in_process(capsys, "predict", str(tmp_path / "nothing.keras"), str(tmp_path / "x.png"))
    assert code == 1 and out == "" and "nothing.keras does not exist" in err


@pytest.mark.slow
def test_cli_takes_a_model_without_a_record_only_with_its_hash_given(digit_model, tmp_path, capsys):
    bare = tmp_path / "bare.keras"
    bare.write_bytes(digit_model.read_bytes())  # no .sha256 beside it
    Image.new("L", (28, 28)).save(tmp_path / "x.png")
    code, _, err = in_process(capsys, "predict", str(bare), str(tmp_path / "x.png"))
    assert code == 1 and "no recorded SHA-256" in err
    code, _, err = in_process(capsys, "predict", str(bare), str(tmp_path / "x.png"), "--sha256", "0" * 64)
    assert code == 1 and f"differs from the {'0' * 64} given" in err
    given = mnist("predict", str(bare), str(tmp_path / "x.png"), "--sha256", sha256_file(bare))
    assert given.returncode == 0 and given.stdout.startswith(str(tmp_path / "x.png")), given.stderr[-2000:]
