"""Bring-your-own data: Kaggle CSV and image folders written as real files; every bad input named precisely."""

from __future__ import annotations

import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from conftest import SHAPES, draw_digits, write_kaggle_csv, write_shape_folders
from mnist_lib import datasets, images, tabular
from mnist_lib.params import ParameterError
from mnist_lib.records import DIGITS, DatasetError


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """60 drawn digits ordered 0..9, 0..9, ... so that any 10 consecutive ones hold every class."""
    pictures, labels = draw_digits(60, seed=5)
    order = np.stack([np.flatnonzero(labels == digit) for digit in range(10)], axis=1).ravel()
    return pictures[order], labels[order]


@pytest.fixture
def kaggle(tmp_path, digits):
    """A Kaggle folder: train.csv (labeled, 40 rows) and test.csv (unlabeled, 20 rows)."""
    pictures, labels = digits
    write_kaggle_csv(tmp_path / "train.csv", pictures[:40], labels[:40])
    write_kaggle_csv(tmp_path / "test.csv", pictures[40:])
    return tmp_path


def rewrite_line(path, number: int, edit) -> None:
    """Apply `edit` to line `number` (1 = header) of a CSV file."""
    lines = path.read_text().splitlines()
    lines[number - 1] = edit(lines[number - 1])
    path.write_text("\n".join(lines) + "\n")


def set_value(line: str, column: int, value: str) -> str:
    values = line.split(",")
    values[column] = value
    return ",".join(values)


# --- Kaggle CSV -----------------------------------------------------------------------------------------------


def test_kaggle_csv_reads_labels_pixels_row_major_and_an_unlabeled_test(kaggle, digits):
    pictures, labels = digits
    splits = datasets.load("kaggle_csv", kaggle)
    train, test = splits["train"], splits["test"]
    assert train.images.shape == (40, 28, 28, 1) and train.images.dtype == np.uint8
    assert np.array_equal(train.images[..., 0], pictures[:40]) and np.array_equal(train.labels, labels[:40])
    assert test.labels is None and np.array_equal(test.images[..., 0], pictures[40:])
    assert train.class_names == DIGITS
    assert test.sources[:2] == ("test.csv row 1", "test.csv row 2")


def test_pixel_x_is_row_x_div_28_column_x_mod_28(tmp_path):
    image = np.zeros((1, 28, 28), np.uint8)
    image[0, 3, 5] = 200
    write_kaggle_csv(tmp_path / "train.csv", image, np.array([7]))
    line = (tmp_path / "train.csv").read_text().splitlines()[1].split(",")
    assert line[1 + 3 * 28 + 5] == "200"  # column pixel89, independent of the reader
    data = tabular.read_kaggle_csv(tmp_path / "train.csv")
    assert data.images[0, 3, 5, 0] == 200 and data.images.sum() == 200 and data.labels[0] == 7


def test_a_labeled_test_csv_is_read_with_its_labels(tmp_path, digits):
    pictures, labels = digits
    write_kaggle_csv(tmp_path / "train.csv", pictures[:30], labels[:30])
    write_kaggle_csv(tmp_path / "test.csv", pictures[30:], labels[30:])
    assert np.array_equal(datasets.load("kaggle_csv", tmp_path)["test"].labels, labels[30:])


