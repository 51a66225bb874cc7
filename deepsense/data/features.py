"""DeepSense input features: windows of T intervals, per interval interpolation + FFT.

The one implementation shared by training (`make_windows` over a file) and the gateway
(`window_features` over a live buffer): same inputs give bit-identical tensors.

Layout of one interval's features, per sensor in `FeatureConfig.sensors` order:
``[bin 0: (x re, x im, y re, y im, z re, z im), bin 1: (...), ...]`` -> n_points * n_axes * 2
values (60 for a 3-axis sensor and 10 points, as in the released HHAR code). Padded
(invalid) intervals are all zeros; the model recovers its mask as "any feature non-zero".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Mapping

import numpy as np

from deepsense.data.recording import Recording, SensorStream


@dataclass(frozen=True)
class FeatureConfig:
    """How raw samples become a (T, n_features) window.

    Attributes:
        sensors: sensor names, in feature order.
        n_axes: axes per sensor.
        interval_s: tau, the width of one interval (paper 0.25 s; released code 0.5 s).
        n_intervals: T, intervals per window (20).
        n_points: f, interpolation points per interval and FFT length (10).
        stride_s: distance between window starts; None means one window length
            (non-overlapping windows, as the released code).
        min_valid_intervals: windows with fewer valid intervals are dropped (5).
        min_samples_per_interval: an interval is valid when every sensor has at least
            this many samples inside it (2: enough to interpolate).
    """

    sensors: tuple[str, ...] = ("acc", "gyro")
    n_axes: int = 3
    interval_s: float = 0.25
    n_intervals: int = 20
    n_points: int = 10
    stride_s: float | None = None
    min_valid_intervals: int = 5
    min_samples_per_interval: int = 2

    def __post_init__(self) -> None:
        object.__setattr__(self, "sensors", tuple(self.sensors))
        if not self.sensors or len(set(self.sensors)) != len(self.sensors):
            raise ValueError(f"sensors expected distinct names. Received: sensors={self.sensors}")
        for name in ("n_axes", "n_intervals", "n_points", "min_valid_intervals",
                     "min_samples_per_interval"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} expected a positive integer. Received: {name}={value!r}")
        if self.n_points < 2:
            raise ValueError(f"n_points expected >= 2. Received: n_points={self.n_points}")
        if not self.interval_s > 0:
            raise ValueError(f"interval_s expected > 0. Received: interval_s={self.interval_s}")
        if self.stride_s is not None and not self.stride_s > 0:
            raise ValueError(f"stride_s expected > 0 or None. Received: stride_s={self.stride_s}")
        if self.min_valid_intervals > self.n_intervals:
            raise ValueError(
                "min_valid_intervals expected <= n_intervals. Received: "
                f"min_valid_intervals={self.min_valid_intervals}, n_intervals={self.n_intervals}")

    @property
    def n_features_per_sensor(self) -> int:
        return self.n_points * self.n_axes * 2

    @property
    def n_features(self) -> int:
        return len(self.sensors) * self.n_features_per_sensor

    @property
    def window_s(self) -> float:
        return self.interval_s * self.n_intervals

    @property
    def window_stride_s(self) -> float:
        return self.window_s if self.stride_s is None else self.stride_s

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sensors"] = list(self.sensors)
        return d

    @classmethod
    def from_dict(cls, d: Mapping) -> "FeatureConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown feature settings {sorted(unknown)}; expected {sorted(known)}")
        return cls(**{k: (tuple(v) if k == "sensors" else v) for k, v in d.items()})


def interval_spectra(stream: SensorStream, starts_s: np.ndarray,
                     config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Interpolate and FFT one sensor over many intervals.

    Samples with ``start <= t < start + interval_s`` belong to an interval. They are linearly
    interpolated to `n_points` instants ``start + interval_s * k / (n_points - 1)`` (holding the
    first/last sample at the edges, as the released code does), then FFT'd per axis.

    Args:
        stream: the sensor's samples.
        starts_s: (m,) interval start times in seconds.
        config: feature settings.

    Returns:
        spectra: (m, n_points * n_axes * 2) float64, zeros where invalid.
        valid: (m,) bool, at least `min_samples_per_interval` samples in the interval.
    """
    t, v = stream.t_s, stream.values
    if v.shape[1] != config.n_axes:
        raise ValueError(f"expected {config.n_axes} axes per sensor. Received: {v.shape[1]}")
    starts = np.asarray(starts_s, dtype=np.float64).reshape(-1)
    m, f = starts.shape[0], config.n_points
    out = np.zeros((m, config.n_features_per_sensor))
    if m == 0 or t.size == 0:
        return out, np.zeros(m, dtype=bool)
    lo = np.searchsorted(t, starts, side="left")
    hi = np.searchsorted(t, starts + config.interval_s, side="left")
    valid = (hi - lo) >= config.min_samples_per_interval
    if not valid.any():
        return out, valid
    lo, hi, starts = lo[valid], hi[valid], starts[valid]
    grid = starts[:, None] + config.interval_s * (np.arange(f) / (f - 1))[None, :]
    idx = np.searchsorted(t, grid, side="right")
    left = np.clip(idx - 1, lo[:, None], hi[:, None] - 1)
    right = np.clip(idx, lo[:, None], hi[:, None] - 1)
    t_left, t_right = t[left], t[right]
    span = t_right - t_left
    weight = np.divide(grid - t_left, span, out=np.zeros_like(grid), where=span > 0)
    weight = np.clip(weight, 0.0, 1.0)[..., None]
    points = v[left] * (1.0 - weight) + v[right] * weight          # (m_valid, f, n_axes)
    spectrum = np.fft.fft(points, axis=1)                            # (m_valid, f, n_axes)
    pairs = np.stack([spectrum.real, spectrum.imag], axis=-1)       # (m_valid, f, n_axes, 2)
    out[valid] = pairs.reshape(pairs.shape[0], -1)
    return out, valid


