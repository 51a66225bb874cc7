"""Training augmentation of the released HHAR code: Gaussian noise on values and timestamps."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from deepsense.data.features import FeatureConfig, window_starts
from deepsense.data.recording import Recording, SensorStream

#: `auto_augment_copies` adds noisy copies until the dataset has about this many windows.
AUGMENT_TARGET_WINDOWS = 4000
#: At most x10 in all, as in the released HHAR code.
MAX_AUGMENT_COPIES = 9


@dataclass(frozen=True)
class NoiseSpec:
    """Standard deviations of the released code (sep_HHAR_data.py).

    Attributes:
        value_sigma: per sensor, in the sensor's unit (acc 0.5 m/s^2, gyro 0.2 rad/s).
        time_sigma_s: jitter of each sample's timestamp (0.2 in units of 0.1 s = 0.02 s).
    """

    value_sigma: tuple[tuple[str, float], ...] = (("acc", 0.5), ("gyro", 0.2))
    time_sigma_s: float = 0.02


def augment_recording(recording: Recording, rng: np.random.Generator,
                      noise: NoiseSpec = NoiseSpec()) -> Recording:
    """A noisy copy: values plus Gaussian noise; timestamps jittered, then re-sorted.

    As in the released code, the jittered timestamps are sorted on their own (the values
    keep their order), which models sampling-instant jitter. Duplicate timestamps that the
    jitter might create are dropped so streams stay strictly increasing.
    """
    sigmas = dict(noise.value_sigma)
    streams = {}
    for name, stream in recording.streams.items():
        values = stream.values + rng.normal(0.0, sigmas.get(name, 0.0), stream.values.shape)
        t = np.sort(stream.t_s + rng.normal(0.0, noise.time_sigma_s, stream.t_s.shape))
        keep = np.concatenate([[True], np.diff(t) > 0])
        streams[name] = SensorStream(t[keep], values[keep])
    return Recording(recording.device, streams, recording.user, recording.label,
                     recording.target, recording.source, recording.split)


def auto_augment_copies(recordings: Iterable[Recording], features: FeatureConfig) -> int:
    """Noisy copies per recording so that a small dataset reaches ~AUGMENT_TARGET_WINDOWS.

    0 for datasets of AUGMENT_TARGET_WINDOWS windows or more, at most MAX_AUGMENT_COPIES
    (x10, the released code's setting, which BasicMotions' 80 windows get).
    """
    n_windows = sum(len(window_starts(r.start_s, r.end_s, features)) for r in recordings)
    if n_windows == 0:
        return 0
    return min(MAX_AUGMENT_COPIES, max(0, math.ceil(AUGMENT_TARGET_WINDOWS / n_windows) - 1))
