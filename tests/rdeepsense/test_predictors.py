import keras
import numpy as np
import pytest

from deepsense.config import ModelConfig
from deepsense.data.features import FeatureConfig
from deepsense.model import build_deepsense
from rdeepsense.heads import add_uncertainty_head
from rdeepsense.predictors import (combine_samples, make_ensemble, make_mc_dropout,
                                   make_one_pass, make_temperature_scaled)

TINY = ModelConfig(conv_filters=4, merge_filters=4, gru_units=(6, 6))


@pytest.fixture
def x():
    return np.random.default_rng(0).normal(size=(3, 20, 120)).astype(np.float32)


def test_combine_samples_moment_matches_a_gaussian_mixture():
    samples = np.array([[[0.0, 1.0], [2.0, 3.0]]])  # one window, two (mean, variance) samples
    np.testing.assert_allclose(combine_samples(samples, "gaussian_mean_variance"),
                               [[1.0, 2.0 + 1.0]])
    np.testing.assert_allclose(combine_samples(samples, "probabilities"), [[1.0, 2.0]])
    with pytest.raises(ValueError, match="layout"):
        combine_samples(samples, "logits")


def test_mc_dropout_without_dropout_equals_one_pass_so_batchnorm_is_frozen(x):
    config = ModelConfig(conv_filters=4, merge_filters=4, gru_units=(6, 6), conv_dropout=0.0,
                         gru_dropout=0.0)
    model = add_uncertainty_head(build_deepsense(FeatureConfig(), 3, "activity", config),
                                 "activity", 3, dropout=0.0)
    np.testing.assert_allclose(make_mc_dropout(model, 4, "probabilities")(x),
                               make_one_pass(model)(x), atol=1e-6)
    assert all(layer.trainable for layer in model.layers), "the caller's model is unchanged"


def test_mc_dropout_averages_varying_passes(x):
    model = build_deepsense(FeatureConfig(), 3, "activity", TINY)
    single = make_mc_dropout(model, 1, "probabilities")
    assert not np.allclose(single(x), single(x)), "dropout is on"
    out = make_mc_dropout(model, 10, "probabilities", max_rows=20)(x)  # 2 windows per call
    assert out.shape == (3, 3)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_ensemble_of_copies_and_unit_temperature_reproduce_the_model(x):
    model = build_deepsense(FeatureConfig(), 3, "activity", TINY)
    expected = make_one_pass(model)(x)
    np.testing.assert_allclose(make_ensemble([model, model], "probabilities")(x), expected,
                               atol=1e-6)
    np.testing.assert_allclose(make_temperature_scaled(model, 1.0)(x), expected, atol=1e-5)


def test_regression_ensemble_returns_mean_and_variance(x):
    model = add_uncertainty_head(build_deepsense(FeatureConfig(), 1, "regression", TINY),
                                 "regression", 1)
    other = keras.models.clone_model(model)
    out = make_ensemble([model, other], "gaussian_mean_variance")(x)
    assert out.shape == (3, 2) and np.all(out[:, 1] > 0)
