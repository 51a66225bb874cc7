"""Uncertainty heads on a DeepSense body (functional Keras, stable layer names).

`add_uncertainty_head` takes any model built by `deepsense.model.build_deepsense`, keeps
everything up to its masked temporal mean (``temporal_mean``, (b, units)) unchanged, and adds:

- ``head_dropout``: Dropout, active in training only (the implicit Bayesian approximation);
- ``logits``: Dense, C class logits or 2k Gaussian parameters;
- classification: ``probabilities`` Softmax -> output (b, C) class probabilities;
- regression: ``mean_variance`` GaussianHead -> output (b, 2k) = [mean (k), variance (k)],
  variance in target units squared, always in variance_scale * [min_variance, max_variance]
  (variance_scale is 1 until `rdeepsense.calibrate` fits it on validation users).

One forward pass (dropout off) gives the whole predictive distribution, no sampling.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from deepsense.model import LOGITS_NAME, POOLED_NAME

HEAD_DROPOUT_NAME = "head_dropout"
PROBABILITIES_NAME = "probabilities"
GAUSSIAN_NAME = "mean_variance"

#: Default dropout rate in front of the output layer.
HEAD_DROPOUT = 0.2


def bounded_variance(raw, min_variance: float, max_variance: float):
    """min_variance + clip(softplus(raw), 0, max_variance - min_variance), any shape."""
    return min_variance + ops.clip(ops.softplus(raw), 0.0, max_variance - min_variance)


@keras.saving.register_keras_serializable(package="rdeepsense")
class GaussianHead(keras.layers.Layer):
    """Gaussian parameters -> [mean, variance] with a positive, finite variance.

    ``variance = variance_scale * bounded_variance(raw, min_variance, max_variance)``:
    softplus keeps gradients alive for negative raw values, the floor keeps the NLL finite,
    and the ceiling keeps an exploding (even infinite) raw value finite.

    Args:
        min_variance: variance floor (target units squared), > 0.
        max_variance: variance ceiling, > min_variance.
        variance_scale: finite factor > 0 on the bounded variance: 1 for a new model, then
            what `rdeepsense.calibrate` fits (variance scaling); a thinned model starts
            from its original's.

    Input shape: (batch, 2k) = [mean (k), raw variance (k)]. Output shape: (batch, 2k) =
    [mean (k), variance (k)].
    """

    def __init__(self, min_variance: float = 1e-6, max_variance: float = 1e6,
                 variance_scale: float = 1.0, **kwargs):
        if not 0.0 < min_variance < max_variance:
            raise ValueError("GaussianHead expected 0 < min_variance < max_variance. Received: "
                             f"min_variance={min_variance}, max_variance={max_variance}")
        if not (math.isfinite(variance_scale) and variance_scale > 0):
            raise ValueError("GaussianHead variance_scale expected a finite number > 0. "
                             f"Received: variance_scale={variance_scale}")
        super().__init__(**kwargs)
        self.min_variance = float(min_variance)
        self.max_variance = float(max_variance)
        self.variance_scale = float(variance_scale)
        self.input_spec = keras.layers.InputSpec(ndim=2)
        self._build_at_init()

    def call(self, inputs):
        k = inputs.shape[-1] // 2
        variance = bounded_variance(inputs[:, k:], self.min_variance, self.max_variance)
        return ops.concatenate([inputs[:, :k], self.variance_scale * variance], axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "min_variance": self.min_variance,
                "max_variance": self.max_variance, "variance_scale": self.variance_scale}


def add_uncertainty_head(base: keras.Model, task: str, n_outputs: int, *,
                         dropout: float = HEAD_DROPOUT, weight_decay: float = 0.0,
                         name: str = "rdeepsense") -> keras.Model:
    """A new model: `base` up to ``temporal_mean``, then the uncertainty head.

    Args:
        base: a DeepSense model (any size); its layers and weights are shared, not copied.
        task: "activity"/"user" (classification) or "regression".
        n_outputs: classes C, or regression targets k.
        dropout: rate of ``head_dropout``.
        weight_decay: L2 coefficient of the released code (5e-4) for the ``logits`` kernel.
        name: model name.

    Returns:
        (batch, n_intervals, n_features) -> (batch, C) probabilities or (batch, 2k)
        [mean, variance].
    """
    if n_outputs < 1:
        raise ValueError(f"n_outputs expected a positive integer. Received: n_outputs={n_outputs}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout expected a rate in [0, 1). Received: dropout={dropout}")
    try:
        pooled = base.get_layer(POOLED_NAME).output
    except ValueError:
        raise ValueError(f"base model {base.name!r} has no layer {POOLED_NAME!r}; build it with "
                         "deepsense.model.build_deepsense") from None
    regression = task == "regression"
    regularizer = keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    x = keras.layers.Dropout(dropout, name=HEAD_DROPOUT_NAME)(pooled)
    x = keras.layers.Dense(2 * n_outputs if regression else n_outputs, name=LOGITS_NAME,
                           kernel_regularizer=regularizer)(x)
    x = GaussianHead(name=GAUSSIAN_NAME)(x) if regression else keras.layers.Softmax(
        name=PROBABILITIES_NAME)(x)
    return keras.Model(base.inputs, x, name=name)
