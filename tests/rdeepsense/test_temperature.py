import numpy as np
import pytest

from edge.calibration import negative_log_likelihood
from rdeepsense.temperature import apply_temperature, fit_temperature, softmax


def test_temperature_scaling_lowers_the_nll_of_an_overconfident_predictor(rng):
    n, n_classes = 5000, 5
    true_logits = rng.normal(0, 1.5, size=(n, n_classes))
    y = (rng.random(n)[:, None] > softmax(true_logits).cumsum(axis=1)).sum(axis=1)
    overconfident = 3.0 * true_logits
    temperature = fit_temperature(overconfident, y)
    assert temperature == pytest.approx(3.0, rel=0.1)
    before = negative_log_likelihood(y, softmax(overconfident))
    after = negative_log_likelihood(y, apply_temperature(overconfident, temperature))
    assert after < before - 0.3
    assert np.array_equal(apply_temperature(overconfident, temperature).argmax(1),
                          overconfident.argmax(1)), "accuracy is unchanged"


def test_apply_temperature_rejects_non_positive_values():
    with pytest.raises(ValueError, match="temperature"):
        apply_temperature(np.zeros((1, 2)), 0.0)


def test_fit_temperature_stays_within_the_given_bounds(rng):
    """A validation set the model gets all right pulls T to the lower bound (sharpening
    without limit lowers its NLL): the bounds are where that stops."""
    y = rng.integers(0, 4, size=200)
    confident_and_right = 4.0 * np.eye(4)[y]
    assert fit_temperature(confident_and_right, y) == pytest.approx(0.05, rel=1e-3)
    assert fit_temperature(confident_and_right, y, bounds=(1.0, 50.0)) == pytest.approx(1.0,
                                                                                        rel=1e-3)
