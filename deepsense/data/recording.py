"""In-memory sensor recordings: what every reader returns and the feature code consumes."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from deepsense.errors import DataFormatError

#: Canonical sensor names and the number of axes of each.
SENSOR_AXES = {"acc": 3, "gyro": 3}


@dataclass
class SensorStream:
    """One sensor of one device.

    Attributes:
        t_s: (n,) float64 timestamps in seconds, strictly increasing.
        values: (n, n_axes) float64 readings (acc in m/s^2, gyro in rad/s).
    """

    t_s: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        self.t_s = np.asarray(self.t_s, dtype=np.float64)
        self.values = np.asarray(self.values, dtype=np.float64)
        if self.values.ndim == 1:
            self.values = self.values[:, None]
        if self.t_s.ndim != 1 or self.values.shape[0] != self.t_s.shape[0]:
            raise ValueError(
                "SensorStream expects t_s of shape (n,) and values of shape (n, n_axes). "
                f"Received: t_s.shape={self.t_s.shape}, values.shape={self.values.shape}")
        if self.t_s.size > 1 and not np.all(np.diff(self.t_s) > 0):
            raise ValueError("SensorStream timestamps must be strictly increasing")

    def __len__(self) -> int:
        return int(self.t_s.shape[0])


@dataclass
class Recording:
    """A stretch of sensor data from one device, carried by one user, with one label.

    Attributes:
        device: device id (e.g. "nexus4_1").
        streams: sensor name ("acc", "gyro") -> SensorStream; all on the same clock.
        user: who carried the device (UserID task), or None.
        label: activity name, or None if unlabelled.
        target: continuous regression target (e.g. walking speed in m/s), or None.
        source: where it was read from, for messages.
        split: "train"/"test" if the source fixes a split (UEA .ts files), else None.
    """

    device: str
    streams: dict[str, SensorStream]
    user: str | None = None
    label: str | None = None
    target: float | None = None
    source: str = ""
    split: str | None = None

    @property
    def start_s(self) -> float:
        return min(float(s.t_s[0]) for s in self.streams.values() if len(s))

    @property
    def end_s(self) -> float:
        return max(float(s.t_s[-1]) for s in self.streams.values() if len(s))


@dataclass
class ReadReport:
    """What a reader skipped or repaired, by reason, with a few example locations."""

    path: str = ""
    rows_read: int = 0
    skipped: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    max_examples: int = 5

    def skip(self, reason: str, where: str, count: int = 1) -> None:
        """Count `count` rows skipped for `reason`; keep `where` (e.g. "line 12") as an example."""
        self.skipped[reason] += count
        examples = self.examples.setdefault(reason, [])
        if len(examples) < self.max_examples:
            examples.append(where)

    @property
    def rows_skipped(self) -> int:
        return int(sum(self.skipped.values()))

    def summary(self) -> str:
        """One line per reason, e.g. "nan value: 3 rows (line 12, line 40)"."""
        lines = [f"{self.path}: {self.rows_read} rows read, {self.rows_skipped} skipped"]
        for reason, count in sorted(self.skipped.items()):
            lines.append(f"  {reason}: {count} rows ({', '.join(self.examples.get(reason, []))})")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"path": self.path, "rows_read": self.rows_read,
                "skipped": dict(self.skipped), "examples": self.examples}


#: What readers do with a bad row: stop with a DataFormatError, or skip and count it.
ON_ERROR_CHOICES = ("raise", "skip")


def check_on_error(on_error: str) -> str:
    if on_error not in ON_ERROR_CHOICES:
        raise ValueError(f"on_error expected one of {ON_ERROR_CHOICES}. Received: on_error={on_error!r}")
    return on_error


def require_sensors(recording: Recording, sensors: tuple[str, ...]) -> None:
    """Raise DataFormatError if `recording` lacks any of `sensors` (or has it empty)."""
    missing = [s for s in sensors if s not in recording.streams or len(recording.streams[s]) == 0]
    if missing:
        raise DataFormatError(
            f"device '{recording.device}' has no samples for sensor(s) {missing}; "
            f"expected sensors {list(sensors)}", path=recording.source or None)
