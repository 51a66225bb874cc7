"""Fixtures for DeepIoT tests: a tiny DeepSense with non-trivial BatchNorm statistics."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from deepsense.config import ModelConfig
from deepsense.data.features import FeatureConfig
from deepsense.model import build_deepsense

TINY = ModelConfig(conv_filters=6, merge_filters=5, gru_units=(7, 4))


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(0)


def randomize_batch_norm(model: keras.Model, rng: np.random.Generator) -> None:
    """Give every BatchNorm layer arbitrary scales, offsets and moving statistics."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            shape = layer.gamma.shape
            layer.set_weights([rng.uniform(0.5, 1.5, shape), rng.normal(size=shape),
                               rng.normal(size=shape), rng.uniform(0.5, 2.0, shape)])


@pytest.fixture
def features() -> FeatureConfig:
    return FeatureConfig()


@pytest.fixture
def tiny_config() -> ModelConfig:
    return TINY


@pytest.fixture
def tiny_model(features, rng) -> keras.Model:
    """A tiny untrained DeepSense (6 classes) with random BatchNorm statistics."""
    model = build_deepsense(features, 6, config=TINY)
    randomize_batch_norm(model, rng)
    return model


@pytest.fixture
def windows(rng, features) -> np.ndarray:
    """(6, T, F) random windows, two of them with padded (all-zero) intervals."""
    x = rng.normal(size=(6, features.n_intervals, features.n_features)).astype(np.float32)
    x[1, 12:] = 0.0
    x[4, :3] = 0.0
    return x
