"""The tunable proper scoring rule of RDeepSense as Keras losses (pure keras.ops).

Classification, for probabilities p (b, C) and true classes y (b,):
``w * NLL + (1 - w) * Brier`` with NLL = -log p_y and Brier = sum_c (p_c - [c = y])^2.

Regression, for the head output [mean (b, k), variance (b, k)] and targets y (b, k):
``w * NLL + (1 - w) * MSE`` averaged over the k targets, with
NLL = 0.5 * (log(2 pi variance) + (y - mean)^2 / variance) and MSE = (y - mean)^2.

Both are proper scoring rules for any w in [0, 1] (a convex combination of proper rules
is proper); w trades the sharpness NLL rewards for the robustness of Brier/MSE to confident
mistakes. Registered under the package "rdeepsense", so compiled models reload without
`custom_objects`.
"""

from __future__ import annotations

import math

import keras
from keras import ops

#: Probabilities are clipped to [PROB_EPSILON, 1] inside the log (Keras' own epsilon).
PROB_EPSILON = 1e-7


def _check_weight(weight: float) -> None:
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"scoring weight expected a value in [0, 1]. Received: weight={weight}")


@keras.saving.register_keras_serializable(package="rdeepsense")
class ClassificationScoringLoss(keras.losses.Loss):
    """``weight * NLL + (1 - weight) * Brier`` per window, then the batch mean.

    Args:
        weight: w in [0, 1]; 1 is plain cross-entropy, 0 the Brier score alone.

    Inputs: y_true (b,) or (b, 1) class indices; y_pred (b, C) probabilities.
    """

    def __init__(self, weight: float = 0.25, name: str = "classification_scoring", **kwargs):
        _check_weight(weight)
        super().__init__(name=name, **kwargs)
        self.weight = float(weight)

    def call(self, y_true, y_pred):
        n_classes = y_pred.shape[-1]
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        onehot = ops.one_hot(labels, n_classes, dtype=y_pred.dtype)
        nll = -ops.sum(onehot * ops.log(ops.clip(y_pred, PROB_EPSILON, 1.0)), axis=-1)
        brier = ops.sum(ops.square(y_pred - onehot), axis=-1)
        return self.weight * nll + (1.0 - self.weight) * brier

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="rdeepsense")
class GaussianScoringLoss(keras.losses.Loss):
    """``weight * Gaussian NLL + (1 - weight) * MSE`` per window, averaged over targets.

    Args:
        weight: w in (0, 1]; the variance is only trained through the NLL term.

    Inputs: y_true (b, k) or (b,) targets; y_pred (b, 2k) [mean, variance], variance > 0.
    """

    def __init__(self, weight: float = 0.25, name: str = "gaussian_scoring", **kwargs):
        _check_weight(weight)
        if weight == 0.0:
            raise ValueError("GaussianScoringLoss expected weight > 0 (MSE alone never fits "
                             "the variance). Received: weight=0.0")
        super().__init__(name=name, **kwargs)
        self.weight = float(weight)

    def call(self, y_true, y_pred):
        k = y_pred.shape[-1] // 2
        mean, variance = y_pred[:, :k], y_pred[:, k:]
        target = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1, k))
        squared = ops.square(target - mean)
        nll = 0.5 * (ops.log(2.0 * math.pi * variance) + squared / variance)
        return ops.mean(self.weight * nll + (1.0 - self.weight) * squared, axis=-1)

    def get_config(self):
        return {**super().get_config(), "weight": self.weight}


@keras.saving.register_keras_serializable(package="rdeepsense")
def gaussian_mean_absolute_error(y_true, y_pred):
    """|y - mean| averaged over the k targets of a (b, 2k) [mean, variance] output: (b,)."""
    k = y_pred.shape[-1] // 2
    target = ops.reshape(ops.cast(y_true, y_pred.dtype), (-1, k))
    return ops.mean(ops.abs(target - y_pred[:, :k]), axis=-1)
