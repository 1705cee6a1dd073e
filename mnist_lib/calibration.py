"""Temperature scaling: a softmax temperature fitted on validation and folded into the model's output layer."""

from __future__ import annotations

import math

import keras
import numpy as np

from mnist_lib.records import Dataset


def _nll(logits: np.ndarray, labels: np.ndarray, beta: float) -> float:
    """Mean negative log-likelihood of softmax(beta * logits) for the true labels."""
    scaled = beta * logits
    top = scaled.max(axis=1)
    log_norm = top + np.log(np.exp(scaled - top[:, None]).sum(axis=1))
    return float(np.mean(log_norm - scaled[np.arange(len(labels)), labels]))


def calibrate(model: keras.Model, val: Dataset) -> dict:
    """Temperature scaling (Guo et al., 2017): find the temperature T minimising the validation negative
    log-likelihood of softmax(logits / T), then fold 1/T into the output layer's kernel and bias, so the model
    outputs calibrated probabilities and still predicts the same classes (label smoothing, for one, leaves a
    network underconfident). Returns T and the validation NLL before and after."""
    head = model.layers[-1]
    if not isinstance(head, keras.layers.Dense) or head.activation is not keras.activations.softmax:
        raise ValueError(f"calibrate: {model.name}'s last layer must be a softmax Dense, not {type(head).__name__}")
    features = keras.Model(model.inputs, head.input).predict(val.images, batch_size=1024, verbose=0)
    kernel, bias = (np.asarray(weight, np.float64) for weight in head.get_weights())
    logits, labels = np.asarray(features, np.float64) @ kernel + bias, np.asarray(val.labels)
    # The NLL is convex in beta = 1/T: golden-section search over log(beta) in [log 0.01, log 100].
    low, high, ratio = math.log(0.01), math.log(100.0), (math.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if _nll(logits, labels, math.exp(a)) <= _nll(logits, labels, math.exp(b)):
            high = b
        else:
            low = a
    beta = math.exp((low + high) / 2)
    head.set_weights([(kernel * beta).astype(np.float32), (bias * beta).astype(np.float32)])
    return {"temperature": round(1 / beta, 4), "val_nll_before": round(_nll(logits, labels, 1.0), 5),
            "val_nll_after": round(_nll(logits, labels, beta), 5)}
