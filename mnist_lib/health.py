"""Warnings about a training run that did not learn: validation accuracy near chance, or far below training accuracy."""

from __future__ import annotations

import pandas as pd

NEAR_CHANCE = 0.1  # best validation accuracy within this share of the way from chance to 100% counts as "near chance"
MAX_GAP = 0.25  # training accuracy above the best validation accuracy by more than this is "far below"


def check(history: pd.DataFrame, num_classes: int) -> list[str]:
    """Plain-words warnings about one network's history (columns accuracy, val_accuracy), each saying what was
    seen and what to try; empty when the run looks healthy."""
    chance = 1.0 / num_classes
    best_val = float(history["val_accuracy"].max())
    best_train = float(history["accuracy"].max())
    found = []
    if best_val < chance + NEAR_CHANCE * (1.0 - chance):
        found.append(
            f"validation accuracy never rose above {best_val:.1%}, near chance ({chance:.1%} for {num_classes} classes): "
            "the model learned nothing that carries over. Check that the validation images look like the training "
            "images (same channels, size and labels: see the split notebook's class counts), then try a lower "
            "learning_rate, more epochs, or the fast profile (params/profiles/fast.yaml).")
    elif best_train - best_val > MAX_GAP:
        found.append(
            f"training accuracy reached {best_train:.1%} but validation accuracy only {best_val:.1%}: the model fits "
            "the training images and not the validation images. With few training images this is over-fitting (try "
            "more augmentation: rotation, zoom, shift; or more images); a gap this wide can also mean validation "
            "images that differ from the training images (channels, size, labels) or, in a batch-normalised model, "
            "statistics that do not match the weights (summary.json records both figures).")
    return found
