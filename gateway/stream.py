"""Per-device live stream state: buffer samples per sensor, cut windows with the shared code.

The window grid is anchored at the device's first sample (the earliest first timestamp over
its sensors, known once every sensor has sent one), exactly as `make_windows` anchors a
file, and each window's tensor comes from `windows_features` over the buffered samples: a
live stream and the same samples read from a file give bit-identical tensors.

A window ``[start, start + window_s)`` is cut when every sensor has a sample at or after its
end (per-sensor timestamps only increase, so nothing more can fall inside), or when one
sensor runs `max_lag_s` ahead of the window end (the lagging sensor counts as missing there),
or on `flush` (device idle or gateway shutdown), which cuts every window that ends by the
last sample, as `make_windows` does at the end of a file.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from deepsense.data.features import FeatureConfig, windows_features
from deepsense.data.recording import SensorStream

#: Margin (seconds) under the newest sample when deciding that a window has ended.
_END_MARGIN_S = 1e-6


def _n_windows(origin_s: float, end_s: float, config: FeatureConfig) -> int:
    """How many windows end by `end_s`: ``len(window_starts(origin_s, end_s, config))``."""
    n = int(np.floor((end_s - origin_s - config.window_s) / config.window_stride_s + 1e-9)) + 1
    return max(n, 0)


@dataclass
class Window:
    """One cut window of one device.

    Attributes:
        device_id: the device.
        index: window number on the device's grid (0 = the window at its first sample).
        start_s, end_s: window bounds, device clock, seconds.
        x: (n_intervals, n_features) float32 features. mask: (n_intervals,) bool.
    """

    device_id: str
    index: int
    start_s: float
    end_s: float
    x: np.ndarray
    mask: np.ndarray


@dataclass
class Accepted:
    """What `DeviceStream.add` did with a message: samples kept, and refused ones by reason."""

    n_kept: int
    refused: Counter


class DeviceStream:
    """Samples of one device, per sensor, and the windows cut from them."""

    def __init__(self, device_id: str, config: FeatureConfig, max_lag_s: float | None = None,
                 max_jump_s: float = 300.0):
        """
        Args:
            device_id: the device.
            config: the model's feature settings.
            max_lag_s: how far one sensor may run ahead of a window's end before the window
                is cut without the lagging sensor (default: one window length).
            max_jump_s: samples this far past the device's newest sample are refused
                ("time_jump"): one bad clock reading must not end the stream.
        """
        self.device_id = device_id
        self.config = config
        self.max_lag_s = config.window_s if max_lag_s is None else max_lag_s
        self.max_jump_s = max_jump_s
        self._t: dict[str, list[np.ndarray]] = {s: [] for s in config.sensors}
        self._v: dict[str, list[np.ndarray]] = {s: [] for s in config.sensors}
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self.origin_s: float | None = None
        self.next_index = 0

    @property
    def next_start_s(self) -> float | None:
        if self.origin_s is None:
            return None
        return self.origin_s + self.next_index * self.config.window_stride_s

    def add(self, sensor: str, t_s: np.ndarray, values: np.ndarray) -> Accepted:
        """Append samples of one sensor; refuse duplicated, out-of-order and late ones.

        Args:
            sensor: one of `config.sensors` (the caller refuses others).
            t_s: (n,) seconds; values: (n, n_axes).
        """
        refused: Counter = Counter()
        last = self._last.get(sensor, -np.inf)
        horizon = self.next_start_s
        if self._in_order(t_s, last, horizon):
            self._keep(sensor, t_s, values)
            return Accepted(int(t_s.size), refused)
        # Keep a sample only if it is later than every sample of this sensor before it.
        running = np.maximum.accumulate(np.concatenate([[last], t_s]))[:-1]
        keep = t_s > running
        if not keep.all():
            refused["duplicate_timestamp"] += int((t_s == running).sum())
            refused["out_of_order"] += int((t_s < running).sum())
        if self._last:
            newest = np.maximum(running, max(self._last.values()))
            jump = keep & (t_s > newest + self.max_jump_s)
            if jump.any():
                refused["time_jump"] += int(jump.sum())
                keep &= ~jump
        if horizon is not None:
            late = keep & (t_s < horizon)
            if late.any():
                refused["late"] += int(late.sum())
                keep &= ~late
        if keep.any():
            self._keep(sensor, t_s[keep], values[keep])
        return Accepted(int(keep.sum()), +refused)

    def _in_order(self, t_s: np.ndarray, last: float, horizon: float | None) -> bool:
        """The common case: increasing, after the sensor's last sample, no jump, not late."""
        first, final = float(t_s[0]), float(t_s[-1])
        if not first > last or (horizon is not None and first < horizon):
            return False
        if self._last and final > max(self._last.values()) + self.max_jump_s:
            return False
        return t_s.size == 1 or bool((t_s[1:] > t_s[:-1]).all())

    def _keep(self, sensor: str, t_s: np.ndarray, values: np.ndarray) -> None:
        self._t[sensor].append(t_s)
        self._v[sensor].append(values)
        self._first.setdefault(sensor, float(t_s[0]))
        self._last[sensor] = float(t_s[-1])
        if self.origin_s is None and len(self._first) == len(self.config.sensors):
            self.origin_s = min(self._first.values())

    def ready_windows(self, flush: bool = False) -> list[Window]:
        """Cut every window that is complete (or, with `flush`, that ends by the last sample).

        Windows with fewer than `min_valid_intervals` valid intervals are skipped, as in
        `make_windows`; windows holding no sample at all (a gap) are not even computed.
        """
        if self.origin_s is None:
            return []
        if flush:
            end = max(self._last.values())
        else:
            end = max(min(self._last.values()) - _END_MARGIN_S,
                      max(self._last.values()) - self.max_lag_s)
        n_ready = _n_windows(self.origin_s, end, self.config)
        if n_ready <= self.next_index:
            return []
        streams = self._streams()
        index = self._indices_with_samples(streams, n_ready)
        self.next_index = n_ready
        self._trim()
        if index.size == 0:
            return []
        starts = self.origin_s + index * self.config.window_stride_s   # as `window_starts`
        x, mask = windows_features(streams, starts, self.config)
        keep = mask.sum(axis=1) >= self.config.min_valid_intervals
        window_s = self.config.window_s
        return [Window(self.device_id, int(index[i]), float(starts[i]),
                       float(starts[i]) + window_s, x[i], mask[i]) for i in np.flatnonzero(keep)]

    def _indices_with_samples(self, streams: dict[str, SensorStream], n_ready: int) -> np.ndarray:
        """Window indices in [next_index, n_ready) that hold a sample, sorted, as float64.

        Generous by one window on each side (float rounding); extra windows are empty and
        dropped by `min_valid_intervals`, so the result equals cutting every window.
        """
        t = np.concatenate([s.t_s for s in streams.values()])
        stride, window_s = self.config.window_stride_s, self.config.window_s
        first = np.floor((t - self.origin_s - window_s) / stride).astype(np.int64)
        span = int(np.ceil(window_s / stride)) + 2
        index = np.unique((first[:, None] + np.arange(span)[None, :]).reshape(-1))
        return index[(index >= self.next_index) & (index < n_ready)].astype(np.float64)

    def _streams(self) -> dict[str, SensorStream]:
        streams = {}
        for sensor in self.config.sensors:
            t, v = self._t[sensor], self._v[sensor]
            if len(t) > 1:
                t, v = [np.concatenate(t)], [np.concatenate(v)]
                self._t[sensor], self._v[sensor] = t, v
            streams[sensor] = (SensorStream(t[0], v[0]) if t else
                               SensorStream(np.zeros(0), np.zeros((0, self.config.n_axes))))
        return streams

    def _trim(self) -> None:
        """Drop samples before the next window's start: no later window can use them."""
        horizon = self.next_start_s
        for sensor in self.config.sensors:
            if not self._t[sensor]:
                continue
            t, v = self._t[sensor][0], self._v[sensor][0]
            cut = int(np.searchsorted(t, horizon, side="left"))
            self._t[sensor] = [t[cut:]] if cut < t.size else []
            self._v[sensor] = [v[cut:]] if cut < t.size else []

    @property
    def n_buffered(self) -> int:
        return sum(int(c.shape[0]) for chunks in self._t.values() for c in chunks)