def test_without_test_csv_only_train_is_returned(tmp_path, digits):
    write_kaggle_csv(tmp_path / "train.csv", digits[0][:20], digits[1][:20])
    assert set(datasets.load("kaggle_csv", tmp_path)) == {"train"}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda line: line.replace("pixel10,", "pixel1O,"), "column 12 is 'pixel1O' where 'pixel10' belongs"),
        (lambda line: line.replace("label,", "digit,"), "column 1 is 'digit' where 'pixel0' belongs"),
        (lambda line: line.rsplit(",", 1)[0], "it has 784 columns instead of 785"),
        (lambda line: line + ",extra", "it has 786 columns instead of 785"),
    ],
    ids=["misspelled-pixel", "renamed-label", "missing-column", "extra-column"],
)
def test_a_wrong_header_names_the_column(kaggle, edit, message):
    rewrite_line(kaggle / "train.csv", 1, edit)
    with pytest.raises(DatasetError) as caught:
        datasets.load("kaggle_csv", kaggle)
    assert str(caught.value).startswith(f"{kaggle / 'train.csv'}: the header is not `label,pixel0,...,pixel783`")
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "line, edit, message",
    [
        (4, lambda line: line.rsplit(",", 1)[0], "data row 3 (line 4) has 784 values instead of 785"),
        (2, lambda line: line + ",0", "data row 1 (line 2) has 786 values instead of 785"),
        (5, lambda line: set_value(line, 6, "abc"), "data row 4, column 'pixel5': 'abc' is not an integer"),
        (3, lambda line: set_value(line, 101, ""), "data row 2, column 'pixel100': an empty value (or NaN) is not an integer"),
        (6, lambda line: set_value(line, 1, "3.5"), "data row 5, column 'pixel0': 3.5 is not an integer"),
        (7, lambda line: set_value(line, 784, "256"), "data row 6, column 'pixel783': 256 is outside 0..255"),
        (8, lambda line: set_value(line, 30, "-1"), "data row 7, column 'pixel29': -1 is outside 0..255"),
        (9, lambda line: set_value(line, 0, "10"), "data row 8: label 10 is not a digit 0..9"),
        (10, lambda line: set_value(line, 0, "-1"), "data row 9: label -1 is not a digit 0..9"),
    ],
    ids=["short-row", "long-row", "text", "empty", "fraction", "over-255", "negative", "label-10", "label-minus-1"],
)
def test_a_bad_row_names_row_and_column(kaggle, line, edit, message):
    rewrite_line(kaggle / "train.csv", line, edit)
    with pytest.raises(DatasetError) as caught:
        datasets.load("kaggle_csv", kaggle)
    assert str(caught.value).startswith(f"{kaggle / 'train.csv'}: {message}")


def test_a_bad_value_in_the_unlabeled_test_csv_is_named_too(kaggle):
    rewrite_line(kaggle / "test.csv", 11, lambda line: set_value(line, 0, "999"))
    with pytest.raises(DatasetError, match=r"test\.csv: data row 10, column 'pixel0': 999 is outside 0\.\.255"):
        datasets.load("kaggle_csv", kaggle)


def test_missing_train_csv_unlabeled_train_csv_and_header_only_file_are_refused(tmp_path, digits):
    with pytest.raises(DatasetError, match="no train.csv; data_format kaggle_csv expects"):
        datasets.load("kaggle_csv", tmp_path)
    write_kaggle_csv(tmp_path / "train.csv", digits[0][:5])
    with pytest.raises(DatasetError, match="the training file needs a first column `label`"):
        datasets.load("kaggle_csv", tmp_path)
    write_kaggle_csv(tmp_path / "train.csv", digits[0][:0], digits[1][:0])
    with pytest.raises(DatasetError, match="the header is there but there are no data rows"):
        datasets.load("kaggle_csv", tmp_path)


# --- image folders --------------------------------------------------------------------------------------------


def save_digits(root, pictures, labels, suffix="png", invert=False):
    for index, (picture, label) in enumerate(zip(pictures, labels)):
        folder = root / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - picture if invert else picture).save(folder / f"img_{index}.{suffix}")


def test_digit_folders_map_to_their_own_value_and_keep_every_file_name(tmp_path, digits):
    pictures, labels = digits
    save_digits(tmp_path / "trainingSet", pictures, labels)
    data = datasets.load("image_folder", tmp_path, train_folder="trainingSet")["train"]
    assert data.class_names == DIGITS and len(data) == len(pictures)
    for image, label, source in zip(data.images, data.labels, data.sources):
        assert source.startswith(f"trainingSet/{label}/img_")
        index = int(source.rsplit("_", 1)[1].split(".")[0])
        assert labels[index] == label and np.array_equal(image[..., 0], pictures[index])  # PNG is lossless


