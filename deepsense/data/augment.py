"""Training augmentation of the released HHAR code: Gaussian noise on values and timestamps."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from deepsense.data.recording import Recording, SensorStream


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
