"""Precise BatchNorm statistics: moving means and variances that describe the model as it is.

Keras keeps BatchNorm's inference statistics as exponential moving averages (momentum 0.99:
a horizon of ~100 optimiser steps). A small dataset trains for a few hundred steps while the
weights still move fast, so the averages mix statistics of many older networks and the
model behaves differently in inference mode than in training: on 825 HHAR-format windows
(~135 steps) it predicted two classes (accuracy 0.33) where batch statistics gave 0.70.

Here the statistics are recomputed from training windows with the current weights ("precise
BN", Wu & Johnson, "Rethinking 'Batch' in BatchNorm", 2021): one pass over up to
`max_windows` windows with every BatchNorm normalising with batch statistics, as in training,
and Dropout off, as in inference; each moving mean and variance becomes the mean over
batches of its input's per-channel batch mean and (biased) variance. `PreciseBatchNorm`
does it before every validation, so validation, early stopping and the kept checkpoint judge
the model as it will be used.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

import keras
import numpy as np
import tensorflow as tf

#: Windows a recalibration reads: enough for stable per-channel moments (the cost is one
#: forward pass over them), few enough to be cheap on every epoch of a large dataset.
DEFAULT_MAX_WINDOWS = 2048
#: Windows per forward pass (the statistics of larger batches are closer to the population's).
PROBE_BATCH_SIZE = 256


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """The model's top-level BatchNorm layers, in graph order."""
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


class BatchNormProbe:
    """A functional model re-wired to output the input of each of its BatchNorm layers.

    The layers (and weights) are shared with `model`; Dropout layers are skipped.

    Args:
        model: a functional Keras model with BatchNorm layers.
    """

    def __init__(self, model: keras.Model) -> None:
        inputs = [keras.Input(t.shape[1:], name=t.name) for t in model.inputs]
        captured: dict[str, keras.KerasTensor] = {}

        def call(layer, *args, **kwargs):
            if isinstance(layer, keras.layers.Dropout):  # incl. SpatialDropout2D/3D
                return args[0]
            if isinstance(layer, keras.layers.BatchNormalization):
                captured[layer.name] = args[0]
            return layer(*args, **kwargs)

        model._run_through_graph(inputs, operation_fn=lambda layer: layer, call_fn=call)
        self.model = model
        self.probe = keras.Model(inputs, captured, name=f"{model.name}_batch_norm_probe")
        self._run = tf.function(lambda batch: self.probe(batch, training=True),
                                reduce_retracing=True)

    def recalibrate(self, x: np.ndarray, batch_size: int = PROBE_BATCH_SIZE) -> None:
        """Set every BatchNorm's moving statistics from windows `x` (n, ...) in place."""
        probes = (self._run(tf.constant(x[start:start + batch_size], tf.float32))
                  for start in range(0, len(x), batch_size))
        assign_moments(self.model, mean_batch_moments(probes))


def mean_batch_moments(probes: Iterable[Mapping[str, Any]]
                       ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per BatchNorm layer name, the mean over batches of the per-channel batch mean and
    (biased) variance of the layer's input, each of shape (channels,), float64.

    Args:
        probes: per batch, {BatchNorm layer name: its input (batch, ..., channels)}.
    """
    sums: dict[str, list[np.ndarray]] = {}
    n_batches = 0
    for probe in probes:
        for name, value in probe.items():
            value = np.asarray(value, np.float64).reshape(-1, value.shape[-1])
            mean, var = value.mean(axis=0), value.var(axis=0)
            if name in sums:
                sums[name][0] += mean
                sums[name][1] += var
            else:
                sums[name] = [mean, var]
        n_batches += 1
    if not n_batches:
        raise ValueError("BatchNorm statistics expected at least one window")
    return {name: (m / n_batches, v / n_batches) for name, (m, v) in sums.items()}


def assign_moments(model: keras.Model,
                   moments: Mapping[str, tuple[np.ndarray, np.ndarray]]) -> None:
    """Write (mean, variance) per BatchNorm layer name into the layers' moving statistics."""
    for name, (mean, variance) in moments.items():
        layer = model.get_layer(name)
        layer.moving_mean.assign(np.asarray(mean, np.float32))
        layer.moving_variance.assign(np.asarray(variance, np.float32))


def sample_rows(rows: np.ndarray, max_windows: int = DEFAULT_MAX_WINDOWS,
                seed: int = 0) -> np.ndarray:
    """At most `max_windows` of `rows`, drawn at random, in their original order."""
    if len(rows) <= max_windows:
        return rows
    return np.sort(np.random.default_rng(seed).choice(rows, max_windows, replace=False))


def recalibrate_batch_norm(model: keras.Model, x: np.ndarray, *,
                           max_windows: int = DEFAULT_MAX_WINDOWS, seed: int = 0) -> None:
    """Recompute `model`'s BatchNorm statistics from (at most `max_windows` of) windows `x`."""
    if not batch_norm_layers(model):
        return
    rows = sample_rows(np.arange(len(x)), max_windows, seed)
    BatchNormProbe(model).recalibrate(x[rows])


class PreciseBatchNorm(keras.callbacks.Callback):
    """Recompute BatchNorm statistics before each validation (and at each epoch's end).

    Place it before checkpoint and early-stopping callbacks, so that what they judge and
    save has statistics of the current weights.

    Args:
        windows: (n, T, F) training windows to estimate from (a fixed random sample of the
            training side; augmented copies are fine: training saw them too).
    """

    def __init__(self, windows: np.ndarray) -> None:
        super().__init__()
        self.windows = windows
        self._probe: BatchNormProbe | None = None
        self._fresh = False

    def _recalibrate(self) -> None:
        if self._probe is None:
            self._probe = BatchNormProbe(self.model)
        self._probe.recalibrate(self.windows)
        self._fresh = True

    def on_epoch_begin(self, epoch, logs=None):
        self._fresh = False

    def on_test_begin(self, logs=None):
        if not self._fresh:
            self._recalibrate()

    def on_epoch_end(self, epoch, logs=None):
        if not self._fresh:  # no validation this epoch
            self._recalibrate()
