"""The worker's rounds: what the inbox holds is handled together, its windows in one batch."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import pytest

from edge.runtime import load_bundle
from gateway.config import GatewayConfig
from gateway.messages import encode_samples
from gateway.service import Gateway


@pytest.fixture
def offline_gateway(bundle):
    """A gateway never connected and without its worker: the test drives `_round`."""
    gateway = Gateway(GatewayConfig(topic_prefix="w", batch_windows=256, max_devices=1000),
                      load_bundle(bundle))
    yield gateway
    gateway.client.loop_stop()
    gateway.outbox.close()


def _queue_one_window(gateway: Gateway, device: str, rate_hz: float = 50.0) -> None:
    """Put one message per sensor on the inbox, together spanning just past one window."""
    features = gateway.model.features
    t = np.arange(0.0, features.window_s + 0.1, 1 / rate_hz)
    for k, sensor in enumerate(features.sensors):
        values = np.sin(t[:, None] * (k + 1) + np.arange(features.n_axes))
        payload = encode_samples(t + 0.003 * k, values)
        gateway.inbox.put((f"w/{device}/raw/{sensor}", payload, time.monotonic()))
        gateway._inbox_bytes += len(payload)


def test_windows_of_many_devices_ending_together_are_predicted_in_one_batch(offline_gateway,
                                                                           monkeypatch):
    gateway = offline_gateway
    n_devices = 150                    # 300 messages: more than any fixed per-round count
    for d in range(n_devices):
        _queue_one_window(gateway, f"dev{d}")
    calls = []
    predict = gateway.model.predict
    monkeypatch.setattr(gateway.model, "predict", lambda x: calls.append(len(x)) or predict(x))
    gateway._round()
    assert calls == [n_devices]
    assert gateway.counters["predictions"] == n_devices
    assert gateway.inbox.empty() and gateway._inbox_bytes == 0


def test_a_round_predicts_full_batches_as_soon_as_they_are_cut(offline_gateway, monkeypatch):
    gateway = offline_gateway
    gateway.config = dataclasses.replace(gateway.config, batch_windows=16)
    for d in range(40):
        _queue_one_window(gateway, f"dev{d}")
    calls = []
    predict = gateway.model.predict
    monkeypatch.setattr(gateway.model, "predict", lambda x: calls.append(len(x)) or predict(x))
    gateway._round()
    assert calls == [16, 16, 8]


def test_a_round_handles_only_what_was_waiting_when_it_started(offline_gateway):
    gateway = offline_gateway
    _queue_one_window(gateway, "early")
    original = gateway._handle
    late = []

    def handle(topic, payload, received_s):        # a message arriving during the round
        if not late:
            late.append(True)
            gateway.inbox.put(("w/late/raw/acc", payload, time.monotonic()))
            gateway._inbox_bytes += len(payload)
        original(topic, payload, received_s)

    gateway._handle = handle
    gateway._round()
    assert gateway.inbox.qsize() == 1 and gateway.counters["predictions"] == 1
