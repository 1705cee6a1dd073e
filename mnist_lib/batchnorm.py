"""Batch-norm statistics recomputed from training images, so validation and the saved model never use stale averages."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

MAX_IMAGES = 4096  # training images the statistics are computed from (evenly spaced through the split)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every BatchNormalization layer of `model`, nested models included, in order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found += batch_norm_layers(layer)
    return found


def statistics_images(images: np.ndarray, limit: int = MAX_IMAGES) -> np.ndarray:
    """At most `limit` images, evenly spaced through `images` (all of them when there are fewer)."""
    if len(images) <= limit:
        return images
    return images[np.linspace(0, len(images) - 1, limit).round().astype(np.int64)]


class Recompute:
    """Replaces each batch-norm layer's moving mean and variance by the mean, over batches of training images,
    of the batch statistics the layer sees in training mode ("precise BN", Wu and Johnson 2021). Keras' moving
    averages (momentum 0.99) span about 100 steps: on a small dataset that is several epochs of a fast-changing
    network, so validation, the choice of the best epoch and the saved model would use stale statistics."""

    def __init__(self, model: keras.Model, images: np.ndarray, batch_size: int):
        self.layers = batch_norm_layers(model)
        self.images, self.batch_size = statistics_images(images), batch_size
        if self.layers:
            self._probe = keras.Model(model.inputs, [layer.input for layer in self.layers])
            self._moments = tf.function(self._batch_moments)

    def _batch_moments(self, batch: tf.Tensor) -> list[tuple[tf.Tensor, tf.Tensor]]:
        """Each layer's input mean and variance over one batch (all axes but the layer's), in training mode."""
        inputs = self._probe(batch, training=True)
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]  # one layer: Keras returns the tensor
        return [tf.nn.moments(tf.cast(x, tf.float32), axes=[a for a in range(x.shape.rank) if a != layer.axis % x.shape.rank])
                for layer, x in zip(self.layers, inputs)]

    def __call__(self) -> None:
        """Set every batch-norm layer's moving statistics from the training images (nothing without such layers)."""
        if not self.layers:
            return
        means = [np.zeros(layer.moving_mean.shape, np.float64) for layer in self.layers]
        variances = [np.zeros(layer.moving_variance.shape, np.float64) for layer in self.layers]
        for start in range(0, len(self.images), self.batch_size):
            batch = self.images[start:start + self.batch_size]
            weight = len(batch) / len(self.images)
            for index, (mean, variance) in enumerate(self._moments(tf.constant(batch, tf.float32))):
                means[index] += weight * mean.numpy()
                variances[index] += weight * variance.numpy()
        for layer, mean, variance in zip(self.layers, means, variances):
            # The probe ran the layers in training mode, which moved their averages: all are overwritten here.
            layer.moving_mean.assign(mean.astype(np.float32))
            layer.moving_variance.assign(variance.astype(np.float32))


class RecomputeBeforeValidation(keras.callbacks.Callback):
    """`Recompute` at the start of every validation inside `fit` (Keras runs it after the epoch's last step and
    before `on_epoch_end`), so the validation accuracy, the best-weights copy and the resume state all hold
    statistics of the weights they go with."""

    def __init__(self, recompute: Recompute):
        super().__init__()
        self.recompute = recompute

    def on_test_begin(self, logs: dict | None = None) -> None:
        self.recompute()
