"""Hostile traffic for a running gateway: honest devices amid every kind of bad input.

`plan_fuzz` mixes the messages of a few honest devices (200 Hz acc and gyro, 0.1 s batches)
with generated hostile ones: timestamps over the whole float range (+-1e308, subnormals,
milliseconds, NaN/Infinity text, 400-digit integers), huge batches and payloads, devices
whose gyro never reports, unknown sensors, topic levels that try to inject log lines, bad
JSON, values of 1e38 and beyond, clocks that jump, and over-the-air announcements of crafted,
unsigned or out-of-bounds bundles. `expected_window_ids` says which windows of the honest
devices must be predicted; `REASONS` lists the refusal counters, so a caller can check that
every message and sample is accounted for. Used by tests/gateway/test_gateway_fuzz.py (short)
and bench/bench_fuzz.py (long).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

import numpy as np

from deepsense.data.features import FeatureConfig
from gateway.messages import encode_samples
from gateway.stream import DeviceStream
from gateway.topics import Topics

#: Refusal reasons that count whole messages, and those that count samples.
MESSAGE_REASONS = ("bad_device_id", "unknown_sensor", "too_many_devices", "oversize",
                   "malformed_json", "bad_type", "schema", "missing_field", "non_finite",
                   "out_of_range")
SAMPLE_REASONS = ("duplicate_timestamp", "out_of_order", "time_jump", "late")

#: Hostile timestamps, as JSON text (NaN/Infinity and a 400-digit integer are not JSON floats).
_TIMES = ["1.7e308", "-1.7e308", "1e308", "-1e308", "5e-324", "-5e-324", "2.2250738585072014e-308",
          "0", "-0.0", "1e10", "10000000001", "1.7e12", "NaN", "Infinity", "-Infinity",
          "1" + "0" * 400, "1e300", "-1e9"]
_VALUES = ["1e38", "-1e38", "1e300", "3.4e38", "1e6", "NaN", "1" + "0" * 400]
#: Topic levels that try to inject: Mosquitto disconnects a client whose topic holds a control
#: character (U+0001-U+001F, U+007F-U+009F), so those travel in payloads, and U+2028 (a line
#: separator to some log viewers) in topics.
_BAD_IDS = ["d\u2028INFO forged line", "gateway", "é", "x" * 70, "$SYS", " ", "a.b:c-",
            "d\u2029\u202e"]
_BAD_SENSORS = ["magnet", "ACC", "", "acc\u2028", "gyro2"]
_MALFORMED = [b"{", b"[" * 5000, b"\xff\xfe\x00", b"\nINFO forged\x1b[2J", b"null",
              b'{"samples": [[1, 2, 3]]}',
              b'{"schema": 2, "t_s": 1, "x": 0, "y": 0, "z": 0}', b'{"samples": "x"}',
              b'{"t_s": true, "x": 0, "y": 0, "z": 0}', b'{"samples": []}']


@dataclass
class FuzzPlan:
    """Messages to publish, in order, and what the honest devices sent.

    Attributes:
        messages: (topic, payload) in publishing order.
        honest: device -> [(sensor, t_s, values)] in the order sent.
        n_raw: messages on sensor topics; n_model: announcements on the model topic.
        kinds: how many hostile messages of each kind.
    """

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    honest: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = field(default_factory=dict)
    n_raw: int = 0
    n_model: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def plan_fuzz(n_messages: int, topics: Topics, *, n_honest: int = 5, honest_share: float = 0.3,
              n_hostile_devices: int = 40, max_batch_samples: int = 10_000,
              seed: int = 0) -> FuzzPlan:
    """`n_messages` messages: `honest_share` of them from `n_honest` honest devices, spread
    evenly, the rest hostile (see the module docstring).

    Honest devices send 200 Hz acc and gyro in 0.1 s batches from t = 1.7e9 s (a Unix time),
    so ``honest_share * n_messages / (2 * n_honest) * 0.1`` seconds of data each.
    """
    rng = np.random.default_rng(seed)
    plan = FuzzPlan(honest={f"honest{i}": [] for i in range(n_honest)})
    n_batches = max(1, int(honest_share * n_messages) // (2 * n_honest))
    honest_queue = []
    for b in range(n_batches):
        t = 1.7e9 + b * 0.1 + np.arange(20) * 0.005
        for device in plan.honest:
            for sensor in ("acc", "gyro"):
                values = rng.standard_normal((20, 3))
                honest_queue.append((device, sensor, t, values))
    n_hostile = max(0, n_messages - len(honest_queue))
    total = n_hostile + len(honest_queue)
    honest_at = set(np.linspace(0, total - 1, len(honest_queue)).round().astype(int).tolist())
    hostile = _Hostile(rng, topics, n_hostile_devices, max_batch_samples)
    queue_index = 0
    for i in range(total):
        if i in honest_at:
            device, sensor, t, values = honest_queue[queue_index]
            queue_index += 1
            plan.honest[device].append((sensor, t, values))
            plan.messages.append((topics.raw(device, sensor), encode_samples(t, values)))
            plan.n_raw += 1
            continue
        kind, topic, payload = hostile.next()
        plan.kinds[kind] = plan.kinds.get(kind, 0) + 1
        plan.messages.append((topic, payload))
        if topic == topics.model:
            plan.n_model += 1
        else:
            plan.n_raw += 1
    return plan


class _Hostile:
    """One hostile message at a time, of a random kind."""

    KINDS = ("bad_time", "bad_value", "huge_batch", "missing_sensor", "unknown_sensor",
             "bad_topic", "malformed", "malformed_on_honest", "jumping_clock", "ota")
    WEIGHTS = (20, 10, 2, 15, 8, 8, 12, 5, 15, 5)

    def __init__(self, rng: np.random.Generator, topics: Topics, n_devices: int,
                 max_batch_samples: int):
        self.rng, self.topics = rng, topics
        self.devices = [f"hostile{i}" for i in range(n_devices)]
        self.clock = {d: 1.7e9 for d in self.devices}
        self.lonely_clock = 1.7e9
        rows = [[1.7e9 + i, 0, 0, 0] for i in range(max_batch_samples + 1)]
        self.huge = [json.dumps({"samples": rows}).encode(), b" " * (300 * 1024)]
        self.p = np.array(self.WEIGHTS) / sum(self.WEIGHTS)

    def next(self) -> tuple[str, str, bytes]:
        kind = str(self.rng.choice(self.KINDS, p=self.p))
        return (kind, *getattr(self, f"_{kind}")())

    def _device(self) -> str:
        return self.devices[int(self.rng.integers(len(self.devices)))]

    def _sensor(self) -> str:
        return ("acc", "gyro")[int(self.rng.integers(2))]

    def _bad_time(self) -> tuple[str, bytes]:
        t = _TIMES[int(self.rng.integers(len(_TIMES)))]
        if self.rng.random() < 0.5:
            payload = f'{{"t_s": {t}, "x": 0.1, "y": 9.8, "z": 0}}'
        else:
            payload = f'{{"samples": [[1.7e9, 0, 0, 0], [{t}, 0, 0, 0]]}}'
        return self.topics.raw(self._device(), self._sensor()), payload.encode()

    def _bad_value(self) -> tuple[str, bytes]:
        device = self._device()
        self.clock[device] += 0.1
        value = _VALUES[int(self.rng.integers(len(_VALUES)))]
        payload = f'{{"t_s": {self.clock[device]!r}, "x": {value}, "y": 0, "z": 0}}'
        return self.topics.raw(device, self._sensor()), payload.encode()

    def _huge_batch(self) -> tuple[str, bytes]:
        return (self.topics.raw(self._device(), self._sensor()),
                self.huge[int(self.rng.integers(len(self.huge)))])

    def _missing_sensor(self) -> tuple[str, bytes]:
        t = self.lonely_clock + np.arange(200) * 0.005            # 1 s of acc, never gyro
        self.lonely_clock += 1.0
        return self.topics.raw("lonely", "acc"), encode_samples(t, np.zeros((200, 3)))

    def _unknown_sensor(self) -> tuple[str, bytes]:
        sensor = _BAD_SENSORS[int(self.rng.integers(len(_BAD_SENSORS)))]
        return (f"{self.topics.prefix}/{self._device()}/raw/{sensor}",
                b'{"t_s": 1.7e9, "x": 0, "y": 0, "z": 0}')

    def _bad_topic(self) -> tuple[str, bytes]:
        device = _BAD_IDS[int(self.rng.integers(len(_BAD_IDS)))]
        return f"{self.topics.prefix}/{device}/raw/acc", b'{"t_s": 1.7e9, "x": 0, "y": 0, "z": 0}'

    def _malformed(self) -> tuple[str, bytes]:
        if self.rng.random() < 0.3:
            payload = self.rng.bytes(int(self.rng.integers(1, 200)))
        else:
            payload = _MALFORMED[int(self.rng.integers(len(_MALFORMED)))]
        return self.topics.raw(self._device(), self._sensor()), payload

    def _malformed_on_honest(self) -> tuple[str, bytes]:
        return self.topics.raw("honest0", self._sensor()), b'{"t_s": NaN, "x": 0}'

    def _jumping_clock(self) -> tuple[str, bytes]:
        device = self._device()
        t = self.clock[device] + self.rng.uniform(-1e6, 1e6)
        if self.rng.random() < 0.7:
            t = self.clock[device] = self.clock[device] + 0.1
        times = t + np.arange(20) * 0.005
        return self.topics.raw(device, self._sensor()), encode_samples(
            times, self.rng.standard_normal((20, 3)))

    def _ota(self) -> tuple[str, bytes]:
        garbage = self.rng.bytes(64)
        choices = [
            b"not json",
            json.dumps({"sha256": "0" * 64, "path": "/etc/passwd"}).encode(),
            json.dumps({"sha256": "0" * 64, "url": "http://127.0.0.1:22/"}).encode(),
            json.dumps({"sha256": "0" * 64, "url": "https://[::1/"}).encode(),
            json.dumps({"sha256": "0" * 64, "data_b64": base64.b64encode(garbage).decode(),
                        "signature": base64.b64encode(garbage).decode()}).encode(),
            json.dumps({"sha256": "0" * 64, "data_b64": "A" * 100_000}).encode(),
        ]
        return self.topics.model, choices[int(self.rng.integers(len(choices)))]


def expected_window_ids(plan: FuzzPlan, features: FeatureConfig, *, max_lag_s: float | None,
                        max_jump_s: float, max_buffered: int) -> set[str]:
    """Window ids (``device@start``) the honest devices' data yields, flushed at the end, as
    a gateway with these settings cuts them."""
    ids = set()
    for device, sends in plan.honest.items():
        stream = DeviceStream(device, features, max_lag_s, max_jump_s, max_buffered)
        windows = []
        for sensor, t, values in sends:
            stream.add(sensor, t, values)
            windows += stream.ready_windows()
        windows += stream.ready_windows(flush=True)
        ids |= {f"{device}@{w.start_s:.3f}" for w in windows}
    return ids
