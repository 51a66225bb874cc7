"""Broker restarts and crashes: every window's prediction still arrives (ids expose duplicates)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from deepsense.cli import main
from deepsense.data.csv_format import write_sensor_csv
from deepsense.data.features import make_windows
from edge.runtime import load_bundle
from gateway.client import connect_client
from gateway.config import GatewayConfig
from gateway.messages import window_id
from gateway.replay import plan_messages, replay
from gateway.service import Gateway
from gateway.topics import Topics

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _expected_ids(bundle, recording, device: str) -> set[str]:
    windows = make_windows(recording, load_bundle(bundle).features)
    return {window_id(device, start) for start in windows.start_s}


def _gateway(broker, prefix, bundle) -> Gateway:
    config = GatewayConfig(broker=broker.url, topic_prefix=prefix, reconnect_min_s=1,
                           reconnect_max_s=1, shutdown_timeout_s=20)
    return Gateway(config, load_bundle(bundle))


def _ids(collector) -> list[str]:
    return [p["window_id"] for p in collector.json("/prediction")]


def test_fault_graceful_broker_restart_mid_stream(broker, bundle, held_out_recording, prefix,
                                                  collect):
    expected = _expected_ids(bundle, held_out_recording, "phone1")
    collector = collect(broker.url, f"{prefix}/+/prediction")
    messages = plan_messages([held_out_recording], Topics(prefix), device_id="phone1")
    result = {}
    with _gateway(broker, prefix, bundle) as gateway:
        with connect_client(broker.url, "replay-restart", clean_session=False) as client:
            client.reconnect_delay_set(1, 1)
            sender = threading.Thread(target=lambda: result.update(
                report=replay(messages, client, speed=10.0, timeout_s=60)))
            sender.start()
            time.sleep(1.0)
            broker.stop()                          # SIGTERM: Mosquitto saves its sessions
            time.sleep(0.5)
            broker.start()
            sender.join(90)
        assert result["report"].n_unacknowledged == 0
        assert gateway.stop()
    assert collector.wait_for(lambda c: set(_ids(c)) >= expected, 30), \
        (sorted(expected - set(_ids(collector))), dict(gateway.counters))
    assert set(_ids(collector)) == expected
    assert gateway.counters["disconnects"] >= 1


def test_fault_predictions_made_while_broker_is_down_are_sent_after_restart(
        broker, bundle, held_out_recording, prefix, collect):
    expected = _expected_ids(bundle, held_out_recording, "phone1")
    collector = collect(broker.url, f"{prefix}/+/prediction")
    with _gateway(broker, prefix, bundle) as gateway:
        time.sleep(1.5)                    # let the 1 s autosave store the collector's session
        broker.kill()                      # SIGKILL: a crash
        deadline = time.monotonic() + 10
        while gateway.connected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not gateway.connected
        # Messages the gateway had received just before the crash: windows are cut and
        # predicted while the broker is down.
        for message in plan_messages([held_out_recording], Topics(prefix), device_id="phone1"):
            gateway.inbox.put((message.topic, message.payload, time.monotonic()))
        deadline = time.monotonic() + 30
        while (gateway.counters["predictions"] < len(expected) - 2
               and time.monotonic() < deadline):
            time.sleep(0.05)
        assert len(gateway.outbox) >= len(expected) - 2
        broker.start()
        assert gateway.stop()              # everything acknowledged by the restarted broker
    assert collector.wait_for(lambda c: set(_ids(c)) >= expected, 30)
    assert set(_ids(collector)) == expected


def test_fault_serve_flushes_on_sigterm(broker, bundle, held_out_recording, prefix, collect,
                                        tmp_path):
    expected = _expected_ids(bundle, held_out_recording, "phone1")
    collector = collect(broker.url, f"{prefix}/#")
    data = write_sensor_csv([held_out_recording], tmp_path / "walk.csv")
    serve = subprocess.Popen(
        [sys.executable, "-m", "deepsense.cli", "serve", "--bundle", str(bundle),
         "--broker", broker.url, "--topic-prefix", prefix, "--gateway-id", "gwcli"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONWARNINGS": "error"})
    try:
        assert collector.wait_for(lambda c: any(s["state"] == "online"
                                                for s in c.json("/status")), 30)
        assert main(["replay", "--data", str(data), "--device-id", "phone1", "--broker",
                     broker.url, "--topic-prefix", prefix, "--speed", "0"]) == 0
        assert collector.wait_for(lambda c: len(c.json("/prediction")) >= len(expected) - 2)
        serve.send_signal(signal.SIGTERM)
        output, _ = serve.communicate(timeout=60)
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.communicate()
    assert serve.returncode == 0, output
    assert "all predictions acknowledged" in output
    assert collector.wait_for(lambda c: set(_ids(c)) >= expected, 20)
    assert collector.json("/status")[-1]["state"] == "offline"
    assert "tensorflow" not in output.lower()


def test_fault_spool_keeps_predictions_across_a_gateway_restart(
        broker, bundle, held_out_recording, prefix, collect, tmp_path):
    expected = _expected_ids(bundle, held_out_recording, "phone1")
    collector = collect(broker.url, f"{prefix}/+/prediction")
    time.sleep(1.5)                        # let the 1 s autosave store the collector's session
    config = GatewayConfig(broker=broker.url, topic_prefix=prefix, reconnect_min_s=1,
                           reconnect_max_s=1, shutdown_timeout_s=1,
                           spool=str(tmp_path / "spool.sqlite"))
    with Gateway(config, load_bundle(bundle)) as first:
        broker.stop()
        for message in plan_messages([held_out_recording], Topics(prefix), device_id="phone1"):
            first.inbox.put((message.topic, message.payload, time.monotonic()))
        assert not first.stop()            # broker away: the predictions stay in the spool
    assert first.counters["predictions"] == len(expected)
    broker.start()
    with Gateway(config, load_bundle(bundle)) as second:
        assert second.stop()
    assert collector.wait_for(lambda c: set(_ids(c)) >= expected, 30)
    assert set(_ids(collector)) == expected
