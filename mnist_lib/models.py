"""Model registry: name -> Keras builder. Every model takes uint8-range pixels and scales them itself."""

from __future__ import annotations

from collections.abc import Callable

import keras
from keras import layers

Builder = Callable[..., keras.Model]
MODELS: dict[str, Builder] = {}


def register(name: str) -> Callable[[Builder], Builder]:
    """Add a builder to the registry under `name`."""

    def decorate(builder: Builder) -> Builder:
        MODELS[name] = builder
        return builder

    return decorate


def check_model_name(name: str) -> str:
    """Return `name` if it is registered, else raise a ValueError listing the known names."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(sorted(MODELS))}")
    return name


def build_model(name: str, input_shape: tuple[int, int, int], num_classes: int, **options) -> keras.Model:
    """Build registered model `name` for images of `input_shape` and `num_classes` classes."""
    model = MODELS[check_model_name(name)](tuple(input_shape), num_classes, **options)
    model.name = name
    return model


# One-pixel shifts (rows, columns) for test-time augmentation, each done by zero padding then cropping.
TTA_SHIFTS = ((0, 0), (-1, 0), (1, 0), (0, -1), (0, 1))


def _shifted(x: keras.KerasTensor, rows: int, columns: int) -> keras.KerasTensor:
    if (rows, columns) == (0, 0):
        return x
    padded = layers.ZeroPadding2D(1)(x)
    return layers.Cropping2D(((1 - rows, 1 + rows), (1 - columns, 1 + columns)))(padded)


def combine(members: list[keras.Model], input_shape: tuple[int, int, int], tta: bool = False) -> keras.Model:
    """One model that averages the members' softmax outputs, each over the input and, with `tta`, its copies
    shifted by one pixel up, down, left and right. Built from standard layers only, so it saves and loads in
    safe mode like any registry model. A single member without `tta` is returned as it is."""
    if len(members) == 1 and not tta:
        return members[0]
    if len(members) > 1:
        for index, member in enumerate(members):
            member.name = f"member{index}_{member.name}"
    inputs = keras.Input(shape=tuple(input_shape), name="pixels")
    views = [_shifted(inputs, *shift) for shift in (TTA_SHIFTS if tta else TTA_SHIFTS[:1])]
    outputs = [member(view) for member in members for view in views]
    name = f"ensemble{len(members)}" if len(members) > 1 else members[0].name
    return keras.Model(inputs, layers.Average(name="average")(outputs), name=f"{name}_tta" if tta else name)


def _scaled_input(input_shape: tuple[int, int, int]) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    inputs = keras.Input(shape=input_shape, name="pixels")
    return inputs, layers.Rescaling(1.0 / 255, name="scale")(inputs)


def _classifier(num_classes: int) -> layers.Dense:
    """Every model's output layer: logits and softmax in float32, also under a mixed-precision policy (where
    the layers before it compute in float16 or bfloat16); `calibration.calibrate` rescales its weights."""
    return layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier")


def _sequential(input_shape: tuple[int, int, int], body: list[layers.Layer]) -> keras.Model:
    inputs, x = _scaled_input(input_shape)
    for layer in body:
        x = layer(x)
    return keras.Model(inputs, x)


@register("mlp")
def mlp(input_shape, num_classes, hidden_activation: str = "relu") -> keras.Model:
    """One hidden layer as wide as the image (784 units for MNIST)."""
    width = input_shape[0] * input_shape[1] * input_shape[2]
    return _sequential(input_shape, [
        layers.Flatten(),
        layers.Dense(width, activation=hidden_activation),
        _classifier(num_classes),
    ])


@register("baseline")
def baseline(input_shape, num_classes) -> keras.Model:
    """The "baseline model" harness: one linear Conv2D(28), pooling, Dense(128), dropout."""
    return _sequential(input_shape, [
        layers.Conv2D(28, 3),
        layers.MaxPooling2D(2),
        layers.Flatten(),
        layers.Dense(128, activation="relu"),
        layers.Dropout(0.2),
        _classifier(num_classes),
    ])


@register("cnn_small")
def cnn_small(input_shape, num_classes) -> keras.Model:
    """The reference notebook's CNN: Conv32-Pool-Conv64-Pool-Conv64-Dense64 (93,322 parameters on MNIST)."""
    return _sequential(input_shape, [
        layers.Conv2D(32, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.MaxPooling2D(2),
        layers.Conv2D(64, 3, activation="relu"),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        _classifier(num_classes),
    ])


def _conv_bn(x: keras.KerasTensor, filters: int, size: int, strides: int = 1, padding: str = "valid") -> keras.KerasTensor:
    x = layers.Conv2D(filters, size, strides=strides, padding=padding, use_bias=False)(x)
    return layers.ReLU()(layers.BatchNormalization()(x))


@register("cnn_strong")
def cnn_strong(input_shape, num_classes, dropout: float = 0.3) -> keras.Model:
    """The default: batch-normalised 3x3 convolutions, 32-32/2-64-64/2-128 filters (two strided, no pooling),
    dropout before and after the last convolution. About 6.5 million multiply-adds per 28x28 image."""
    inputs, x = _scaled_input(input_shape)
    x = _conv_bn(x, 32, 3)
    x = _conv_bn(x, 32, 3, strides=2, padding="same")
    x = _conv_bn(x, 64, 3)
    x = _conv_bn(x, 64, 3, strides=2, padding="same")
    x = layers.Dropout(dropout)(x)
    x = _conv_bn(x, 128, 3)
    x = layers.Dropout(dropout)(layers.Flatten()(x))
    return keras.Model(inputs, _classifier(num_classes)(x))


@register("cnn_kaggle")
def cnn_kaggle(input_shape, num_classes) -> keras.Model:
    """The Kaggle CSV project's CNN: 2x Conv32(5x5), 2x Conv64(3x3), Dense256, with dropout."""
    return _sequential(input_shape, [
        layers.Conv2D(32, 5, padding="same", activation="relu"),
        layers.Conv2D(32, 5, padding="same", activation="relu"),
        layers.MaxPooling2D(2),
        layers.Dropout(0.25),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.Conv2D(64, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(2, strides=2),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(256, activation="relu"),
        layers.Dropout(0.5),
        _classifier(num_classes),
    ])


@register("cnn_wide")
def cnn_wide(input_shape, num_classes) -> keras.Model:
    """The JPG-folder project's CNN: Conv16-Conv32-Conv64 without pooling, then a wide Dense64."""
    return _sequential(input_shape, [
        layers.Conv2D(16, 3, activation="relu"),
        layers.Conv2D(32, 3, activation="relu"),
        layers.Conv2D(64, 3, activation="relu"),
        layers.Dropout(0.25),
        layers.Flatten(),
        layers.Dense(64, activation="relu"),
        _classifier(num_classes),
    ])
