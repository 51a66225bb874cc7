"""Calibration on validation users, folded into the model (one pass, exportable).

A split that names validation users (``loso:f+val:e``, `deepsense.data.splits`) validates on
users the model has never fitted, so a correction fitted there fixes the confidence the
model has on *new* users, which windows of the training users cannot show (every model is
nearly perfect on them). Both corrections become the model itself:

- classification, temperature scaling: ``softmax(logits / T)`` by dividing the ``logits``
  Dense's kernel and bias by T;
- Gaussian regression, variance scaling (Levi et al., 2019): variance * s, with s the
  GaussianHead's ``variance_scale``, which the export writes into the bundle's graph.

T is fitted in [1, 50]: it may soften, never sharpen. Validation users the model gets (almost)
all right pull the NLL-optimal T toward 0, a fit the data cannot support and that is
ruinous on a user with mistakes (BENCHMARKS.md: T = 0.25 fitted on synthetic user e raised
the test NLL on user f from 0.31 to 2.80).

s minimises the Gaussian NLL on the validation windows, in closed form
``s = mean((y - mean)^2 / variance)`` over windows and targets, clipped to `SCALE_BOUNDS`
[1, 100]: like T, it may widen the intervals, never narrow them. Allowed to narrow, s fitted
on synthetic user e (wide intervals there) ruined user f, about right before (2 seeds: s 0.24
and 0.36, held-out NLL -0.03 -> 0.90 and -0.01 -> 0.58, 50/90/95% coverage 54-57/86-89/92 ->
35-43/64-67/69-73).

A compressed model is first matched to its original (`match_variance_scale`, label-free, on
the validation windows): fine-tuning left DeepIoT's intervals about 2.5x too wide
(coverage 79-80/98-100/100 on user f, where the original had 54-57/86-89/92), which the
validation users, fitted well by both, cannot see.
"""

from __future__ import annotations

import math

import keras
import numpy as np

from deepsense.config import TrainConfig
from deepsense.data.prepared import PreparedDataset
from deepsense.data.splits import parse_validation_users
from deepsense.model import LOGITS_NAME
from deepsense.run import split_rows
from edge.calibration import classification_calibration, regression_calibration
from rdeepsense.heads import GAUSSIAN_NAME
from rdeepsense.predictors import make_logits, make_one_pass
from rdeepsense.temperature import T_BOUNDS, apply_temperature, fit_temperature

#: Temperatures fitted on validation users: softening only (see the module docstring).
BOUNDS = (1.0, T_BOUNDS[1])

#: Variance scales fitted on validation users: widening only (see the module docstring).
SCALE_BOUNDS = (1.0, 1e2)
#: Scales matching a compressed model to its original: std x0.1 to x10; beyond, the
#: compressed head is broken, not miscalibrated.
MATCH_BOUNDS = (1e-2, 1e2)

#: Windows per model call on the validation users.
BATCH = 256


def fold_temperature(model: keras.Model, temperature: float) -> None:
    """Divide the ``logits`` layer's kernel and bias by `temperature`, in place."""
    if not temperature > 0:
        raise ValueError(f"temperature expected > 0. Received: temperature={temperature}")
    dense = model.get_layer(LOGITS_NAME)
    dense.kernel.assign(dense.kernel / temperature)
    dense.bias.assign(dense.bias / temperature)


def scale_variance(model: keras.Model, factor: float) -> None:
    """Multiply the ``mean_variance`` GaussianHead's variance_scale by `factor`, in place.

    The model's compiled Keras functions are dropped: they hold the old scale as a constant.
    """
    if not (math.isfinite(factor) and factor > 0):
        raise ValueError(f"factor expected a finite number > 0. Received: factor={factor}")
    model.get_layer(GAUSSIAN_NAME).variance_scale *= factor
    model.train_function = model.test_function = model.predict_function = None


