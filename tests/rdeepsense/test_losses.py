import math

import numpy as np
import pytest

from rdeepsense.losses import (ClassificationScoringLoss, GaussianScoringLoss,
                               gaussian_mean_absolute_error)


def test_classification_loss_equals_the_hand_computed_value():
    probs = np.array([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]], np.float32)
    y = np.array([0, 1])
    # window 1: NLL -log 0.7, Brier 0.3^2 + 0.2^2 + 0.1^2 = 0.14
    # window 2: NLL -log 0.25, Brier 0.25^2 + 0.75^2 + 0.5^2 = 0.875
    w = 0.3
    expected = np.mean([w * -math.log(0.7) + (1 - w) * 0.14,
                        w * -math.log(0.25) + (1 - w) * 0.875])
    assert float(ClassificationScoringLoss(w)(y, probs)) == pytest.approx(expected, rel=1e-6)


def test_classification_loss_with_weight_one_is_cross_entropy():
    import keras

    probs = np.array([[0.6, 0.3, 0.1], [0.1, 0.1, 0.8]], np.float32)
    y = np.array([1, 2])
    expected = keras.losses.SparseCategoricalCrossentropy()(y, probs)
    assert float(ClassificationScoringLoss(1.0)(y, probs)) == pytest.approx(float(expected),
                                                                            rel=1e-6)


def test_gaussian_loss_equals_the_hand_computed_value():
    y = np.array([[1.0], [0.0]], np.float32)
    out = np.array([[0.5, 0.25], [1.0, 4.0]], np.float32)  # [mean, variance]
    w = 0.8
    nll = [0.5 * (math.log(2 * math.pi * 0.25) + 0.25 / 0.25),
           0.5 * (math.log(2 * math.pi * 4.0) + 1.0 / 4.0)]
    mse = [0.25, 1.0]
    expected = np.mean([w * n + (1 - w) * m for n, m in zip(nll, mse)])
    assert float(GaussianScoringLoss(w)(y, out)) == pytest.approx(expected, rel=1e-6)
    np.testing.assert_allclose(gaussian_mean_absolute_error(y, out), [0.5, 1.0])


@pytest.mark.parametrize("cls, weight", [(ClassificationScoringLoss, 1.5),
                                         (ClassificationScoringLoss, -0.1),
                                         (GaussianScoringLoss, 0.0)])
def test_losses_reject_weights_outside_their_range(cls, weight):
    with pytest.raises(ValueError, match="weight"):
        cls(weight)


def test_losses_round_trip_through_their_config():
    loss = GaussianScoringLoss(0.25)
    again = GaussianScoringLoss.from_config(loss.get_config())
    assert again.weight == 0.25 and again.name == loss.name
