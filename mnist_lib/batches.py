"""Training and validation batches: the seeded tf.data input pipeline and its random affine augmentation."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from mnist_lib.recipe import TrainConfig
from mnist_lib.records import Dataset


def _plain(function):
    """`function` as tf.data traces it without AutoGraph's source rewrite: these functions have no Python control
    flow on tensors, so the rewrite changes nothing but costs about 0.3 s of every training run's start."""
    return tf.autograph.experimental.do_not_convert(function)


def input_pipeline(data: Dataset, batch_size: int) -> tf.data.Dataset:
    """Batches of (float32 pixels in 0..255, one-hot labels) from uint8 arrays, in order; the model scales."""
    pipeline = tf.data.Dataset.from_tensor_slices((data.images, data.labels)).batch(batch_size)
    pipeline = pipeline.map(
        _plain(lambda images, labels: (tf.cast(images, tf.float32), tf.one_hot(labels, data.num_classes))),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return pipeline.prefetch(tf.data.AUTOTUNE)


def random_affine(images: tf.Tensor, seed: tf.Tensor, rotation: float, zoom: float, shift: float) -> tf.Tensor:
    """Rotate each image by up to +-`rotation` degrees, scale it by 1 +- `zoom` and move it by up to +-`shift`
    of its size, about its centre, in one bilinear resampling; the draws depend on the stateless `seed` only."""
    count, height, width = tf.shape(images)[0], images.shape[1], images.shape[2]
    draws = tf.random.stateless_uniform([count, 4], seed=seed, minval=-1.0, maxval=1.0)
    angle = draws[:, 0] * (rotation * math.pi / 180.0)
    scale = 1.0 + draws[:, 1] * zoom
    move_x, move_y = draws[:, 2] * (shift * width), draws[:, 3] * (shift * height)
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    centre_x, centre_y = (width - 1) / 2.0, (height - 1) / 2.0
    # Each output pixel (x, y) samples the input at (cos*x - sin*y + a, sin*x + cos*y + b).
    a = centre_x - cos * (centre_x + move_x) + sin * (centre_y + move_y)
    b = centre_y - sin * (centre_x + move_x) - cos * (centre_y + move_y)
    zeros = tf.zeros_like(angle)
    transforms = tf.stack([cos, -sin, a, sin, cos, b, zeros, zeros], axis=1)
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=transforms, output_shape=[height, width], fill_value=0.0,
        interpolation="BILINEAR", fill_mode="NEAREST",
    )


def augmentation_examples(data: Dataset, config: TrainConfig, count: int = 6, copies: int = 5) -> np.ndarray:
    """The first `count` training images, each followed by `copies` augmented versions as training draws them:
    uint8, shape (count, copies + 1, height, width, channels)."""
    images = tf.cast(tf.constant(data.images[:count]), tf.float32)
    versions = [images] + [
        random_affine(images, tf.constant([config.seed, copy], tf.int64), config.rotation, config.zoom, config.shift)
        for copy in range(copies)
    ]
    return np.clip(np.round(np.stack([v.numpy() for v in versions], axis=1)), 0, 255).astype(np.uint8)


def training_batches(data: Dataset, config: TrainConfig, first_epoch: int, seed: int | None = None) -> tf.data.Dataset:
    """Shuffled (and, if configured, augmented) batches of epochs `first_epoch`..`config.epochs - 1`, one after
    another. Epoch e's order and augmentation depend on (seed, e) only, so a run resumed at epoch e sees the
    batches an uninterrupted run would have seen. Images stay uint8 until their batch is drawn."""
    seed = config.seed if seed is None else seed
    images, labels = tf.constant(data.images), tf.constant(data.labels)
    count, batch_size = len(data), config.batch_size

    def epoch_order(epoch: tf.Tensor) -> tf.data.Dataset:
        seeds = tf.stack([tf.constant(seed, tf.int64), epoch])
        order = tf.random.experimental.stateless_shuffle(tf.range(count, dtype=tf.int64), seed=seeds)
        batches = tf.data.Dataset.from_tensor_slices(order).batch(batch_size).enumerate()
        return batches.map(_plain(lambda step, index: (tf.stack([seeds[0], epoch * 2**20 + step]), index)))

    def draw(batch_seed: tf.Tensor, index: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        batch = tf.cast(tf.gather(images, index), tf.float32)
        if config.augments:
            batch = random_affine(batch, batch_seed, config.rotation, config.zoom, config.shift)
        return batch, tf.one_hot(tf.gather(labels, index), data.num_classes)

    pipeline = tf.data.Dataset.range(first_epoch, config.epochs).flat_map(_plain(epoch_order))
    return pipeline.map(_plain(draw), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
