"""The model registry: exact parameter counts of the reference models, other shapes, unknown names."""

from __future__ import annotations

import pytest

from mnist_lib.models import MODELS, build_model

REFERENCE_COUNTS = {  # (input shape, parameters) as published by the reference notebooks
    "mlp": ((28, 28, 1), 623_290),
    "baseline": ((28, 28, 1), 607_394),
    "cnn_small": ((28, 28, 1), 93_322),
    "cnn_kaggle": ((28, 28, 1), 887_530),
    "cnn_wide": ((28, 28, 3), 2_006_762),
    "cnn_strong": ((28, 28, 1), 160_298),  # ours, the default
}


@pytest.mark.parametrize("name", sorted(REFERENCE_COUNTS))
def test_reference_models_have_their_published_parameter_counts(name):
    shape, count = REFERENCE_COUNTS[name]
    assert build_model(name, shape, 10).count_params() == count


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_builds_for_15_classes_at_32x32_rgb(name):
    model = build_model(name, (32, 32, 3), 15)
    assert model.output_shape == (None, 15)


def test_unknown_model_name_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown model 'resnet9'; known models: baseline, cnn_kaggle, cnn_small"):
        build_model("resnet9", (28, 28, 1), 10)
