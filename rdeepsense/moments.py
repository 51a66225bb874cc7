"""Sampling-free uncertainty by moment propagation (ApDeepSense-style), for the last layers.

The dropout after the last GRU (``gru<N>_dropout``, rate p1, one mask per interval), the
masked temporal mean, the head dropout (``head_dropout``, rate p2; 0 for a plain model) and
the output Dense (``logits``) are replaced by their analytic first two moments, treating
dropout masks as independent Bernoulli variables (inverted dropout, as Keras does):

- after dropout + mean over the n valid intervals: mean mu = sum(h_t) / n,
  variance v = p1 / (1 - p1) * sum(h_t^2) / n^2;
- after the head dropout: mean mu, variance (v + p2 mu^2) / (1 - p2);
- after the Dense (W, b): mean W^T mu + b, variance (W^2)^T v' (independent inputs);
- classification: softmax(mean / sqrt(1 + pi/8 variance)) (probit approximation of the
  expected softmax, MacKay 1992); regression (GaussianHead): the predictive variance is the
  head's (scaled) variance of the mean raw value plus the propagated variance of the mean.

The convs and GRUs keep their deterministic inference path (the "partial" variant: only
the layers after the last GRU are propagated). The result has the same output layout as the
model and costs one forward pass.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from deepsense.model import read_topology
from rdeepsense.heads import GAUSSIAN_NAME, HEAD_DROPOUT_NAME, bounded_variance

OUTPUT_KINDS = ("probabilities", "gaussian")


def dense_moments(sequence, interval_mask, kernel, bias, sequence_rate: float,
                  head_rate: float):
    """Mean and variance of the output Dense under both dropouts (keras.ops; NumPy works).

    Args:
        sequence: (b, T, U) last-GRU outputs h_t.
        interval_mask: (b, T) bool, valid intervals.
        kernel: (U, m) and bias: (m,) of the output Dense.
        sequence_rate: p1, dropout rate on the GRU outputs, in [0, 1).
        head_rate: p2, dropout rate in front of the Dense, in [0, 1).

    Returns:
        (mean (b, m), variance (b, m)) of the Dense output.
    """
    sequence = ops.convert_to_tensor(sequence, "float32")
    weights = ops.expand_dims(ops.cast(interval_mask, sequence.dtype), axis=-1)
    count = ops.maximum(ops.sum(weights, axis=1), 1.0)
    mean = ops.sum(sequence * weights, axis=1) / count
    square_sum = ops.sum(ops.square(sequence) * weights, axis=1)
    variance = sequence_rate / (1.0 - sequence_rate) * square_sum / ops.square(count)
    variance = (variance + head_rate * ops.square(mean)) / (1.0 - head_rate)
    kernel = ops.convert_to_tensor(kernel, sequence.dtype)
    return (ops.matmul(mean, kernel) + ops.convert_to_tensor(bias, sequence.dtype),
            ops.matmul(variance, ops.square(kernel)))


@keras.saving.register_keras_serializable(package="rdeepsense")
class DropoutMomentHead(keras.layers.Layer):
    """The moment-propagated tail of a DeepSense model (see the module docstring).

    Args:
        units: outputs of the Dense (C classes, or 2k Gaussian parameters).
        sequence_rate: dropout rate after the last GRU.
        head_rate: dropout rate in front of the Dense (0 if there is none).
        output_kind: "probabilities" or "gaussian".
        min_variance, max_variance, variance_scale: the GaussianHead's bounds and scale
            (gaussian only; the scale multiplies the aleatoric variance, as in the head).

    Call arguments: ``sequence`` (b, T, U) float, ``interval_mask`` (b, T) bool.
    Output shape: (b, units): probabilities, or [mean (k), variance (k)].
    """

    def __init__(self, units: int, sequence_rate: float, head_rate: float, output_kind: str,
                 min_variance: float = 1e-6, max_variance: float = 1e6,
                 variance_scale: float = 1.0, **kwargs):
        if output_kind not in OUTPUT_KINDS:
            raise ValueError(f"output_kind expected one of {OUTPUT_KINDS}. "
                             f"Received: output_kind={output_kind!r}")
        for name, rate in (("sequence_rate", sequence_rate), ("head_rate", head_rate)):
            if not 0.0 <= rate < 1.0:
                raise ValueError(f"{name} expected a rate in [0, 1). Received: {name}={rate}")
        super().__init__(**kwargs)
        self.units = units
        self.sequence_rate = float(sequence_rate)
        self.head_rate = float(head_rate)
        self.output_kind = output_kind
        self.min_variance = float(min_variance)
        self.max_variance = float(max_variance)
        self.variance_scale = float(variance_scale)

    def build(self, sequence_shape, interval_mask_shape=None):
        self.kernel = self.add_weight(name="kernel", shape=(sequence_shape[-1], self.units))
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def compute_mask(self, sequence, previous_mask=None):
        return None  # the GRU's Keras mask ends here; `interval_mask` is passed explicitly

    def call(self, sequence, interval_mask):
        mean, variance = dense_moments(sequence, interval_mask, self.kernel, self.bias,
                                       self.sequence_rate, self.head_rate)
        if self.output_kind == "probabilities":
            return ops.softmax(mean / ops.sqrt(1.0 + math.pi / 8.0 * variance), axis=-1)
        k = self.units // 2
        aleatoric = self.variance_scale * bounded_variance(mean[:, k:], self.min_variance,
                                                           self.max_variance)
        total = aleatoric + variance[:, :k]
        return ops.concatenate([mean[:, :k], total], axis=-1)

    def compute_output_shape(self, sequence_shape, interval_mask_shape=None):
        return (sequence_shape[0], self.units)

    def get_config(self):
        return {**super().get_config(), "units": self.units,
                "sequence_rate": self.sequence_rate, "head_rate": self.head_rate,
                "output_kind": self.output_kind, "min_variance": self.min_variance,
                "max_variance": self.max_variance, "variance_scale": self.variance_scale}


def build_moment_model(model: keras.Model) -> keras.Model:
    """The same model with its tail replaced by `DropoutMomentHead` (weights shared/copied).

    Works for classification models (plain softmax or rdeepsense) and rdeepsense regression.

    Raises:
        ValueError: no ``gru<N>_dropout`` or ``logits`` layer, or a plain regression model.
    """
    names = {layer.name: layer for layer in model.layers}
    topology = read_topology(model)
    if (not topology.grus or len(topology.gru_dropouts) != len(topology.grus)
            or topology.logits not in names):
        raise ValueError(f"model {model.name!r} expected DeepSense layers 'gru<N>_dropout' and "
                         f"{topology.logits!r}; build it with build_deepsense/add_uncertainty_head")
    last = topology.grus[-1]
    if GAUSSIAN_NAME in names:
        kind = "gaussian"
        gaussian = names[GAUSSIAN_NAME]
        bounds = {"min_variance": gaussian.min_variance, "max_variance": gaussian.max_variance,
                  "variance_scale": gaussian.variance_scale}
    elif isinstance(model.layers[-1], keras.layers.Softmax):
        kind, bounds = "probabilities", {}
    else:
        raise ValueError("moment propagation needs class probabilities or a GaussianHead; "
                         f"model {model.name!r} ends in {model.layers[-1].name!r}")
    dense = names[topology.logits]
    head = DropoutMomentHead(
        dense.units, names[topology.gru_dropouts[-1]].rate,
        names[HEAD_DROPOUT_NAME].rate if HEAD_DROPOUT_NAME in names else 0.0, kind,
        name="moment_head", **bounds)
    outputs = head(names[last].output, names["interval_mask"].output)
    head.set_weights(dense.get_weights())
    return keras.Model(model.inputs, outputs, name=f"{model.name}_moments")
