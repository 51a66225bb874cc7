import numpy as np
import pytest

from edge.calibration import (brier_score, classification_calibration,
                                    expected_calibration_error, gaussian_nll, interval_coverage,
                                    negative_log_likelihood, regression_calibration,
                                    reliability_bins)


def _calibrated_toy(rng, n=200_000, n_classes=4):
    """A predictor whose confidence is exactly the chance of being right."""
    confidence = rng.uniform(1 / n_classes + 0.01, 1.0, n)
    predicted = rng.integers(0, n_classes, n)
    probs = np.empty((n, n_classes))
    probs[:] = ((1 - confidence) / (n_classes - 1))[:, None]
    probs[np.arange(n), predicted] = confidence
    y = (rng.random(n)[:, None] > probs.cumsum(axis=1)).sum(axis=1)  # y ~ probs, row by row
    return y, probs


def test_ece_of_a_calibrated_predictor_is_about_zero(rng):
    y, probs = _calibrated_toy(rng)
    assert expected_calibration_error(y, probs) < 0.01


def test_ece_of_an_overconfident_predictor_is_large(rng):
    y, probs = _calibrated_toy(rng)
    sharpened = probs ** 4 / (probs ** 4).sum(axis=1, keepdims=True)
    assert expected_calibration_error(y, sharpened) > 0.1


def test_reliability_bins_count_every_window_once():
    probs = np.array([[1.0, 0.0], [0.5, 0.5], [0.04, 0.96], [0.3, 0.7]])
    bins = reliability_bins(np.array([0, 1, 1, 0]), probs, n_bins=10)
    assert bins["count"].sum() == 4
    assert bins["count"][9] == 2  # 1.0 and 0.96 fall in (0.9, 1.0]
    assert bins["count"][4] == 1  # 0.5 falls in (0.4, 0.5]
    assert bins["accuracy"][9] == 1.0 and np.isnan(bins["accuracy"][0])


def test_nll_and_brier_match_hand_computed_values():
    probs = np.array([[0.8, 0.2], [0.4, 0.6]])
    y = np.array([0, 0])
    assert negative_log_likelihood(y, probs) == pytest.approx(-(np.log(0.8) + np.log(0.4)) / 2)
    assert brier_score(y, probs) == pytest.approx((0.08 + 0.72) / 2)
    metrics = classification_calibration(y, probs)
    assert metrics["accuracy"] == 0.5 and 0 < metrics["mean_entropy"] < np.log(2)


def test_classification_metrics_reject_bad_shapes_and_labels():
    with pytest.raises(ValueError, match="class indices"):
        negative_log_likelihood(np.array([2]), np.array([[0.5, 0.5]]))
    with pytest.raises(ValueError, match="probs"):
        brier_score(np.array([0, 1]), np.array([0.5, 0.5]))


def test_gaussian_coverage_matches_the_nominal_level(rng):
    mean = rng.normal(size=100_000)
    variance = rng.uniform(0.1, 4.0, size=mean.shape)
    y = mean + rng.normal(size=mean.shape) * np.sqrt(variance)
    for level in (0.5, 0.9, 0.95):
        assert interval_coverage(y, mean, variance, level) == pytest.approx(level, abs=0.01)
    metrics = regression_calibration(y, mean, variance)
    assert metrics["coverage_95"] == pytest.approx(0.95, abs=0.01)
    # too narrow intervals cover less and cost a higher NLL
    assert interval_coverage(y, mean, variance / 4, 0.9) < 0.7
    assert gaussian_nll(y, mean, variance / 4) > metrics["nll"]


def test_gaussian_nll_rejects_non_positive_variance():
    with pytest.raises(ValueError, match="variance"):
        gaussian_nll(np.zeros(2), np.zeros(2), np.array([1.0, 0.0]))