def test_class_names_sort_numerically_when_all_are_numbers_else_by_name(tmp_path):
    for name in ("10", "2", "9"):
        (tmp_path / "numbers" / name).mkdir(parents=True)
        Image.new("L", (5, 5)).save(tmp_path / "numbers" / name / "a.png")
    assert datasets.load("image_folder", tmp_path, train_folder="numbers")["train"].class_names == ("2", "9", "10")
    write_shape_folders(tmp_path / "shapes", 9, seed=0)
    assert datasets.load("image_folder", tmp_path, train_folder="shapes")["train"].class_names == SHAPES


def test_any_size_and_mode_becomes_image_size_grayscale_or_rgb(tmp_path):
    root = tmp_path / "train" / "mixed"
    root.mkdir(parents=True)
    Image.new("RGBA", (50, 20), (255, 0, 0, 255)).save(root / "rgba.png")
    Image.new("P", (7, 9), 3).save(root / "palette.png")
    Image.new("RGB", (300, 200), (0, 0, 255)).save(root / "big.jpg")
    Image.new("L", (28, 28), 100).save(root / "gray.bmp")
    Image.new("I;16", (30, 30), 40000).save(root / "sixteen.png")
    gray = datasets.load("image_folder", tmp_path, image_size=32)["train"]
    assert gray.images.shape == (5, 32, 32, 1)
    rgb = datasets.load("image_folder", tmp_path, image_size=32, channels=3)["train"]
    assert rgb.images.shape == (5, 32, 32, 3)
    big = rgb.sources.index("train/mixed/big.jpg")
    assert rgb.images[big, ..., 2].mean() > 240 and rgb.images[big, ..., 0].mean() < 15  # blue stays blue
    assert abs(int(gray.images[gray.sources.index("train/mixed/gray.bmp")].mean()) - 100) <= 1


def test_an_unlabeled_test_folder_keeps_natural_file_order(tmp_path, digits):
    pictures, labels = digits
    save_digits(tmp_path / "trainingSet", pictures[:30], labels[:30])
    test = tmp_path / "testSet"
    test.mkdir()
    for index in (1, 2, 10, 11):
        Image.fromarray(pictures[30 + index]).save(test / f"img_{index}.jpg", quality=95)
    data = datasets.load("image_folder", tmp_path, train_folder="trainingSet", test_folder="testSet")["test"]
    assert data.labels is None and data.sources == tuple(f"testSet/img_{i}.jpg" for i in (1, 2, 10, 11))
    assert np.abs(data.images[2, ..., 0].astype(int) - pictures[40]).mean() < 8  # JPEG is lossy, not another image


def test_a_labeled_test_folder_uses_the_training_class_numbering(tmp_path):
    write_shape_folders(tmp_path / "train", 12, seed=1)
    write_shape_folders(tmp_path / "test", 6, seed=2)
    shutil.rmtree(tmp_path / "test" / "circle")
    splits = datasets.load("image_folder", tmp_path, channels=3, image_size=32)
    assert splits["test"].class_names == SHAPES
    assert set(splits["test"].labels) == {SHAPES.index("square"), SHAPES.index("triangle")}
    for label, source in zip(splits["test"].labels, splits["test"].sources):
        assert source.startswith(f"test/{SHAPES[label]}/")


