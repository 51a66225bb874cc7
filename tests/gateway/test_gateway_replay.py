"""Replay planning: every source format becomes timed, batched sensor messages."""

from __future__ import annotations

import numpy as np
import pytest

from deepsense.data.synthetic import SyntheticSpec, make_recording
from gateway.messages import parse_samples
from gateway.replay import plan_messages
from gateway.topics import Topics


def _recording(device: str = "nexus4_1"):
    spec = SyntheticSpec(n_users=1, devices=(device,), seconds_per_activity=4.0, n_gaps=0)
    return make_recording(spec, "a", device, "walk")


def test_replay_plan_batches_every_sample_in_time_order():
    recording = _recording()
    messages = plan_messages([recording], Topics("p"), device_id="phone1", batch_s=0.1)
    assert [m.at_s for m in messages] == sorted(m.at_s for m in messages)
    assert {m.topic for m in messages} == {"p/phone1/raw/acc", "p/phone1/raw/gyro"}
    for sensor, stream in recording.streams.items():
        parts = [parse_samples(m.payload) for m in messages if m.topic.endswith(sensor)]
        np.testing.assert_array_equal(np.concatenate([t for t, _ in parts]), stream.t_s)
        np.testing.assert_array_equal(np.concatenate([v for _, v in parts]), stream.values)
        assert all(t[-1] - t[0] < 0.1 for t, _ in parts)


def test_replay_plan_copies_devices_and_checks_ids():
    messages = plan_messages([_recording()], Topics("p"), device_id="ph", n_copies=3)
    assert {m.device_id for m in messages} == {"ph-0", "ph-1", "ph-2"}
    with pytest.raises(ValueError, match="device id expected"):
        plan_messages([_recording()], Topics("p"), device_id="a/b")
    with pytest.raises(ValueError, match="needs a recording of one device"):
        plan_messages([_recording("nexus4_1"), _recording("s3_1")], Topics("p"), device_id="x")


class _Clock:
    """Fake time for `replay`: sleeping advances the clock."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now

    def time(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


class _Sink:
    def __init__(self, clock):
        self.clock, self.sent_at = clock, []

    def publish(self, topic, payload, qos=0):
        self.sent_at.append(self.clock.now)


def test_replay_paces_by_speed_and_shortens_long_pauses(monkeypatch):
    import gateway.replay as replay_module

    clock = _Clock()
    monkeypatch.setattr(replay_module, "time", clock)
    messages = [replay_module.Message(at, "t", b"{}", "d", 1, at) for at in (0.0, 1.0, 61.0, 62.0)]
    sink = _Sink(clock)
    replay_module.replay(messages, sink, speed=2.0, qos=0, max_pause_s=5.0)
    assert sink.sent_at == pytest.approx([0.0, 0.5, 3.0, 3.5])
