"""Parameters, float32 bytes and FLOPs of a DeepSense with given unit widths (no Keras).

The counts follow Keras exactly (a test compares them with the built model), so the
compressor can price a mask without building a model. FLOPs count multiplies and adds
(2 per multiply-accumulate) of the convs, GRU matrix products and the output layer for one
window; BatchNorm, activations and the GRU's element-wise gate arithmetic are left out
(BatchNorm folds into the convs on export).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Mapping

from deepiot.structure import PrunableStructure, WeightedLayer

#: Bytes per stored weight (float32).
BYTES_PER_PARAMETER = 4


@dataclass(frozen=True)
class LayerCost:
    """Cost of one weighted layer at some widths.

    Attributes:
        trainable: trainable parameters (kernels, biases, BatchNorm scale and offset).
        non_trainable: BatchNorm moving mean and variance.
        flops: floating-point operations per window.
    """

    trainable: int
    non_trainable: int
    flops: int


def layer_cost(layer: WeightedLayer, widths: Mapping[str, int]) -> LayerCost:
    """Cost of `layer` when every unit group has ``widths[group]`` units."""
    n_in = layer.n_inputs if layer.input_group is None else (
        widths[layer.input_group] * layer.input_repeat)
    n_out = layer.n_outputs if layer.group is None else widths[layer.group]
    if layer.kind == "conv":
        batch_norm = 2 * n_out if layer.batch_norm else 0
        return LayerCost(layer.kernel_size * n_in * n_out + n_out + batch_norm, batch_norm,
                         2 * layer.n_positions * layer.kernel_size * n_in * n_out)
    if layer.kind == "gru":  # kernel (in, 3h), recurrent (h, 3h), bias (2, 3h): reset_after
        return LayerCost(3 * n_out * (n_in + n_out) + 2 * 3 * n_out, 0,
                         2 * layer.n_positions * 3 * n_out * (n_in + n_out))
    return LayerCost(n_in * n_out + n_out, 0, 2 * n_in * n_out)


def model_cost(structure: PrunableStructure, widths: Mapping[str, int] | None = None) -> dict:
    """Totals and per-layer costs for group `widths` (default: the unpruned model).

    Returns:
        dict with ``trainable``, ``non_trainable``, ``total`` parameters, ``bytes``
        (float32 storage of all of them), ``flops`` per window, and ``layers``: name ->
        {trainable, non_trainable, flops}.
    """
    widths = dict(structure.full_widths(), **(widths or {}))
    per_layer = {layer.name: layer_cost(layer, widths) for layer in structure.layers}
    trainable = sum(c.trainable for c in per_layer.values())
    non_trainable = sum(c.non_trainable for c in per_layer.values())
    return {"trainable": trainable, "non_trainable": non_trainable,
            "total": trainable + non_trainable,
            "bytes": BYTES_PER_PARAMETER * (trainable + non_trainable),
            "flops": sum(c.flops for c in per_layer.values()),
            "layers": {name: asdict(c) for name, c in per_layer.items()}}


def parameter_fraction(structure: PrunableStructure, widths: Mapping[str, int]) -> float:
    """Trainable parameters left at `widths`, as a fraction of the unpruned model's."""
    return (model_cost(structure, widths)["trainable"]
            / model_cost(structure)["trainable"])
