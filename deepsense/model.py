"""The DeepSense network (functional Keras, stable layer names for DeepIoT and export)."""

from __future__ import annotations

import keras

from deepsense.config import ModelConfig
from deepsense.data.features import FeatureConfig
from deepsense.layers import IntervalMask, MaskedTemporalMean, SensorSlice

#: Name of the input layer, of the pooled representation and of the output logits.
INPUT_NAME = "features"
POOLED_NAME = "temporal_mean"
LOGITS_NAME = "logits"


def build_deepsense(features: FeatureConfig, n_outputs: int, task: str = "activity",
                    config: ModelConfig | None = None, *, unroll: bool = False,
                    batch_size: int | None = None, name: str = "deepsense") -> keras.Model:
    """Build DeepSense for windows of shape (n_intervals, n_features).

    Per sensor: 3 convs over the spectral axis (BN, ReLU, channel dropout); merge: 3 convs
    over (sensor, position); flatten per interval; stacked GRUs with output dropout, masked
    so padded intervals change nothing; mean over valid intervals; dense output.

    Args:
        features: the preprocessing the data was prepared with (sensors, T, f, axes).
        n_outputs: classes (classification) or regression targets.
        task: "activity"/"user" -> softmax probabilities; "regression" -> linear outputs.
        config: architecture; defaults to the released HHAR code.
        unroll: unroll the GRUs (needed for a builtin-ops LiteRT export).
        batch_size: fix the batch dimension (1 for export), or None.

    Returns:
        A functional model mapping (batch, n_intervals, n_features) float32 to
        (batch, n_outputs): class probabilities, or regression values.
    """
    config = config or ModelConfig()
    if n_outputs < 1:
        raise ValueError(f"n_outputs expected a positive integer. Received: n_outputs={n_outputs}")
    per_sensor = features.n_features_per_sensor
    regularizer = keras.regularizers.L2(config.weight_decay / 2) if config.weight_decay else None
    conv_args = {"kernel_regularizer": regularizer}

    inputs = keras.Input((features.n_intervals, features.n_features), batch_size=batch_size,
                         name=INPUT_NAME)
    interval_mask = IntervalMask(name="interval_mask")(inputs)

    sensor_outputs = []
    for index, sensor in enumerate(features.sensors):
        x = SensorSlice(index * per_sensor, per_sensor, name=f"{sensor}_slice")(inputs)
        widths = (config.sensor_conv1_bins * features.n_axes * 2, *config.sensor_kernel_sizes)
        strides = (features.n_axes * 2,) + (1,) * len(config.sensor_kernel_sizes)
        for layer_index, (width, stride) in enumerate(zip(widths, strides), start=1):
            prefix = f"{sensor}_conv{layer_index}"
            x = keras.layers.Conv2D(config.conv_filters, (1, width), strides=(1, stride),
                                    padding="valid", name=prefix, **conv_args)(x)
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
            if layer_index < len(widths):  # the last one is followed by the merge dropout
                x = keras.layers.SpatialDropout2D(config.conv_dropout, name=f"{prefix}_dropout")(x)
        n_positions = x.shape[2]
        if n_positions is None or n_positions < 1:
            raise ValueError(f"the per-sensor convs leave no positions for {per_sensor} features")
        x = keras.layers.Reshape((features.n_intervals, 1, n_positions, config.conv_filters),
                                 name=f"{sensor}_stack")(x)
        sensor_outputs.append(x)

    x = (keras.layers.Concatenate(axis=2, name="sensor_concat")(sensor_outputs)
         if len(sensor_outputs) > 1 else sensor_outputs[0])
    x = keras.layers.SpatialDropout3D(config.conv_dropout, name="merge_dropout_in")(x)
    for layer_index, kernel in enumerate(config.merge_kernel_sizes, start=1):
        prefix = f"merge_conv{layer_index}"
        x = keras.layers.Conv3D(config.merge_filters, (1, *kernel), padding="same",
                                name=prefix, **conv_args)(x)
        x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
        x = keras.layers.SpatialDropout3D(config.conv_dropout, name=f"{prefix}_dropout")(x)
    _, n_intervals, n_sensors, n_positions, n_channels = x.shape
    x = keras.layers.Reshape((n_intervals, n_sensors * n_positions * n_channels),
                             name="flatten_intervals")(x)

    for layer_index, units in enumerate(config.gru_units, start=1):
        x = keras.layers.GRU(units, return_sequences=True, unroll=unroll, name=f"gru{layer_index}",
                             kernel_regularizer=regularizer,
                             recurrent_regularizer=regularizer)(x, mask=interval_mask)
        x = keras.layers.Dropout(config.gru_dropout, name=f"gru{layer_index}_dropout")(x)
    x = MaskedTemporalMean(name=POOLED_NAME)(x, interval_mask)
    x = keras.layers.Dense(n_outputs, name=LOGITS_NAME, kernel_regularizer=regularizer)(x)
    if task != "regression":
        x = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, x, name=name)


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Trainable and non-trainable (BatchNorm moving statistics) parameter counts."""
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    frozen = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen}
