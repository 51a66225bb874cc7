import keras
import numpy as np
import pytest

from deepsense.config import ModelConfig
from deepsense.data.features import FeatureConfig
from deepsense.model import build_deepsense
from rdeepsense.heads import add_uncertainty_head
from rdeepsense.moments import build_moment_model, dense_moments

TINY = ModelConfig(conv_filters=4, merge_filters=4, gru_units=(6, 6))


def test_dense_moments_match_monte_carlo_dropout(rng):
    sequence = rng.normal(size=(2, 5, 3))
    mask = np.array([[True] * 5, [True, True, True, False, False]])
    kernel, bias = rng.normal(size=(3, 4)), rng.normal(size=4)
    p1, p2, n = 0.5, 0.2, 200_000
    keep1 = rng.random((n, 2, 5, 3)) >= p1  # Keras Dropout: one mask per element
    pooled = (sequence * keep1 / (1 - p1) * mask[..., None]).sum(2) / mask.sum(1)[:, None]
    outputs = (pooled * (rng.random((n, 2, 3)) >= p2) / (1 - p2)) @ kernel + bias
    mean, variance = (keras.ops.convert_to_numpy(a)
                      for a in dense_moments(sequence, mask, kernel, bias, p1, p2))
    np.testing.assert_allclose(mean, outputs.mean(0), atol=0.02)
    np.testing.assert_allclose(variance, outputs.var(0), rtol=0.03)


@pytest.mark.parametrize("task, n_outputs", [("activity", 3), ("regression", 1)])
def test_moment_model_without_dropout_equals_the_model(task, n_outputs):
    config = ModelConfig(conv_filters=4, merge_filters=4, gru_units=(6, 6), gru_dropout=0.0)
    base = build_deepsense(FeatureConfig(), n_outputs, task, config)
    model = add_uncertainty_head(base, task, n_outputs, dropout=0.0)
    if task == "regression":
        model.get_layer("mean_variance").variance_scale = 2.5  # a calibrated head
    x = np.random.default_rng(0).normal(size=(4, 20, 120)).astype(np.float32)
    x[1, 8:] = 0.0  # padded intervals
    np.testing.assert_allclose(build_moment_model(model).predict(x, verbose=0),
                               model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_moment_model_softens_probabilities_and_reloads(tmp_path):
    base = build_deepsense(FeatureConfig(), 3, "activity", TINY)
    moments = build_moment_model(base)  # a plain softmax model: only gru2_dropout counts
    x = np.random.default_rng(1).normal(size=(4, 20, 120)).astype(np.float32)
    out = moments.predict(x, verbose=0)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)
    assert np.all(out.max(axis=1) <= base.predict(x, verbose=0).max(axis=1) + 1e-6)
    moments.save(tmp_path / "m.keras")
    np.testing.assert_allclose(keras.saving.load_model(tmp_path / "m.keras").predict(x, verbose=0),
                               out, atol=1e-6)


def test_moment_model_refuses_plain_regression():
    with pytest.raises(ValueError, match="GaussianHead"):
        build_moment_model(build_deepsense(FeatureConfig(), 1, "regression", TINY))