def test_a_corrupt_image_is_named_and_nothing_is_loaded(tmp_path, digits):
    save_digits(tmp_path / "train", *digits)
    jpg = next((tmp_path / "train" / "3").iterdir())
    good = tmp_path / "good.jpg"
    Image.fromarray(digits[0][0]).save(good)
    (tmp_path / "train" / "3" / "truncated.jpg").write_bytes(good.read_bytes()[:200])
    (tmp_path / "train" / "5" / "noise.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(DatasetError) as caught:
        datasets.load("image_folder", tmp_path)
    message = str(caught.value)
    assert message.startswith(f"{tmp_path / 'train' / '3' / 'truncated.jpg'}: not a readable image")
    assert "2 unreadable image(s) in all" in message and "skip_bad_images: true" in message
    assert jpg.exists()


def test_skip_bad_images_skips_and_lists_them(tmp_path, digits):
    save_digits(tmp_path / "train", *digits)
    (tmp_path / "train" / "5" / "noise.png").write_bytes(b"\x89PNG not really")
    with pytest.warns(UserWarning, match=r"skipped 1 unreadable image\(s\): .*train/5/noise\.png"):
        data = datasets.load("image_folder", tmp_path, skip_bad_images=True)["train"]
    assert len(data) == len(digits[0]) and "train/5/noise.png" not in data.sources


def test_a_class_whose_images_are_all_unreadable_is_refused_even_when_skipping(tmp_path, digits):
    save_digits(tmp_path / "train", *digits)
    (tmp_path / "train" / "junk").mkdir()
    (tmp_path / "train" / "junk" / "a.png").write_bytes(b"nope")
    with pytest.warns(UserWarning), pytest.raises(DatasetError, match="every image of class 'junk' was unreadable"):
        datasets.load("image_folder", tmp_path, skip_bad_images=True)


def test_empty_class_folder_missing_folders_and_unknown_test_class_are_named(tmp_path, digits):
    with pytest.raises(DatasetError, match="train: no such folder; set data_dir and train_folder"):
        datasets.load("image_folder", tmp_path)
    (tmp_path / "train").mkdir()
    with pytest.raises(DatasetError, match="no class sub-folders; expected"):
        datasets.load("image_folder", tmp_path)
    save_digits(tmp_path / "train", *digits)
    (tmp_path / "train" / "7" / "notes.txt").write_text("not an image")
    for image in (tmp_path / "train" / "7").glob("*.png"):
        image.unlink()
    with pytest.warns(UserWarning, match="ignored 1 file"), pytest.raises(DatasetError, match=r"7: empty class folder"):
        datasets.load("image_folder", tmp_path)
    save_digits(tmp_path / "train", *digits)
    (tmp_path / "train" / "7" / "notes.txt").unlink()
    (tmp_path / "test" / "eleven").mkdir(parents=True)
    Image.new("L", (28, 28)).save(tmp_path / "test" / "eleven" / "a.png")
    with pytest.raises(DatasetError, match="class 'eleven' is in the test set but not among the training classes"):
        datasets.load("image_folder", tmp_path)


def test_many_files_decode_in_worker_processes_to_the_same_arrays(tmp_path, digits, monkeypatch):
    save_digits(tmp_path / "train", *digits, suffix="jpg")
    one_process = datasets.load("image_folder", tmp_path)["train"]
    monkeypatch.setattr(images, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(images.os, "cpu_count", lambda: 2)
    pooled = datasets.load("image_folder", tmp_path)["train"]
    assert np.array_equal(one_process.images, pooled.images) and one_process.sources == pooled.sources


# --- load() options and warnings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "options, message",
    [
        ({"channels": 2}, "channels must be 1 (grayscale) or 3 (RGB), got 2"),
        ({"image_size": "28"}, "image_size must be an integer"),
        ({"image_size": 4}, "image_size"),
        ({"skip_bad_images": "false"}, "skip_bad_images must be true or false"),
        ({"train_folder": 7}, "train_folder must be a string"),
    ],
)
def test_options_are_checked_before_any_file_is_read(tmp_path, options, message):
    with pytest.raises(ParameterError) as caught:
        datasets.load("image_folder", tmp_path / "does-not-exist", **options)
    assert message in str(caught.value)


def test_heavy_imbalance_and_train_test_duplicates_are_warned_about(tmp_path, digits):
    pictures, labels = digits
    keep = (labels != 4) | (np.arange(len(labels)) == 4)  # leave class 4 with one image
    rich = np.concatenate([pictures[keep]] + [pictures[labels == 1]] * 12)
    rich_labels = np.concatenate([labels[keep]] + [labels[labels == 1]] * 12)
    write_kaggle_csv(tmp_path / "train.csv", rich, rich_labels)
    write_kaggle_csv(tmp_path / "test.csv", pictures[:5])  # five training images again
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        datasets.load("kaggle_csv", tmp_path)
    messages = [str(w.message) for w in caught]
    assert any(m.startswith("heavily imbalanced classes: '1' has 78 training images, '4' only 1") for m in messages), messages
    assert any(m.startswith("5 distinct image(s) appear in both train and test") for m in messages), messages


def test_clean_data_loads_without_warnings(kaggle):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        datasets.load("kaggle_csv", kaggle)
