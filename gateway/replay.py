"""Publish recordings as live sensor messages, at real time x speed, in batches.

`plan_messages` turns recordings into timed messages (one batch of `batch_s` seconds of one
sensor per message, on ``<prefix>/<device>/raw/<sensor>``); `replay` publishes them with
paho, pacing by the sample clock, and waits for the broker's acknowledgements (QoS 1).
Several copies of a recording under different device ids make a load test.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import paho.mqtt.client as mqtt

from deepsense.data.recording import Recording
from deepsense.data.synthetic import SyntheticSpec
from gateway.messages import encode_samples
from gateway.topics import Topics, check_id


@dataclass(frozen=True)
class Message:
    """One message to publish: when (seconds after the replay's start at speed 1), where, what.

    Attributes:
        at_s: offset of the batch's last sample from the first sample of the replay.
        last_t_s: device timestamp of the batch's last sample (for latency measurements).
    """

    at_s: float
    topic: str
    payload: bytes
    device_id: str
    n_samples: int
    last_t_s: float


def synthetic_stream(seconds: float = 30.0, seed: int = 0) -> SyntheticSpec:
    """What ``replay --data synthetic[:USER]`` publishes: one device (nexus4_1) of the user
    (default "a") doing each activity for `seconds` seconds, with one short gap."""
    return SyntheticSpec(n_users=1, devices=("nexus4_1",), seconds_per_activity=seconds,
                         n_gaps=1, max_gap_s=min(1.5, seconds / 4), seed=seed)


def plan_messages(recordings: Sequence[Recording], topics: Topics, *,
                  device_id: str | None = None, n_copies: int = 1,
                  batch_s: float = 0.1) -> list[Message]:
    """Timed messages for every sample of `recordings`, in publishing order.

    Args:
        recordings: recordings of one or more devices (one device's recordings must not
            overlap in time).
        topics: where to publish.
        device_id: publish every recording under this id (the recordings must come from
            one device); default: each recording's own device.
        n_copies: >1 publishes copies under ``<id>-0``, ``<id>-1``, ... (load tests).
        batch_s: samples per message span at most this many seconds (0: one per message).
    """
    devices = {r.device for r in recordings}
    if device_id is not None and len(devices) > 1:
        raise ValueError(f"--device-id needs a recording of one device; this one holds "
                         f"{sorted(devices)}")
    if not recordings:
        raise ValueError("no recordings to replay")
    origin = min(r.start_s for r in recordings)
    streams = []
    for rec in recordings:
        base = check_id(device_id or rec.device)
        ids = [base] if n_copies == 1 else [f"{base}-{k}" for k in range(n_copies)]
        for sensor, stream in rec.streams.items():
            cuts = _batch_bounds(stream.t_s, batch_s)
            for copy, dev in enumerate(ids):
                stagger = copy * batch_s / max(n_copies, 1)
                streams.append((dev, sensor, stream, cuts, stagger))
    messages = []
    for dev, sensor, stream, cuts, stagger in streams:
        topic = topics.raw(dev, sensor)
        for lo, hi in zip(cuts[:-1], cuts[1:]):
            t = stream.t_s[lo:hi]
            messages.append(Message(float(t[-1]) - origin + stagger, topic,
                                    encode_samples(t, stream.values[lo:hi]), dev, hi - lo,
                                    float(t[-1])))
    messages.sort(key=lambda m: m.at_s)
    return messages


def _batch_bounds(t_s: np.ndarray, batch_s: float) -> np.ndarray:
    """Indices cutting `t_s` into runs spanning less than `batch_s` seconds each."""
    if t_s.size == 0:
        return np.zeros(1, dtype=np.int64)
    if batch_s <= 0:
        return np.arange(t_s.size + 1)
    slot = np.floor((t_s - t_s[0]) / batch_s).astype(np.int64)
    starts = np.flatnonzero(np.diff(slot)) + 1
    return np.concatenate([[0], starts, [t_s.size]])


@dataclass
class ReplayReport:
    n_messages: int
    n_samples: int
    seconds: float
    n_unacknowledged: int


def replay(messages: Sequence[Message], client: mqtt.Client, *, speed: float = 1.0,
           qos: int = 1, timeout_s: float = 60.0, max_pause_s: float | None = 5.0,
           on_sent: Callable[[Message, float], None] | None = None) -> ReplayReport:
    """Publish `messages` paced at `speed` x real time (<= 0: as fast as possible).

    Pauses in the data longer than `max_pause_s` (e.g. between the recordings of one device)
    are shortened to it in the schedule; the timestamps in the messages stay as recorded.
    Waits up to `timeout_s` after the last message for the broker's acknowledgements.
    `on_sent(message, wall_time_s)` is called after each publish (benchmarks).
    """
    acked = AckCounter()
    client.on_publish = acked.on_publish
    started = time.monotonic()
    n_samples = n_published = 0
    skipped_s, previous = 0.0, None
    for message in messages:
        at_s = message.at_s - skipped_s
        if max_pause_s is not None and previous is not None and at_s - previous > max_pause_s:
            skipped_s += at_s - previous - max_pause_s
            at_s = previous + max_pause_s
        previous = at_s
        if speed > 0:
            delay = started + at_s / speed - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        if qos > 0 and not client.is_connected():
            # After a reconnect paho re-sends what was not acknowledged, but a message
            # published meanwhile can overtake those: wait, so every sensor stays in order.
            acked.wait_reconnected(client, n_published, timeout_s)
        client.publish(message.topic, message.payload, qos=qos)
        n_published += 1
        n_samples += message.n_samples
        if on_sent is not None:
            on_sent(message, time.time())
    missing = acked.wait(len(messages), timeout_s) if qos > 0 else 0
    return ReplayReport(len(messages), n_samples, time.monotonic() - started, missing)


class AckCounter:
    """Counts QoS 1 acknowledgements (a paho VERSION2 on_publish) and waits for a number."""

    def __init__(self) -> None:
        self.n = 0
        self._cond = threading.Condition()

    def on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        with self._cond:
            self.n += 1
            self._cond.notify_all()

    def wait_reconnected(self, client: mqtt.Client, expected: int, timeout_s: float) -> None:
        """Wait until `client` is connected again and `expected` messages are acknowledged."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not (client.is_connected() and self.n >= expected):
                if time.monotonic() >= deadline:
                    return
                self._cond.wait(0.05)

    def wait(self, expected: int, timeout_s: float) -> int:
        """Wait for `expected` acknowledgements; return how many are still missing."""
        with self._cond:
            self._cond.wait_for(lambda: self.n >= expected, timeout_s)
            return max(expected - self.n, 0)

