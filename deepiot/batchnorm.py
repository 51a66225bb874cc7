"""BatchNorm recalibration: moving statistics that match a fixed mask.

While compressing, the critic's BatchNorm layers see sampled masks, so their moving
statistics describe a random sub-network, not the deterministic masked model that is
evaluated and thinned. Recalibration re-estimates them from training windows: one pass
through the masked network (which has no Dropout) with every BatchNorm normalising with
batch statistics, as in training; each moving mean and variance becomes the mean over
batches of its input's batch mean and variance.
"""

from __future__ import annotations

from typing import Mapping

import keras
import numpy as np

from deepiot.masked import MaskedNetwork
from deepiot.masks import full_masks
from deepiot.structure import read_structure


def recalibrate(network: MaskedNetwork, x: np.ndarray, masks: Mapping[str, np.ndarray], *,
                max_windows: int = 1024, seed: int = 0) -> None:
    """Set the moving statistics of `network`'s BatchNorm layers for fixed `masks`.

    The layers are shared with the model the network was built from, which is what changes.

    Args:
        network: the masked network.
        x: (n, T, F) windows to estimate from (training windows); at most `max_windows`
            of them, drawn at random.
        masks: unit group -> (n_units,) scales.
    """
    rows = np.sort(np.random.default_rng(seed).permutation(len(x))[:max_windows])
    for name, (mean, variance) in network.batch_norm_moments(x[rows], masks).items():
        layer = network.model.get_layer(name)
        layer.moving_mean.assign(mean.astype(np.float32))
        layer.moving_variance.assign(variance.astype(np.float32))


def recalibrate_model(model: keras.Model, x: np.ndarray, **kwargs) -> None:
    """Recalibrate a DeepSense model's BatchNorm statistics in place (no Dropout active)."""
    structure = read_structure(model)
    recalibrate(MaskedNetwork(model, structure), x, full_masks(structure), **kwargs)
