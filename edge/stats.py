"""Small probability helpers shared by calibration and predictions (NumPy and math only)."""

from __future__ import annotations

import math

import numpy as np

#: Probabilities are clipped to [PROB_FLOOR, 1] before taking logarithms.
PROB_FLOOR = 1e-12


def normal_quantile(p: float) -> float:
    """z such that P(Z <= z) = p for a standard normal Z (bisection on math.erf, ~1e-12).

    Raises:
        ValueError: p outside (0, 1).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"normal_quantile expected p in (0, 1). Received: p={p}")
    low, high = -40.0, 40.0
    for _ in range(100):
        mid = 0.5 * (low + high)
        if 0.5 * (1.0 + math.erf(mid / math.sqrt(2.0))) < p:
            low = mid
        else:
            high = mid
    return 0.5 * (low + high)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats over the last axis: (..., C) -> (...); 0 <= H <= log C."""
    p = np.asarray(probs, dtype=np.float64)
    return -np.sum(p * np.log(np.clip(p, PROB_FLOOR, 1.0)), axis=-1)
