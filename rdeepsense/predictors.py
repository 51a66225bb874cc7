"""Inference modes compared in the benchmark: one pass, MC dropout, deep ensembles, temperature.

Each `make_*` returns a callable ``predict(x) -> outputs``: x (b, n_intervals, n_features)
float32 windows, outputs (b, width) NumPy in the layout of `edge.predictions`
("probabilities", or "gaussian_mean_variance" = [mean, variance]). Every model call runs
through one `tf.function`, so timings compare like with like.
"""

from __future__ import annotations

from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from deepsense.model import LOGITS_NAME
from rdeepsense.temperature import apply_temperature

Predictor = Callable[[np.ndarray], np.ndarray]
LAYOUTS = ("probabilities", "gaussian_mean_variance", "values")

#: Variance floor for a mixture of point predictions (plain regression under MC dropout).
MIN_VARIANCE = 1e-6


def _compiled(model: keras.Model, training: bool) -> Callable[[np.ndarray], np.ndarray]:
    call = tf.function(lambda x: model(x, training=training), reduce_retracing=True)
    return lambda x: call(tf.convert_to_tensor(x, tf.float32)).numpy()


def _check_layout(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"layout expected one of {LAYOUTS}. Received: layout={layout!r}")


def combine_samples(samples: np.ndarray, layout: str) -> np.ndarray:
    """Predictive distribution of s stochastic outputs per window.

    Args:
        samples: (b, s, width) outputs of s passes or s ensemble members.
        layout: "probabilities" (average), "gaussian_mean_variance" (moment-matched mixture:
            mean of means, mean variance + variance of means) or "values" (mean and
            variance of the point predictions).

    Returns:
        (b, C) probabilities or (b, 2k) [mean, variance].
    """
    _check_layout(layout)
    samples = np.asarray(samples, dtype=np.float64)
    if layout == "probabilities":
        return samples.mean(axis=1)
    if layout == "values":
        return np.concatenate([samples.mean(axis=1), samples.var(axis=1) + MIN_VARIANCE], axis=-1)
    k = samples.shape[-1] // 2
    means, variances = samples[..., :k], samples[..., k:]
    return np.concatenate([means.mean(axis=1), variances.mean(axis=1) + means.var(axis=1)],
                          axis=-1)


def make_one_pass(model: keras.Model) -> Predictor:
    """The model's own inference pass (dropout off): RDeepSense's predictive distribution."""
    return _compiled(model, training=False)


def _frozen_copy(model: keras.Model) -> keras.Model:
    """A clone whose BatchNorm layers stay in inference mode when called with training=True."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for layer in clone.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return clone


def make_mc_dropout(model: keras.Model, n_passes: int, layout: str,
                    max_rows: int = 2048) -> Predictor:
    """MC dropout (Gal & Ghahramani, 2016): n_passes stochastic passes with dropout on.

    The passes of a window run as one batch (the window repeated n_passes times), the
    fastest way to run them; BatchNorm uses its moving statistics (a frozen copy of
    `model`, so `model` itself is unchanged).

    Args:
        model: a trained model with dropout layers.
        n_passes: stochastic passes per window (10, 50).
        layout: output layout of `model` (see `combine_samples`).
        max_rows: most rows (windows x passes) per model call.
    """
    if n_passes < 1:
        raise ValueError(f"n_passes expected a positive integer. Received: n_passes={n_passes}")
    _check_layout(layout)
    call = _compiled(_frozen_copy(model), training=True)
    per_call = max(1, max_rows // n_passes)

    def predict(x: np.ndarray) -> np.ndarray:
        parts = []
        for start in range(0, len(x), per_call):
            chunk = np.repeat(np.asarray(x[start:start + per_call], np.float32), n_passes, axis=0)
            out = call(chunk)
            parts.append(combine_samples(out.reshape(-1, n_passes, out.shape[-1]), layout))
        return np.concatenate(parts)

    return predict


def make_ensemble(models: list[keras.Model], layout: str) -> Predictor:
    """A deep ensemble (Lakshminarayanan et al., 2017): members' outputs combined per window."""
    if not models:
        raise ValueError("make_ensemble expected at least one model. Received: []")
    _check_layout(layout)
    calls = [_compiled(model, training=False) for model in models]
    return lambda x: combine_samples(np.stack([call(x) for call in calls], axis=1), layout)


def make_logits(model: keras.Model) -> Predictor:
    """(b, C) pre-softmax outputs of the ``logits`` layer of a classification model."""
    return _compiled(keras.Model(model.inputs, model.get_layer(LOGITS_NAME).output), False)


def make_temperature_scaled(model: keras.Model, temperature: float) -> Predictor:
    """softmax(logits / temperature): temperature scaling of a classification model."""
    logits = make_logits(model)
    return lambda x: apply_temperature(logits(x), temperature)
