"""Thinning: the masked DeepSense as an ordinary, physically smaller DeepSense.

`thin_model` builds `build_deepsense(..., widths=kept units)` (same layer names, so it
trains, saves, evaluates and exports like any DeepSense) and copies sliced weights in:

- conv: the kept filters (kernel columns, bias, BatchNorm entries) and the input channels
  that the previous layer kept, each multiplied by that unit's scale;
- GRU: the kept columns of each gate block (z, r, h) of the kernel, recurrent kernel and
  both bias rows, the kept rows of the recurrent kernel, and the kept, scaled input rows;
- output Dense: the kept, scaled input rows.

An RDeepSense model (``head_dropout`` before the output Dense) keeps its head: the thinned
body gets the same `rdeepsense.heads.add_uncertainty_head` (and the GaussianHead's
variance_scale), so it outputs probabilities or [mean, variance] as the original does.

The scale of a kept GRU unit applies to what the next layer reads, not to the recurrent
state (see `deepiot.masked`), so folding it into the next layer is exact; a ReLU conv's
scale could go either side, and goes into the next layer too.
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np

from deepiot.masks import check_masks, kept_widths
from deepiot.structure import PrunableStructure, WeightedLayer, read_structure
from deepsense.config import ModelConfig
from deepsense.data.features import FeatureConfig
from deepsense.model import LOGITS_NAME, build_deepsense
from rdeepsense.heads import GAUSSIAN_NAME, HEAD_DROPOUT_NAME, add_uncertainty_head


def _input_rows(layer: WeightedLayer, structure: PrunableStructure,
                masks: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Kept input rows of `layer`'s kernel and the scale of each: (k,), (k,)."""
    if layer.input_group is None:
        return np.arange(layer.n_inputs), np.ones(layer.n_inputs, np.float32)
    scales = np.asarray(masks[layer.input_group], np.float32)
    kept = np.flatnonzero(scales)
    n_units = structure.group(layer.input_group).n_units
    rows = (np.arange(layer.input_repeat)[:, None] * n_units + kept[None, :]).ravel()
    return rows, np.tile(scales[kept], layer.input_repeat)


def _output_units(layer: WeightedLayer, masks: Mapping[str, np.ndarray]) -> np.ndarray:
    if layer.group is None:
        return np.arange(layer.n_outputs)
    return np.flatnonzero(masks[layer.group])


def _gate_columns(kept: np.ndarray, n_units: int) -> np.ndarray:
    """Columns of the kept units in each of the 3 gate blocks (z, r, h) of a GRU matrix."""
    return np.concatenate([block * n_units + kept for block in range(3)])


def thin_weights(model: keras.Model, masks: Mapping[str, np.ndarray],
                 structure: PrunableStructure | None = None) -> dict[str, list[np.ndarray]]:
    """Sliced, scale-folded weights of every weighted layer (and BatchNorm), by layer name."""
    structure = structure or read_structure(model)
    check_masks(structure, masks)
    weights: dict[str, list[np.ndarray]] = {}
    for layer in structure.layers:
        rows, row_scales = _input_rows(layer, structure, masks)
        kept = _output_units(layer, masks)
        source = model.get_layer(layer.name).get_weights()
        if layer.kind == "conv":
            kernel, bias = source
            kernel = kernel[..., rows, :][..., kept] * row_scales[:, None]
            weights[layer.name] = [kernel, bias[kept]]
            bn = model.get_layer(layer.batch_norm).get_weights()
            weights[layer.batch_norm] = [w[kept] for w in bn]
        elif layer.kind == "gru":
            kernel, recurrent, bias = source
            columns = _gate_columns(kept, layer.n_outputs)
            weights[layer.name] = [kernel[rows][:, columns] * row_scales[:, None],
                                   recurrent[kept][:, columns], bias[:, columns]]
        else:
            kernel, bias = source
            weights[layer.name] = [kernel[rows][:, kept] * row_scales[:, None], bias[kept]]
    return weights


def thin_model(model: keras.Model, masks: Mapping[str, np.ndarray], *, features: FeatureConfig,
               config: ModelConfig, task: str, unroll: bool = False) -> keras.Model:
    """A smaller DeepSense computing what `model` computes with `masks` (inference mode).

    Args:
        model: the DeepSense whose units `masks` prune (the critic after compression).
        masks: unit group -> (n_units,) scales, 0 = removed (`deepiot.masks`).
        features, config, task: what `model` was built with (from its run.json).
        unroll: unroll the GRUs of the new model.

    Returns:
        ``build_deepsense(features, n_outputs, task, config, widths=...)`` with the kept
        units' weights (and `model`'s uncertainty head, if it has one); its outputs equal
        the masked model's.
    """
    structure = read_structure(model)
    weights = thin_weights(model, masks, structure)
    n_outputs = structure.layer(LOGITS_NAME).n_outputs
    names = {layer.name for layer in model.layers}
    head = HEAD_DROPOUT_NAME in names
    if head and task == "regression":
        n_outputs //= 2  # the Gaussian head's Dense outputs [mean (k), raw variance (k)]
    thinned = build_deepsense(features, n_outputs, task, config, unroll=unroll, name=model.name,
                              widths=structure.layer_widths(kept_widths(masks)))
    if head:
        thinned = add_uncertainty_head(
            thinned, task, n_outputs, dropout=model.get_layer(HEAD_DROPOUT_NAME).rate,
            weight_decay=config.weight_decay, name=model.name)
        if task == "regression":
            thinned.get_layer(GAUSSIAN_NAME).variance_scale = (
                model.get_layer(GAUSSIAN_NAME).variance_scale)
    for name, values in weights.items():
        thinned.get_layer(name).set_weights(values)
    return thinned
