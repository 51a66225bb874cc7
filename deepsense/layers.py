"""Custom DeepSense layers; pure keras.ops, registered for `keras.saving.load_model`."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="deepsense")
class IntervalMask(keras.layers.Layer):
    """Which intervals hold data: True where any feature is non-zero (padding is all zeros).

    Input shape: (batch, n_intervals, n_features). Output shape: (batch, n_intervals), bool.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._build_at_init()

    def call(self, inputs):
        return ops.any(ops.not_equal(inputs, 0.0), axis=-1)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1])

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(inputs.shape[:-1], dtype="bool")


@keras.saving.register_keras_serializable(package="deepsense")
class SensorSlice(keras.layers.Layer):
    """One sensor's features as a 1-channel image for the per-sensor convs.

    Args:
        start: first feature index of the sensor.
        size: number of features of the sensor (n_points * n_axes * 2).

    Input shape: (batch, n_intervals, n_features).
    Output shape: (batch, n_intervals, size, 1).
    """

    def __init__(self, start: int, size: int, **kwargs):
        if start < 0 or size < 1:
            raise ValueError(f"SensorSlice expected start >= 0 and size >= 1. "
                             f"Received: start={start}, size={size}")
        super().__init__(**kwargs)
        self.start = start
        self.size = size
        self._build_at_init()

    def call(self, inputs):
        return ops.expand_dims(inputs[:, :, self.start:self.start + self.size], axis=-1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[1], self.size, 1)

    def get_config(self):
        return {**super().get_config(), "start": self.start, "size": self.size}


@keras.saving.register_keras_serializable(package="deepsense")
class MaskedTemporalMean(keras.layers.Layer):
    """Mean over the valid intervals only (the released code's `avg_cell_out`).

    Call arguments: ``inputs`` (batch, n_intervals, units) and ``interval_mask``
    (batch, n_intervals) bool. Output shape: (batch, units). A window without any valid
    interval gives zeros, not NaN.
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._build_at_init()

    def compute_mask(self, inputs, previous_mask=None):
        return None  # the Keras mask arriving with `inputs` ends here

    def call(self, inputs, interval_mask):
        weights = ops.expand_dims(ops.cast(interval_mask, inputs.dtype), axis=-1)
        total = ops.sum(inputs * weights, axis=1)
        count = ops.maximum(ops.sum(weights, axis=1), 1.0)
        return total / count

    def compute_output_shape(self, inputs_shape, interval_mask_shape):
        return (inputs_shape[0], inputs_shape[2])
