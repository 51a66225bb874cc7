"""Calibration metrics in plain NumPy: NLL, ECE, Brier, reliability bins, interval coverage.

Classification metrics take ``y`` (n,) class indices and ``probs`` (n, C) predicted
probabilities (rows sum to 1); regression metrics take ``y`` (n, k) or (n,) targets and the
Gaussian predictive ``mean`` and ``variance`` of the same shape. NLL is in nats per window
(per target value for regression). Used by `evaluate`, `predict` and benchmarks, never by the
MQTT gateway.
"""

from __future__ import annotations

import numpy as np

from edge.stats import PROB_FLOOR, entropy, normal_quantile

#: Equal-width confidence bins of the expected calibration error (Guo et al., 2017).
ECE_BINS = 15

#: Central predictive intervals whose coverage regression reports.
INTERVAL_LEVELS = (0.5, 0.9, 0.95)


def _check_classification(y: np.ndarray, probs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y).reshape(-1)
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[0] != y.shape[0] or y.shape[0] == 0:
        raise ValueError("expected y (n,) and probs (n, n_classes) with n > 0. "
                         f"Received: y {y.shape}, probs {probs.shape}")
    if y.min() < 0 or y.max() >= probs.shape[1]:
        raise ValueError(f"y expected class indices in [0, {probs.shape[1]}). "
                         f"Received: min {y.min()}, max {y.max()}")
    return y.astype(np.intp), probs  # np.intp: bincount refuses int64 on 32-bit platforms


def negative_log_likelihood(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean -log p(true class), nats; probabilities are floored at 1e-12."""
    y, probs = _check_classification(y, probs)
    picked = probs[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.clip(picked, PROB_FLOOR, 1.0))))


def brier_score(y: np.ndarray, probs: np.ndarray) -> float:
    """Mean over windows of sum_c (p_c - [c = y])^2; 0 is perfect, 2 the worst."""
    y, probs = _check_classification(y, probs)
    onehot = np.eye(probs.shape[1])[y]
    return float(np.mean(np.sum((probs - onehot) ** 2, axis=1)))


def reliability_bins(y: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> dict:
    """Confidence (max probability) against accuracy in equal-width bins (i/M, (i+1)/M].

    Returns:
        dict of (n_bins,) arrays: ``edges`` (n_bins + 1,), ``count``, ``confidence`` (mean
        max probability of the bin, NaN if empty) and ``accuracy`` (NaN if empty).
    """
    if n_bins < 1:
        raise ValueError(f"n_bins expected a positive integer. Received: n_bins={n_bins}")
    y, probs = _check_classification(y, probs)
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    index = np.clip(np.ceil(confidence * n_bins).astype(np.intp) - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.bincount(index, confidence, minlength=n_bins) / count
        accuracy = np.bincount(index, correct, minlength=n_bins) / count
    return {"edges": np.linspace(0.0, 1.0, n_bins + 1), "count": count.astype(np.int64),
            "confidence": mean_conf, "accuracy": accuracy}


def expected_calibration_error(y: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> float:
    """Sum over bins of (bin share) * |accuracy - confidence|; 0 is perfectly calibrated."""
    bins = reliability_bins(y, probs, n_bins)
    full = bins["count"] > 0
    gaps = np.abs(bins["accuracy"][full] - bins["confidence"][full])
    return float(np.sum(bins["count"][full] * gaps) / bins["count"].sum())


def classification_calibration(y: np.ndarray, probs: np.ndarray, n_bins: int = ECE_BINS) -> dict:
    """accuracy, nll, ece, brier, mean_confidence and mean_entropy (nats), as floats."""
    y, probs = _check_classification(y, probs)
    return {"accuracy": float(np.mean(probs.argmax(axis=1) == y)),
            "nll": negative_log_likelihood(y, probs),
            "ece": expected_calibration_error(y, probs, n_bins),
            "brier": brier_score(y, probs),
            "mean_confidence": float(np.mean(probs.max(axis=1))),
            "mean_entropy": float(np.mean(entropy(probs)))}


def _check_gaussian(y, mean, variance) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y, mean, variance = (np.asarray(a, dtype=np.float64) for a in (y, mean, variance))
    if not y.shape == mean.shape == variance.shape or y.size == 0:
        raise ValueError("expected y, mean and variance of one non-empty shape. "
                         f"Received: {y.shape}, {mean.shape}, {variance.shape}")
    if not np.all(variance > 0):
        raise ValueError(f"variance expected > 0 everywhere. Received: min {variance.min()}")
    return y, mean, variance


def gaussian_nll(y: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> float:
    """Mean of 0.5 * (log(2 pi variance) + (y - mean)^2 / variance), nats per value."""
    y, mean, variance = _check_gaussian(y, mean, variance)
    return float(np.mean(0.5 * (np.log(2 * np.pi * variance) + (y - mean) ** 2 / variance)))


def interval_coverage(y: np.ndarray, mean: np.ndarray, variance: np.ndarray,
                      level: float) -> float:
    """Share of targets inside the central `level` interval mean +- z * std (0.95 -> z 1.96)."""
    y, mean, variance = _check_gaussian(y, mean, variance)
    z = normal_quantile(0.5 + level / 2)
    return float(np.mean(np.abs(y - mean) <= z * np.sqrt(variance)))


def regression_calibration(y: np.ndarray, mean: np.ndarray, variance: np.ndarray,
                           levels: tuple[float, ...] = INTERVAL_LEVELS) -> dict:
    """nll, mae, rmse, mean_std and coverage_<percent> for each level, as floats."""
    y, mean, variance = _check_gaussian(y, mean, variance)
    metrics = {"nll": gaussian_nll(y, mean, variance),
               "mae": float(np.mean(np.abs(y - mean))),
               "rmse": float(np.sqrt(np.mean((y - mean) ** 2))),
               "mean_std": float(np.mean(np.sqrt(variance)))}
    for level in levels:
        metrics[f"coverage_{round(level * 100)}"] = interval_coverage(y, mean, variance, level)
    return metrics
