"""Temperature scaling (Guo et al., 2017): one scalar T fitted on held-out logits (NumPy).

``probs = softmax(logits / T)``; T > 1 softens an overconfident model, accuracy is unchanged.
For export, T folds into the logits layer (kernel / T, bias / T: `rdeepsense.calibrate`).
"""

from __future__ import annotations

import math

import numpy as np

#: Search range of T; golden-section search on log T to a relative precision of ~1e-6.
T_BOUNDS = (0.05, 50.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (n, C) logits, float64, shifted by the row maximum for stability."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def apply_temperature(logits: np.ndarray, temperature: float) -> np.ndarray:
    """(n, C) probabilities softmax(logits / temperature)."""
    if not temperature > 0:
        raise ValueError(f"temperature expected > 0. Received: temperature={temperature}")
    return softmax(np.asarray(logits, dtype=np.float64) / temperature)


def _nll(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    z = logits / temperature
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: np.ndarray,
                    bounds: tuple[float, float] = T_BOUNDS) -> float:
    """The T in `bounds` that minimises the mean NLL of (logits, y).

    The NLL is convex in 1/T, hence unimodal in log T: a golden-section search finds it.

    Args:
        logits: (n, C) validation logits (not probabilities).
        y: (n,) true class indices.
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64).reshape(-1)
    if logits.ndim != 2 or len(y) != len(logits) or len(y) == 0:
        raise ValueError(f"expected logits (n, C) and y (n,) with n > 0. "
                         f"Received: {logits.shape}, {y.shape}")
    low, high = math.log(bounds[0]), math.log(bounds[1])
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    fa, fb = _nll(logits, y, math.exp(a)), _nll(logits, y, math.exp(b))
    while high - low > 1e-6:
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = _nll(logits, y, math.exp(a))
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = _nll(logits, y, math.exp(b))
    return math.exp(0.5 * (low + high))