def window_starts(origin_s: float, end_s: float, config: FeatureConfig) -> np.ndarray:
    """Start times of every window that ends at or before `end_s`, on the grid of `origin_s`.

    Window k starts at ``origin_s + k * window_stride_s`` (one formula, used by file and stream).
    """
    n = int(np.floor((end_s - origin_s - config.window_s) / config.window_stride_s + 1e-9)) + 1
    return origin_s + np.arange(max(n, 0)) * config.window_stride_s


def windows_features(streams: Mapping[str, SensorStream], starts_s: np.ndarray,
                     config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Features of the windows starting at `starts_s`.

    Args:
        streams: sensor name -> stream; must hold every sensor in `config.sensors`.
        starts_s: (n,) window start times in seconds.

    Returns:
        x: (n, n_intervals, n_features) float32; invalid intervals are zeros.
        mask: (n, n_intervals) bool, True where every sensor had data.
    """
    starts = np.asarray(starts_s, dtype=np.float64).reshape(-1)
    n, T = starts.shape[0], config.n_intervals
    interval_starts = (starts[:, None] + np.arange(T)[None, :] * config.interval_s).reshape(-1)
    parts, mask = [], np.ones(n * T, dtype=bool)
    for sensor in config.sensors:
        if sensor not in streams:
            raise KeyError(f"missing sensor '{sensor}'; expected sensors {list(config.sensors)}")
        spectra, valid = interval_spectra(streams[sensor], interval_starts, config)
        parts.append(spectra)
        mask &= valid
    x = np.concatenate(parts, axis=1)
    x[~mask] = 0.0
    return x.reshape(n, T, config.n_features).astype(np.float32), mask.reshape(n, T)


def window_features(streams: Mapping[str, SensorStream], start_s: float,
                    config: FeatureConfig) -> tuple[np.ndarray, np.ndarray]:
    """Features of one window: x (n_intervals, n_features) float32 and mask (n_intervals,)."""
    x, mask = windows_features(streams, np.array([start_s]), config)
    return x[0], mask[0]


@dataclass
class WindowSet:
    """Windows cut from one recording.

    Attributes:
        x: (n, n_intervals, n_features) float32.
        mask: (n, n_intervals) bool.
        start_s: (n,) window start times in seconds.
        n_dropped: windows dropped for having fewer than `min_valid_intervals` valid intervals.
    """

    x: np.ndarray
    mask: np.ndarray
    start_s: np.ndarray
    n_dropped: int = 0


def make_windows(recording: Recording, config: FeatureConfig,
                 origin_s: float | None = None) -> WindowSet:
    """Cut a recording into windows (grid anchored at its first sample, or at `origin_s`)."""
    origin = recording.start_s if origin_s is None else origin_s
    starts = window_starts(origin, recording.end_s, config)
    x, mask = windows_features(recording.streams, starts, config)
    keep = mask.sum(axis=1) >= config.min_valid_intervals
    return WindowSet(x[keep], mask[keep], starts[keep], int((~keep).sum()))
