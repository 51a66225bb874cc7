"""Metrics of model outputs against labels, shared by `evaluate` (Keras) and `predict` (edge).

NumPy only: classification accuracy, F1 and confusion matrix plus calibration (NLL, ECE,
Brier); regression errors plus, for a predicted variance, Gaussian NLL and interval coverage.
"""

from __future__ import annotations

import numpy as np

from edge.calibration import classification_calibration, regression_calibration
from edge.metrics import classification_metrics, regression_metrics


def score_outputs(y_true: np.ndarray, outputs: np.ndarray, task: str, layout: str | None,
                  class_names: list[str]) -> dict:
    """Metrics of (n, width) outputs for labels (n,).

    Args:
        layout: "probabilities", "gaussian_mean_variance" or "values" (run.json ``outputs``).
    """
    if task == "regression":
        metrics = regression_metrics(y_true, outputs[:, 0])
        if layout == "gaussian_mean_variance":
            n_targets = outputs.shape[1] // 2
            calibration = regression_calibration(y_true, outputs[:, 0], outputs[:, n_targets])
            metrics.update({k: round(v, 4) for k, v in calibration.items() if k not in metrics})
        return metrics
    metrics = classification_metrics(y_true, outputs, class_names)
    calibration = classification_calibration(y_true, outputs)
    metrics.update({k: round(v, 4) for k, v in calibration.items() if k not in metrics})
    return metrics
