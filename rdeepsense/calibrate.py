"""Temperature scaling on validation users, folded into the model (one pass, exportable).

A split that names validation users (``loso:f+val:e``, `deepsense.data.splits`) validates on
users the model has never fitted, so a temperature fitted there corrects the confidence the
model has on *new* users, which windows of the training users cannot show (every model is
nearly perfect on them). ``softmax(logits / T)`` becomes the model itself by dividing the
``logits`` Dense's kernel and bias by T: the exported bundle needs nothing new.

T is fitted in [1, 50]: it may soften, never sharpen. Validation users the model gets (almost)
all right pull the NLL-optimal T toward 0, a fit the data cannot support and that is
ruinous on a user with mistakes (BENCHMARKS.md: T = 0.25 fitted on synthetic user e raised
the test NLL on user f from 0.31 to 2.80).
"""

from __future__ import annotations

import keras
import numpy as np

from deepsense.config import TrainConfig
from deepsense.data.prepared import PreparedDataset
from deepsense.data.splits import parse_validation_users
from deepsense.model import LOGITS_NAME
from deepsense.run import split_rows
from edge.calibration import classification_calibration
from rdeepsense.predictors import make_logits
from rdeepsense.temperature import T_BOUNDS, apply_temperature, fit_temperature

#: Temperatures fitted on validation users: softening only (see the module docstring).
BOUNDS = (1.0, T_BOUNDS[1])


def fold_temperature(model: keras.Model, temperature: float) -> None:
    """Divide the ``logits`` layer's kernel and bias by `temperature`, in place."""
    if not temperature > 0:
        raise ValueError(f"temperature expected > 0. Received: temperature={temperature}")
    dense = model.get_layer(LOGITS_NAME)
    dense.kernel.assign(dense.kernel / temperature)
    dense.bias.assign(dense.bias / temperature)


def calibrate_on_validation_users(model: keras.Model, ds: PreparedDataset,
                                  train: TrainConfig) -> dict | None:
    """Fit T on the split's validation users and fold it into `model` (classification).

    Returns:
        run.json's ``calibration``: {"temperature", "fitted_on", "validation_nll_before",
        "validation_nll_after", "validation_ece_before", "validation_ece_after"}; None (and
        `model` unchanged) for regression or a split without validation users.
    """
    users = parse_validation_users(train.split)[1]
    if users is None or train.task == "regression":
        return None
    rows = split_rows(ds, train).validation
    y = ds.labels(train.task)[rows]
    predict = make_logits(model)
    logits = np.concatenate([predict(ds.x[rows[i:i + 256]]) for i in range(0, len(rows), 256)])
    temperature = fit_temperature(logits, y, BOUNDS)
    before = classification_calibration(y, apply_temperature(logits, 1.0))
    after = classification_calibration(y, apply_temperature(logits, temperature))
    fold_temperature(model, temperature)
    return {"temperature": round(temperature, 6), "fitted_on": f"validation users {users}",
            "validation_nll_before": float(before["nll"]),
            "validation_nll_after": float(after["nll"]),
            "validation_ece_before": float(before["ece"]),
            "validation_ece_after": float(after["ece"])}
