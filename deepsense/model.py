"""The DeepSense network (functional Keras, stable layer names for DeepIoT and export)."""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Mapping

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
                    batch_size: int | None = None, name: str = "deepsense",
                    widths: Mapping[str, int] | None = None) -> keras.Model:
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
        widths: units of some hidden layers, by layer name (``acc_conv1``, ``merge_conv2``,
            ``gru1``, ...), e.g. the kept units of a DeepIoT-thinned model; layers not named
            keep the sizes of `config`. The last per-sensor convs are stacked along a sensor
            axis, so they must have equal widths.

    Returns:
        A functional model mapping (batch, n_intervals, n_features) float32 to
        (batch, n_outputs): class probabilities, or regression values.
    """
    config = config or ModelConfig()
    if n_outputs < 1:
        raise ValueError(f"n_outputs expected a positive integer. Received: n_outputs={n_outputs}")
    units = layer_widths(features, config, widths)
    per_sensor = features.n_features_per_sensor
    regularizer = keras.regularizers.L2(config.weight_decay / 2) if config.weight_decay else None
    conv_args = {"kernel_regularizer": regularizer}

    inputs = keras.Input((features.n_intervals, features.n_features), batch_size=batch_size,
                         name=INPUT_NAME)
    interval_mask = IntervalMask(name="interval_mask")(inputs)

    sensor_outputs = []
    for index, sensor in enumerate(features.sensors):
        x = SensorSlice(index * per_sensor, per_sensor, name=f"{sensor}_slice")(inputs)
        kernel_widths = (config.sensor_conv1_bins * features.n_axes * 2,
                         *config.sensor_kernel_sizes)
        strides = (features.n_axes * 2,) + (1,) * len(config.sensor_kernel_sizes)
        for layer_index, (width, stride) in enumerate(zip(kernel_widths, strides), start=1):
            prefix = f"{sensor}_conv{layer_index}"
            x = keras.layers.Conv2D(units[prefix], (1, width), strides=(1, stride),
                                    padding="valid", name=prefix, **conv_args)(x)
            x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
            x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
            if layer_index < len(kernel_widths):  # the last one is followed by the merge dropout
                x = keras.layers.SpatialDropout2D(config.conv_dropout, name=f"{prefix}_dropout")(x)
        n_positions = x.shape[2]
        if n_positions is None or n_positions < 1:
            raise ValueError(f"the per-sensor convs leave no positions for {per_sensor} features")
        x = keras.layers.Reshape((features.n_intervals, 1, n_positions, x.shape[-1]),
                                 name=f"{sensor}_stack")(x)
        sensor_outputs.append(x)

    x = (keras.layers.Concatenate(axis=2, name="sensor_concat")(sensor_outputs)
         if len(sensor_outputs) > 1 else sensor_outputs[0])
    x = keras.layers.SpatialDropout3D(config.conv_dropout, name="merge_dropout_in")(x)
    for layer_index, kernel in enumerate(config.merge_kernel_sizes, start=1):
        prefix = f"merge_conv{layer_index}"
        x = keras.layers.Conv3D(units[prefix], (1, *kernel), padding="same",
                                name=prefix, **conv_args)(x)
        x = keras.layers.BatchNormalization(name=f"{prefix}_bn")(x)
        x = keras.layers.ReLU(name=f"{prefix}_relu")(x)
        x = keras.layers.SpatialDropout3D(config.conv_dropout, name=f"{prefix}_dropout")(x)
    _, n_intervals, n_sensors, n_positions, n_channels = x.shape
    x = keras.layers.Reshape((n_intervals, n_sensors * n_positions * n_channels),
                             name="flatten_intervals")(x)

    for layer_index in range(1, len(config.gru_units) + 1):
        x = keras.layers.GRU(units[f"gru{layer_index}"], return_sequences=True, unroll=unroll,
                             name=f"gru{layer_index}",
                             kernel_regularizer=regularizer,
                             recurrent_regularizer=regularizer)(x, mask=interval_mask)
        x = keras.layers.Dropout(config.gru_dropout, name=f"gru{layer_index}_dropout")(x)
    x = MaskedTemporalMean(name=POOLED_NAME)(x, interval_mask)
    x = keras.layers.Dense(n_outputs, name=LOGITS_NAME, kernel_regularizer=regularizer)(x)
    if task != "regression":
        x = keras.layers.Softmax(name="probabilities")(x)
    return keras.Model(inputs, x, name=name)


@dataclass(frozen=True)
class Topology:
    """Which named layers a DeepSense-family model has, in forward order.

    Attributes:
        sensors: sensor names, in the order of their first convs in the model.
        sensor_convs: per sensor (same order), its conv names ``<sensor>_conv1..``; every
            sensor has the same number.
        merge_convs: ``merge_conv1..``.
        grus: ``gru1..``.
        gru_dropouts: the dropout after each GRU, ``gru<i>_dropout`` (same length as `grus`).
        logits: the output Dense, `LOGITS_NAME`.
        output: the last layer (``probabilities``, ``logits``, or a head's output layer).
    """

    sensors: tuple[str, ...]
    sensor_convs: tuple[tuple[str, ...], ...]
    merge_convs: tuple[str, ...]
    grus: tuple[str, ...]
    gru_dropouts: tuple[str, ...]
    logits: str
    output: str

    def convs_of(self, sensor: str) -> tuple[str, ...]:
        """Conv names of one sensor."""
        return self.sensor_convs[self.sensors.index(sensor)]


def _numbered(names: set[str], prefix: str, suffix: str = "") -> tuple[str, ...]:
    """``prefix1suffix``, ``prefix2suffix``, ... while present in `names`."""
    found, index = [], 1
    while f"{prefix}{index}{suffix}" in names:
        found.append(f"{prefix}{index}{suffix}")
        index += 1
    return tuple(found)


def read_topology(model: keras.Model) -> Topology:
    """The topology of a model built by `build_deepsense` (and heads added to it), read from
    the layer names this module gives.

    Raises:
        ValueError: no per-sensor conv ``<sensor>_conv1`` (a Conv2D).
    """
    names = {layer.name for layer in model.layers}
    sensors = tuple(layer.name[: -len("_conv1")] for layer in model.layers
                    if layer.name.endswith("_conv1") and isinstance(layer, keras.layers.Conv2D))
    if not sensors:
        raise ValueError(f"model {model.name!r} is not a DeepSense model: no per-sensor conv "
                         "'<sensor>_conv1' (build it with deepsense.model.build_deepsense)")
    grus = _numbered(names, "gru")
    return Topology(
        sensors=sensors,
        sensor_convs=tuple(_numbered(names, f"{sensor}_conv") for sensor in sensors),
        merge_convs=_numbered(names, "merge_conv"), grus=grus,
        gru_dropouts=tuple(f"{gru}_dropout" for gru in grus if f"{gru}_dropout" in names),
        logits=LOGITS_NAME, output=model.layers[-1].name)


def layer_widths(features: FeatureConfig, config: ModelConfig,
                 widths: Mapping[str, int] | None = None) -> dict[str, int]:
    """Units of every hidden layer by name: `config`'s sizes, overridden by `widths`.

    Raises:
        ValueError: an unknown layer name, a width below 1, or last per-sensor convs of
            different widths.
    """
    n_convs = 1 + len(config.sensor_kernel_sizes)
    units = {f"{sensor}_conv{i}": config.conv_filters
             for sensor in features.sensors for i in range(1, n_convs + 1)}
    units.update({f"merge_conv{i}": config.merge_filters
                  for i in range(1, len(config.merge_kernel_sizes) + 1)})
    units.update({f"gru{i}": n for i, n in enumerate(config.gru_units, start=1)})
    for name, width in (widths or {}).items():
        if name not in units:
            raise ValueError(f"widths: unknown layer {name!r}; expected names from {sorted(units)}")
        if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
            raise ValueError(f"widths expected positive integers. Received: {name}={width!r}")
        units[name] = int(width)
    last = {f"{sensor}_conv{n_convs}": units[f"{sensor}_conv{n_convs}"]
            for sensor in features.sensors}
    if len(set(last.values())) > 1:
        raise ValueError("widths: the last per-sensor convs are stacked, so they need equal "
                         f"widths. Received: {last}")
    return units


def count_parameters(model: keras.Model) -> dict[str, int]:
    """Trainable and non-trainable (BatchNorm moving statistics) parameter counts."""
    trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
    frozen = sum(int(w.numpy().size) for w in model.non_trainable_weights)
    return {"trainable": trainable, "non_trainable": frozen, "total": trainable + frozen}
