"""End to end against a real Mosquitto: replay -> broker -> gateway -> predictions."""

from __future__ import annotations


import numpy as np
import pytest

from deepsense.data.features import make_windows
from edge.runtime import load_bundle
from gateway.client import connect_client
from gateway.config import GatewayConfig
from gateway.messages import encode_samples, window_id
from gateway.replay import plan_messages, replay
from gateway.service import Gateway
from gateway.topics import Topics

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _gateway(broker, prefix, bundle, **settings) -> Gateway:
    config = GatewayConfig(broker=broker.url, topic_prefix=prefix, gateway_id="gw1",
                           reconnect_min_s=1, reconnect_max_s=2, shutdown_timeout_s=20,
                           **settings)
    return Gateway(config, load_bundle(bundle))


def _offline(bundle, recording):
    model = load_bundle(bundle)
    windows = make_windows(recording, model.features)
    return windows, model.predict(windows.x)


def _by_window(predictions: list[dict]) -> dict[str, dict]:
    return {p["window_id"]: p for p in predictions}


def test_e2e_live_predictions_equal_offline(broker, bundle, held_out_recording, prefix, collect):
    windows, expected = _offline(bundle, held_out_recording)
    collector = collect(broker.url, f"{prefix}/#")
    with _gateway(broker, prefix, bundle) as gateway:
        with connect_client(broker.url) as client:
            messages = plan_messages([held_out_recording], Topics(prefix), device_id="phone1")
            report = replay(messages, client, speed=0)
            assert report.n_unacknowledged == 0
        # The last windows are cut when the device goes idle or the gateway stops.
        assert collector.wait_for(lambda c: len(c.json("/prediction")) >= len(windows.x) - 2)
    assert gateway.stop()
    assert collector.wait_for(lambda c: len(c.json("/prediction")) >= len(windows.x))

    predictions = collector.json("/prediction")
    live = _by_window(predictions)
    assert len(predictions) == len(live) == len(windows.x)
    assert [live[k]["window_start_s"] for k in sorted(live, key=lambda k: live[k]["window_index"])] \
        == windows.start_s.tolist()
    model = load_bundle(bundle)
    for start, row in zip(windows.start_s, expected):
        p = live[window_id("phone1", start)]
        np.testing.assert_allclose(p["outputs"], row, rtol=1e-5, atol=1e-6)
        assert p["label"] == model.class_names[int(np.argmax(row))]
        assert p["model"] == {"name": "har", "version": "1", "sha256": model.bundle_sha256}
        assert 0 <= p["entropy"] and 0 < p["max_prob"] <= 1
    assert collector.wait_for(lambda c: c.json("/status")[-1]["state"] == "offline")
    status = collector.json("/status")
    assert status[0]["state"] == "online"
    assert status[-1]["counters"]["predictions"] == len(windows.x)


def test_e2e_bad_input_is_refused_on_the_error_topic(broker, bundle, prefix, collect):
    collector = collect(broker.url, f"{prefix}/#")
    t = np.arange(5) / 100.0
    good = encode_samples(t, np.zeros((5, 3)))
    sends = [("d1/raw/acc", b"{oops"), ("d1/raw/acc", b'{"t_s": 1, "x": NaN, "y": 0, "z": 0}'),
             ("d1/raw/magnet", good), ("d1/raw/acc", good), ("d1/raw/acc", good),
             ("d2/raw/acc", good), ("d3/raw/acc", good), ("$bad/raw/acc", good),
             ("d1/raw/gyro", b"x" * 300_000)]
    with _gateway(broker, prefix, bundle, max_devices=2) as gateway, \
            connect_client(broker.url) as client:
        for suffix, payload in sends:
            client.publish(f"{prefix}/{suffix}", payload, qos=1).wait_for_publish(5)
        assert collector.wait_for(lambda c: len(c.json("/error")) >= 8)
    reasons = sorted((str(e["device_id"]), e["reason"], e["count"])
                     for e in collector.json("/error"))
    assert reasons == [("None", "bad_device_id", 1), ("d1", "duplicate_timestamp", 1),
                       ("d1", "malformed_json", 1), ("d1", "non_finite", 1),
                       ("d1", "out_of_order", 4), ("d1", "oversize", 1),
                       ("d1", "unknown_sensor", 1), ("d3", "too_many_devices", 1)]
    assert gateway.counters["refused_too_many_devices"] == 1
    gateway.stop()
