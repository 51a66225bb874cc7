"""The critic: a DeepSense model run with per-window unit masks (DeepIoT's masked network).

`MaskedNetwork` re-wires a DeepSense model's own layers (weights are shared, not copied)
into a model with one extra input per unit group, a (batch, n_units) vector of scales, and:

- a `UnitGate` after each pruned conv's ReLU (``x * scale`` per channel; the tied
  per-sensor convs share one input);
- a `GatedGRU` in place of each GRU: one mask for all time steps, applied to the recurrent
  state (a unit with scale 0 stays 0) and, scaled, to what the next layer reads;
- no Dropout: the sampled masks are DeepIoT's dropout, as in the original code.

Sampled binary masks make the critic of the compression phase; fixed scales (tiled over
the batch) make the deterministic masked model that `deepiot.thin` reproduces exactly.
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from deepiot.structure import PrunableStructure
from deepsense.batchnorm import mean_batch_moments

#: Name of the features input of a masked model; the scales of a unit group are the
#: input named ``<group>_scales``.
FEATURES_INPUT = "features"
SCALES_SUFFIX = "_scales"


class UnitGate(keras.layers.Layer):
    """Multiply each channel by a per-window scale.

    Call arguments: ``inputs`` (batch, ..., units) and ``scales`` (batch, units).
    Output shape: that of ``inputs``.
    """

    def call(self, inputs, scales):
        shape = (-1,) + (1,) * (len(inputs.shape) - 2) + (inputs.shape[-1],)
        return inputs * ops.reshape(ops.cast(scales, inputs.dtype), shape)

    def compute_output_shape(self, inputs_shape, scales_shape):
        return inputs_shape


class _GatedGRUCell(keras.layers.Layer):
    """A GRU cell whose new state is gated: state ``1[s > 0] * h``, output ``s * h``.

    Its step input is the layer input with the unit scales ``s`` appended (units last).
    """

    def __init__(self, cell: keras.layers.GRUCell, **kwargs):
        super().__init__(**kwargs)
        self.cell = cell
        self.units = cell.units
        self.state_size = cell.units
        self.output_size = cell.units

    def build(self, input_shape):
        self.built = True  # the wrapped cell is built and trained already

    def call(self, inputs, states, training=False):
        scales = inputs[:, -self.units:]
        h, _ = self.cell(inputs[:, :-self.units], states, training=training)
        state = h * ops.cast(ops.greater(scales, 0.0), h.dtype)
        return h * scales, [state]


class GatedGRU(keras.layers.Layer):
    """Run a trained GRU cell with unit scales: the same mask at every time step.

    Args:
        cell: the GRUCell of the layer being masked (its weights are shared).
        unroll: unroll the time loop, as the original layer does.

    Call arguments: ``sequences`` (batch, T, features), ``scales`` (batch, units) and
    ``mask`` (batch, T) bool valid intervals. Output shape: (batch, T, units).
    """

    def __init__(self, cell: keras.layers.GRUCell, unroll: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the interval mask passes through, as with a GRU
        self.units = cell.units
        self.rnn = keras.layers.RNN(_GatedGRUCell(cell), return_sequences=True, unroll=unroll)

    def call(self, sequences, scales, mask=None, training=None):
        scales = ops.cast(scales, sequences.dtype)
        tiled = ops.repeat(ops.expand_dims(scales, 1), ops.shape(sequences)[1], axis=1)
        return self.rnn(ops.concatenate([sequences, tiled], axis=-1), mask=mask,
                        training=training)

    def compute_output_shape(self, sequences_shape, scales_shape):
        return (sequences_shape[0], sequences_shape[1], self.units)


class MaskedNetwork:
    """A DeepSense model's masked network, sharing its layers and weights.

    Args:
        model: a DeepSense model (`deepsense.model.build_deepsense`).
        structure: its prunable structure (`deepiot.structure.read_structure(model)`).

    Attributes:
        model: a Keras model taking a dict (see `masked_inputs`): ``"features"``
            (batch, T, F) and, per unit group, ``"<group>_scales"`` (batch, n_units)
            float32; it outputs what `model` outputs.
        batch_norm_inputs: the same inputs -> {BatchNorm layer name: that layer's input}.
    """

    def __init__(self, model: keras.Model, structure: PrunableStructure) -> None:
        gate_after = {f"{layer}_relu": g.name for g in structure.groups for layer in g.layers
                      if structure.layer(layer).kind == "conv"}
        grus = {g.name for g in structure.groups if structure.layer(g.layers[0]).kind == "gru"}
        features = keras.Input(model.inputs[0].shape[1:], name=FEATURES_INPUT)
        scales = {g.name: keras.Input((g.n_units,), name=g.name + SCALES_SUFFIX)
                  for g in structure.groups}
        batch_norm_inputs = {}

        def call(layer, *args, **kwargs):
            if isinstance(layer, keras.layers.Dropout):
                return args[0]
            if layer.name in grus:
                return GatedGRU(layer.cell, unroll=layer.unroll, name=f"{layer.name}_gated")(
                    args[0], scales[layer.name], mask=kwargs.get("mask"))
            if isinstance(layer, keras.layers.BatchNormalization):
                batch_norm_inputs[layer.name] = args[0]
            outputs = layer(*args, **kwargs)
            if layer.name in gate_after:
                outputs = UnitGate(name=f"{layer.name[:-len('_relu')]}_gate")(
                    outputs, scales[gate_after[layer.name]])
            return outputs

        # clone_model(call_function=...) cannot add inputs, so walk the graph as it does.
        outputs = model._run_through_graph([features], operation_fn=lambda layer: layer,
                                           call_fn=call)
        inputs = {FEATURES_INPUT: features, **{t.name: t for t in scales.values()}}
        self.model = keras.Model(inputs, outputs, name=f"{model.name}_masked")
        self.batch_norm_inputs = keras.Model(inputs, batch_norm_inputs)
        self._infer = tf.function(lambda batch: self.model(batch, training=False),
                                  reduce_retracing=True)
        self._probe = tf.function(lambda batch: self.batch_norm_inputs(batch, training=True),
                                  reduce_retracing=True)

    def predict(self, x: np.ndarray, masks: Mapping[str, np.ndarray],
                batch_size: int = 256) -> np.ndarray:
        """Outputs with fixed `masks` in inference mode: (n, n_outputs)."""
        return np.concatenate([np.asarray(self._infer(inputs))
                               for inputs in _batches(x, masks, batch_size)])

    def batch_norm_moments(self, x: np.ndarray, masks: Mapping[str, np.ndarray],
                           batch_size: int = 256) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per BatchNorm layer, the mean over batches of its input's per-channel batch mean
        and (biased) variance, every BatchNorm normalising with batch statistics."""
        return mean_batch_moments(self._probe(inputs)
                                  for inputs in _batches(x, masks, batch_size))


def _batches(x: np.ndarray, masks: Mapping[str, np.ndarray], batch_size: int):
    if len(x) == 0:
        raise ValueError("expected at least one window")
    for start in range(0, len(x), batch_size):
        batch = x[start:start + batch_size]
        yield masked_inputs(tf.constant(batch), {name: tf.constant(v) for name, v in
                                                 tile_masks(masks, len(batch)).items()})


def masked_inputs(x, scales: Mapping[str, object]) -> dict:
    """The masked model's input dict from features (batch, T, F) and per-group scales
    (batch, n_units)."""
    return {FEATURES_INPUT: x, **{name + SCALES_SUFFIX: s for name, s in scales.items()}}


def tile_masks(masks: Mapping[str, np.ndarray], batch_size: int) -> dict[str, np.ndarray]:
    """Fixed scales (n_units,) per group -> (batch_size, n_units) per group."""
    return {name: np.broadcast_to(np.asarray(s, np.float32), (batch_size, len(s))).copy()
            for name, s in masks.items()}
