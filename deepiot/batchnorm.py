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

import numpy as np

from deepiot.masked import MaskedNetwork
from deepsense.batchnorm import assign_moments, sample_rows


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
    rows = sample_rows(np.arange(len(x)), max_windows, seed)
    assign_moments(network.model, network.batch_norm_moments(x[rows], masks))
