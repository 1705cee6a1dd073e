"""Prediction on image files: PNG or JPG of any size, either polarity, prepared to look like the training images."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from PIL import Image, ImageOps

from mnist_lib.images import READ_ERRORS

INVERT_CHOICES = ("auto", "yes", "no")
DIGIT_BOX = 20 / 28  # MNIST fits each digit in a 20x20 box of its 28x28 image, centred by mass
INK_LEVEL = 0.25  # after stretching the contrast, pixels above this share of full ink count as the digit
MIN_CONTRAST = 8  # grey levels between background and the brightest pixel; less is a blank image


@dataclass(frozen=True)
class FilePrediction:
    """The prediction for one file: classes with their probabilities, most probable first, or the error."""

    file: str
    top: tuple[tuple[str, float], ...] = ()
    inverted: bool = False
    error: str | None = None

    @property
    def prediction(self) -> str | None:
        """The most probable class (None if the file could not be read)."""
        return self.top[0][0] if self.top else None

    @property
    def probability(self) -> float | None:
        """Its probability."""
        return self.top[0][1] if self.top else None

    def as_dict(self) -> dict:
        """Plain data for JSON."""
        return {
            "file": self.file, "prediction": self.prediction, "probability": self.probability,
            "top": [{"class": name, "probability": p} for name, p in self.top], "inverted": self.inverted,
            "error": self.error,
        }


def class_names_for(model: keras.Model, names: list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Class names of the model's outputs: `names` if given (one per output), else 0, 1, 2, ..."""
    count = int(model.output_shape[-1])
    if names is None:
        return tuple(str(index) for index in range(count))
    if len(names) != count:
        raise ValueError(f"the model predicts {count} classes but {len(names)} class names were given: {', '.join(names)}")
    return tuple(names)


def _flatten_alpha(image: Image.Image) -> Image.Image:
    """Drop transparency onto a background that contrasts with the visible ink."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        alpha = np.asarray(image.getchannel("A"))
        ink = np.asarray(image.convert("L"))[alpha > 127]
        background = (255, 255, 255) if ink.size == 0 or ink.mean() < 128 else (0, 0, 0)
        flat = Image.new("RGB", image.size, background)
        flat.paste(image, mask=image.getchannel("A"))
        return flat
    return image


def _border_level(pixels: np.ndarray) -> float:
    """Median of the outermost rows and columns: the background's grey level."""
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    return float(np.median(border))


def _fit_digit(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    """MNIST's recipe: stretch the contrast, crop to the ink, fit it in the central box keeping its aspect,
    and place it so its centre of mass is the image centre."""
    background, peak = _border_level(pixels), float(pixels.max())
    if peak - background < MIN_CONTRAST:  # blank: nothing to centre
        return np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS))
    stretched = np.clip((pixels.astype(np.float32) - background) / (peak - background), 0, 1)
    rows, cols = np.nonzero(stretched > INK_LEVEL)
    crop = stretched[rows.min(): rows.max() + 1, cols.min(): cols.max() + 1]
    scale = min(DIGIT_BOX * height / crop.shape[0], DIGIT_BOX * width / crop.shape[1])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    patch = np.asarray(Image.fromarray((crop * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS))
    mass = patch.astype(np.float64)
    total = mass.sum() or 1.0
    centre_y = (mass.sum(axis=1) * np.arange(patch.shape[0])).sum() / total
    centre_x = (mass.sum(axis=0) * np.arange(patch.shape[1])).sum() / total
    top = int(np.clip(round((height - 1) / 2 - centre_y), 0, height - patch.shape[0]))
    left = int(np.clip(round((width - 1) / 2 - centre_x), 0, width - patch.shape[1]))
    canvas = np.zeros((height, width), dtype=np.uint8)
    canvas[top: top + patch.shape[0], left: left + patch.shape[1]] = patch
    return canvas


def prepare_image(image: Image.Image, image_shape: tuple[int, int, int], invert: str = "auto",
                  center: bool = True) -> tuple[np.ndarray, bool]:
    """An uint8 (h, w, c) array the model can take, and whether it was inverted.
    One-channel models get light ink on dark like MNIST (`invert="auto"` flips a light background) and, with
    `center`, the digit fitted and centred as MNIST's were; RGB images are only resized (and inverted on "yes")."""
    if invert not in INVERT_CHOICES:
        raise ValueError(f"invert must be one of {', '.join(INVERT_CHOICES)}, got {invert!r}")
    height, width, channels = image_shape
    image = _flatten_alpha(ImageOps.exif_transpose(image))
    if channels == 3:
        image = image.convert("RGB")
        flipped = invert == "yes"
        image = ImageOps.invert(image) if flipped else image
        return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS), dtype=np.uint8), flipped
    if channels != 1:
        raise ValueError(f"models taking {channels}-channel images are not supported (1 or 3)")
    pixels = np.asarray(image.convert("L"))
    flipped = invert == "yes" or (invert == "auto" and _border_level(pixels) > 127)
    pixels = 255 - pixels if flipped else pixels
    if center:
        pixels = _fit_digit(pixels, height, width)
    else:
        pixels = np.asarray(Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS))
    return pixels[..., np.newaxis].astype(np.uint8), flipped


def load_image(path: str | Path, image_shape: tuple[int, int, int], invert: str = "auto",
               center: bool = True) -> tuple[np.ndarray, bool]:
    """Read an image file and `prepare_image` it; a file that cannot be read raises a ValueError naming it."""
    path = Path(path)
    try:
        with Image.open(path) as image:
            image.load()
            return prepare_image(image, image_shape, invert, center)
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except READ_ERRORS as err:
        raise ValueError(f"{path}: cannot read it as an image ({err})") from None


def predict_files(model: keras.Model, paths: list[str | Path], class_names: tuple[str, ...] | None = None,
                  top: int = 1, invert: str = "auto", center: bool = True, batch_size: int = 256) -> list[FilePrediction]:
    """Predict each image file; an unreadable file gets its error in its result and the others are still predicted."""
    names = class_names_for(model, class_names)
    if not 1 <= top <= len(names):
        raise ValueError(f"top must be between 1 and {len(names)} (the model's classes), got {top}")
    image_shape = tuple(model.input_shape[1:])
    if len(image_shape) != 3 or None in image_shape:
        raise ValueError(f"the model takes inputs of shape {image_shape}; image files need a fixed (h, w, c)")
    results: list[FilePrediction | None] = []
    arrays, flips, positions = [], [], []
    for path in map(str, paths):
        try:
            array, flipped = load_image(path, image_shape, invert, center)
        except ValueError as err:
            results.append(FilePrediction(path, error=str(err)))
            continue
        positions.append(len(results))
        results.append(None)
        arrays.append(array)
        flips.append(flipped)
    if arrays:
        probabilities = model.predict(np.stack(arrays).astype(np.float32), batch_size=batch_size, verbose=0)
        for position, row, flipped in zip(positions, probabilities, flips):
            order = np.argsort(-row, kind="stable")[:top]
            results[position] = FilePrediction(
                str(paths[position]), tuple((names[i], float(row[i])) for i in order), flipped,
            )
    return results


def table(results: list[FilePrediction]) -> pd.DataFrame:
    """One row per file: prediction, probability, the top classes, whether it was inverted, the error."""
    return pd.DataFrame([
        {"file": r.file, "prediction": r.prediction, "probability": r.probability,
         "top": ", ".join(f"{name} ({p:.4f})" for name, p in r.top), "inverted": r.inverted, "error": r.error}
        for r in results
    ])