def fit_variance_scale(y: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> float:
    """The NLL-optimal s for variance * s, mean((y - mean)^2 / variance), in `SCALE_BOUNDS`
    and rounded to 6 significant digits (the value run.json records is the one applied).

    Args:
        y, mean, variance: (n, k) targets and predictive mean and variance (variance > 0).
    """
    z2 = float(np.mean((y - mean) ** 2 / variance))
    return float(f"{np.clip(z2, *SCALE_BOUNDS):.6g}")


def match_variance_scale(model: keras.Model, original: keras.Model, x: np.ndarray) -> float:
    """Multiply `model`'s variance by the s that makes its Gaussians closest to `original`'s
    on windows `x` (n, T, F), in place; returns s.

    s minimises the mean KL(N(mean_o, var_o) || N(mean_m, s var_m)):
    ``s = mean((var_o + (mean_o - mean_m)^2) / var_m)`` over windows and targets, in
    `MATCH_BOUNDS`, rounded to 6 significant digits.
    """
    rows = np.arange(len(x))
    out_o, out_m = (_predict(make_one_pass(m), x, rows).astype(np.float64)
                    for m in (original, model))
    k = out_m.shape[1] // 2
    ratio = (out_o[:, k:] + (out_o[:, :k] - out_m[:, :k]) ** 2) / out_m[:, k:]
    scale = float(f"{np.clip(float(np.mean(ratio)), *MATCH_BOUNDS):.6g}")
    scale_variance(model, scale)
    return scale


def _predict(predict, x: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return np.concatenate([predict(x[rows[i:i + BATCH]]) for i in range(0, len(rows), BATCH)])


def _calibrate_regression(model: keras.Model, ds: PreparedDataset, rows: np.ndarray) -> dict:
    """Fit s on `rows` and multiply it into `model`'s variance_scale; the metrics."""
    out = _predict(make_one_pass(model), ds.x, rows).astype(np.float64)
    k = out.shape[1] // 2
    mean, variance = out[:, :k], out[:, k:]
    y = ds.labels("regression")[rows].reshape(mean.shape).astype(np.float64)
    scale = fit_variance_scale(y, mean, variance)
    before = regression_calibration(y, mean, variance)
    after = regression_calibration(y, mean, scale * variance)
    scale_variance(model, scale)
    metrics = {f"validation_{name}_{when}": float(values[name])
               for name in ("nll", "coverage_50", "coverage_90", "coverage_95")
               for when, values in (("before", before), ("after", after))}
    return {"variance_scale": scale,
            "head_variance_scale": model.get_layer(GAUSSIAN_NAME).variance_scale, **metrics}


def calibrate_on_validation_users(model: keras.Model, ds: PreparedDataset,
                                  train: TrainConfig) -> dict | None:
    """Fit T (classification) or s (regression) on the split's validation users and fold it
    into `model`.

    Returns:
        run.json's ``calibration``, None (and `model` unchanged) for a split without
        validation users. Classification: {"temperature", "fitted_on",
        "validation_nll_before", "validation_nll_after", "validation_ece_before",
        "validation_ece_after"}. Regression: {"variance_scale" (s fitted here),
        "head_variance_scale" (the head's scale now: s times the scale it had), "fitted_on",
        "validation_nll_before"/"_after" (nats per target value) and
        "validation_coverage_50"/"_90"/"_95" "_before"/"_after" (fractions)}.
    """
    users = parse_validation_users(train.split)[1]
    if users is None:
        return None
    rows = split_rows(ds, train).validation
    if train.task == "regression":
        return {**_calibrate_regression(model, ds, rows), "fitted_on": f"validation users {users}"}
    y = ds.labels(train.task)[rows]
    logits = _predict(make_logits(model), ds.x, rows)
    temperature = fit_temperature(logits, y, BOUNDS)
    before = classification_calibration(y, apply_temperature(logits, 1.0))
    after = classification_calibration(y, apply_temperature(logits, temperature))
    fold_temperature(model, temperature)
    return {"temperature": round(temperature, 6), "fitted_on": f"validation users {users}",
            "validation_nll_before": float(before["nll"]),
            "validation_nll_after": float(after["nll"]),
            "validation_ece_before": float(before["ece"]),
            "validation_ece_after": float(after["ece"])}
