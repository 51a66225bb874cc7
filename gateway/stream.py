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

Bounds: a device's buffer never holds more than `max_lag_s` + one window of samples per
sensor, nor more than `max_buffered` samples, even while one of its sensors has not sent
anything yet (the older samples are dropped and refused as "sensor_missing" or
"buffer_full"). A clock that jumps by more than `max_jump_s` is refused ("time_jump") sample
by sample; if the device keeps to its new clock for a whole window, the stream restarts on
it (the windows before the jump are cut first) and `Accepted.clock_reset` says so.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

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
    """What `DeviceStream.add` did with a message.

    Attributes:
        n_kept: samples of the message kept; the others are counted in `refused` by reason
            (n_kept + sum(refused) is the message's sample count).
        dropped: buffered samples dropped to bound the buffer, by reason ("sensor_missing",
            "buffer_full"); they may come from earlier messages.
        clock_reset: the device moved to a new clock and its stream restarted.
    """

    n_kept: int
    refused: Counter
    dropped: Counter = field(default_factory=Counter)
    clock_reset: bool = False


class DeviceStream:
    """Samples of one device, per sensor, and the windows cut from them."""

    def __init__(self, device_id: str, config: FeatureConfig, max_lag_s: float | None = None,
                 max_jump_s: float = 300.0, max_buffered: int = 200_000):
        """
        Args:
            device_id: the device.
            config: the model's feature settings.
            max_lag_s: how far one sensor may run ahead of a window's end before the window
                is cut without the lagging sensor (default: one window length).
            max_jump_s: samples this far past the device's newest sample are refused
                ("time_jump"): one bad clock reading must not end the stream.
            max_buffered: most samples buffered per sensor; older ones are dropped first.
        """
        self.device_id = device_id
        self.config = config
        self.max_lag_s = config.window_s if max_lag_s is None else max_lag_s
        self.max_jump_s = max_jump_s
        self.max_buffered = max_buffered
        self._cut: list[Window] = []      # windows cut before a clock reset, not yet returned
        self._reset()

    def _reset(self) -> None:
        """Forget every sample: a new stream whose window grid is anchored anew."""
        sensors = self.config.sensors
        self._t: dict[str, list[np.ndarray]] = {s: [] for s in sensors}
        self._v: dict[str, list[np.ndarray]] = {s: [] for s in sensors}
        self._first: dict[str, float] = {}
        self._last: dict[str, float] = {}
        self.origin_s: float | None = None
        self.next_index = 0
        self._jump_span: tuple[float, float] | None = None   # refused jumps: first, last (s)

    @property
    def next_start_s(self) -> float | None:
        if self.origin_s is None:
            return None
        return self.origin_s + self.next_index * self.config.window_stride_s

    @property
    def missing_sensors(self) -> list[str]:
        """Sensors of the model that this device has not sent a sample of yet."""
        return [s for s in self.config.sensors if s not in self._first]

    def add(self, sensor: str, t_s: np.ndarray, values: np.ndarray) -> Accepted:
        """Append samples of one sensor; refuse duplicated, out-of-order, late and jumped ones.

        Args:
            sensor: one of `config.sensors` (the caller refuses others).
            t_s: (n,) finite seconds; values: (n, n_axes).

        Returns:
            What was kept; every sample is either kept or counted under one refusal reason
            (samples dropped from the buffer to bound it are counted too).
        """
        refused: Counter = Counter()
        dropped: Counter = Counter()
        last = self._last.get(sensor, -np.inf)
        horizon = self.next_start_s
        if self._in_order(t_s, last, horizon):
            self._keep(sensor, t_s, values, dropped)
            return Accepted(int(t_s.size), refused, +dropped)
        # Keep a sample only if it is later than every sample of this sensor before it.
        running = np.maximum.accumulate(np.concatenate([[last], t_s]))[:-1]
        keep = t_s > running
        if not keep.all():
            refused["duplicate_timestamp"] += int((t_s == running).sum())
            refused["out_of_order"] += int((t_s < running).sum())
        jump = keep & self._jumps(t_s)
        if jump.any():
            keep &= ~jump
            if self._clock_moved(t_s[jump]):
                return self._restart(sensor, t_s[jump], values[jump],
                                     refused + Counter(late=int(keep.sum())))
            refused["time_jump"] += int(jump.sum())
        if horizon is not None:
            late = keep & (t_s < horizon)
            if late.any():
                refused["late"] += int(late.sum())
                keep &= ~late
        if keep.any():
            self._keep(sensor, t_s[keep], values[keep], dropped)
        return Accepted(int(keep.sum()), +refused, +dropped)

    def _restart(self, sensor: str, t_s: np.ndarray, values: np.ndarray,
                 refused: Counter) -> Accepted:
        """The device moved to a new clock: cut what the old one completed, start anew."""
        self._cut += self.ready_windows(flush=True)
        self._reset()
        kept = self.add(sensor, t_s, values)
        return Accepted(kept.n_kept, +(refused + kept.refused), kept.dropped, clock_reset=True)

    def _jumps(self, t_s: np.ndarray) -> np.ndarray:
        """Samples more than `max_jump_s` past the newest sample not refused before them, each
        one checked, or more than `max_jump_s` + `max_lag_s` before the device's newest (a
        sensor's first samples must agree with the others' clock). A device's first message
        is checked against its own first sample."""
        newest = max(self._last.values()) if self._last else float(t_s[0])
        jump = t_s < newest - self.max_jump_s - self.max_lag_s
        if float(t_s.max()) <= newest + self.max_jump_s:
            return jump
        for i, t in enumerate(t_s.tolist()):     # rare: a jump ahead; bounded by the batch size
            if t > newest + self.max_jump_s:
                jump[i] = True
            elif not jump[i]:
                newest = max(newest, t)
        return jump

    def _clock_moved(self, jumped: np.ndarray) -> bool:
        """Whether the refused jumps, consistent with each other, now span a whole window."""
        first, last = float(jumped[0]), float(jumped[-1])
        span = self._jump_span
        if span is None or not span[0] - self.max_jump_s <= first <= span[1] + self.max_jump_s:
            span = (first, first)
        self._jump_span = (min(span[0], first), max(span[1], last))
        return self._jump_span[1] - self._jump_span[0] >= self.config.window_s

    def _in_order(self, t_s: np.ndarray, last: float, horizon: float | None) -> bool:
        """The common case: increasing, after the sensor's last sample, no jump, not late."""
        if last == -np.inf:
            return False                       # a sensor's first samples: check each one
        first, final = float(t_s[0]), float(t_s[-1])
        if not first > last or (horizon is not None and first < horizon):
            return False
        if final > max(self._last.values()) + self.max_jump_s:
            return False
        return t_s.size == 1 or bool((t_s[1:] > t_s[:-1]).all())

    def _keep(self, sensor: str, t_s: np.ndarray, values: np.ndarray, dropped: Counter) -> None:
        self._t[sensor].append(t_s)
        self._v[sensor].append(values)
        self._first.setdefault(sensor, float(t_s[0]))
        self._last[sensor] = float(t_s[-1])
        if self.origin_s is None and len(self._first) == len(self.config.sensors):
            self.origin_s = min(self._first.values())
        self._bound(sensor, dropped)

    def _bound(self, sensor: str, dropped: Counter) -> None:
        """Drop the oldest samples of `sensor` beyond `max_buffered`, and, while a sensor is
        missing (no window can be cut), beyond `max_lag_s` + one window before its newest."""
        chunks = self._t[sensor]
        n = sum(c.shape[0] for c in chunks)
        floor_s = self._last[sensor] - self.max_lag_s - self.config.window_s
        missing = self.origin_s is None and float(chunks[0][0]) < floor_s
        if n <= self.max_buffered and not missing:
            return
        t, v = np.concatenate(chunks), np.concatenate(self._v[sensor])
        cut_missing = int(np.searchsorted(t, floor_s, side="left")) if missing else 0
        cut = max(cut_missing, n - self.max_buffered)
        if cut_missing:
            dropped["sensor_missing"] += cut_missing
        if cut > cut_missing:
            dropped["buffer_full"] += cut - cut_missing
        self._t[sensor], self._v[sensor] = [t[cut:]], [v[cut:]]
        if self.origin_s is None:
            self._first[sensor] = float(t[cut])

    def ready_windows(self, flush: bool = False) -> list[Window]:
        """Cut every window that is complete (or, with `flush`, that ends by the last sample).

        Windows with fewer than `min_valid_intervals` valid intervals are skipped, as in
        `make_windows`; windows holding no sample at all (a gap) are not even computed.
        """
        cut, self._cut = self._cut, []
        if self.origin_s is None:
            return cut
        if flush:
            end = max(self._last.values())
        else:
            end = max(min(self._last.values()) - _END_MARGIN_S,
                      max(self._last.values()) - self.max_lag_s)
        n_ready = _n_windows(self.origin_s, end, self.config)
        if n_ready <= self.next_index:
            return cut
        streams = self._streams()
        index = self._indices_with_samples(streams, n_ready)
        self.next_index = n_ready
        self._trim()
        if index.size == 0:
            return cut
        starts = self.origin_s + index * self.config.window_stride_s   # as `window_starts`
        with np.errstate(over="ignore", invalid="ignore"):   # the gateway checks each window
            x, mask = windows_features(streams, starts, self.config)
        keep = mask.sum(axis=1) >= self.config.min_valid_intervals
        window_s = self.config.window_s
        return cut + [Window(self.device_id, int(index[i]), float(starts[i]),
                             float(starts[i]) + window_s, x[i], mask[i])
                      for i in np.flatnonzero(keep)]

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
