"""Hostile input and failing parts through a real Mosquitto: the gateway keeps predicting for
every honest device, says on its status what is wrong, and never dies silently.

Each test is a finding of the hardening review (issue 13), reproduced first."""

from __future__ import annotations

import json
import sqlite3
import time

import numpy as np
import pytest

from deepsense.cli import main
from edge.runtime import load_bundle
from gateway.client import open_client
from gateway.commands import _serve
from gateway.config import GatewayConfig
from gateway.messages import encode_samples
from gateway.service import Gateway

pytestmark = [pytest.mark.broker, pytest.mark.slow]


def _gateway(broker, prefix, bundle, **settings) -> Gateway:
    config = GatewayConfig(broker=broker.url, topic_prefix=prefix, gateway_id="gw1",
                           reconnect_min_s=1, reconnect_max_s=2, shutdown_timeout_s=10,
                           status_interval_s=0.5, **settings)
    return Gateway(config, load_bundle(bundle)).start()


def _send_window(client, prefix: str, device: str, start_s: float = 0.0,
                 seconds: float = 5.5, scale: float = 1.0) -> None:
    """`seconds` of 200 Hz acc and gyro for `device` (5.5 s: one 5 s window, and its end)."""
    t = start_s + np.arange(0, seconds, 0.005)
    values = scale * np.random.default_rng(0).standard_normal((t.size, 3))
    for sensor in ("acc", "gyro"):
        client.publish(f"{prefix}/{device}/raw/{sensor}", encode_samples(t, values),
                       qos=1).wait_for_publish(5)


def _alive(gateway: Gateway) -> bool:
    return gateway._worker.is_alive() and gateway.client._thread.is_alive()


@pytest.fixture
def publisher(broker):
    client = open_client(broker.url)
    yield client
    client.disconnect()
    client.loop_stop()


def test_hostile_overflowing_timestamps_fail_only_their_device(broker, bundle, prefix, collect,
                                                               publisher):
    # Finding 1: t_s 1.7e308 on acc and -1.7e308 on gyro killed the worker thread.
    collector = collect(broker.url, f"{prefix}/#")
    gateway = _gateway(broker, prefix, bundle)
    for sensor, t in (("acc", 1.7e308), ("gyro", -1.7e308), ("acc", 4e-324), ("gyro", 1e9)):
        publisher.publish(f"{prefix}/evil/raw/{sensor}",
                          json.dumps({"t_s": t, "x": 0, "y": 0, "z": 0}), qos=1)
    _send_window(publisher, prefix, "honest")
    try:
        assert collector.wait_for(lambda c: len(c.json("/honest/prediction")) == 1)
        assert _alive(gateway)
        errors = collector.json("/evil/error")
        assert [e["reason"] for e in errors][:2] == ["out_of_range", "out_of_range"]
        assert collector.json("/status")[-1]["state"] == "online"
    finally:
        gateway.stop()


def test_hostile_huge_values_fail_only_their_device(broker, bundle, prefix, collect, publisher):
    # Finding 7: one device sending 1e38 made the whole batch fail (predict_failed=11).
    collector = collect(broker.url, f"{prefix}/#")
    gateway = _gateway(broker, prefix, bundle, max_abs_value=1e39)   # the window check's turn
    for i in range(4):
        _send_window(publisher, prefix, f"honest{i}")
    _send_window(publisher, prefix, "loud", scale=1e38)
    try:
        assert collector.wait_for(lambda c: len(c.json("/prediction")) == 4
                                  and len(c.json("/loud/error")) >= 1)
        assert {p["device_id"] for p in collector.json("/prediction")} == {
            f"honest{i}" for i in range(4)}
        reasons = {e["reason"] for e in collector.json("/loud/error")}
        assert reasons & {"non_finite_window", "predict_failed"}
        assert gateway.counters["predictions"] == 4
    finally:
        gateway.stop()


def test_hostile_unforeseen_error_is_charged_to_its_device(broker, bundle, prefix, collect,
                                                           publisher, monkeypatch):
    collector = collect(broker.url, f"{prefix}/#")
    gateway = _gateway(broker, prefix, bundle)
    original = gateway._handle

    def handle(topic, payload, received_s):
        if "/boom/" in topic:
            raise RuntimeError("simulated bug\nFORGED LOG LINE")
        original(topic, payload, received_s)

    monkeypatch.setattr(gateway, "_handle", handle)
    _send_window(publisher, prefix, "boom")
    _send_window(publisher, prefix, "honest")
    try:
        assert collector.wait_for(lambda c: len(c.json("/honest/prediction")) == 1
                                  and c.json("/status")[-1]["state"] == "degraded")
        errors = collector.json("/boom/error")
        assert errors[0]["reason"] == "worker_error" and "RuntimeError" in errors[0]["message"]
        assert gateway.counters["worker_error"] == 2
        assert _alive(gateway)
    finally:
        gateway.stop()


def test_hostile_worker_that_keeps_failing_gives_up_and_serve_exits_1(
        broker, bundle, prefix, collect, monkeypatch, caplog):
    # Supervision: no silent gateway; the status never stays a false "online".
    collector = collect(broker.url, f"{prefix}/#")
    gateway = _gateway(broker, prefix, bundle)

    def broken():
        raise OSError("simulated failure of every round")

    monkeypatch.setattr(gateway, "_housekeeping", broken)
    started = time.monotonic()
    assert _serve(gateway) == 1                      # returns once the worker gives up
    assert time.monotonic() - started < 20
    assert gateway.failed.is_set() and gateway.counters["worker_error"] >= 50
    assert collector.wait_for(lambda c: c.json("/status")[-1]["state"] == "offline")
    states = [s["state"] for s in collector.json("/status")]
    assert "degraded" in states


def test_hostile_missing_sensor_is_reported_and_bounded(broker, bundle, prefix, collect,
                                                        publisher):
    # Finding 6: a device whose gyro never reports buffered without bound.
    collector = collect(broker.url, f"{prefix}/#")
    gateway = _gateway(broker, prefix, bundle)
    t = np.arange(0, 60, 0.005)
    values = np.zeros((t.size, 3))
    for i in range(0, t.size, 1000):
        publisher.publish(f"{prefix}/onesided/raw/acc",
                          encode_samples(t[i:i + 1000], values[i:i + 1000]), qos=1)
    try:
        assert collector.wait_for(lambda c: any(e["reason"] == "sensor_missing"
                                                for e in c.json("/onesided/error")))
        assert collector.wait_for(lambda c: gateway.counters["samples"] == t.size)
        stream = gateway.devices["onesided"]
        assert stream.n_buffered <= 3 * 5 * 200              # < 15 s of 200 Hz
        assert "gyro" in collector.json("/onesided/error")[0]["message"]
    finally:
        gateway.stop()


def test_hostile_full_spool_keeps_predicting_and_says_degraded(broker, bundle, prefix, collect,
                                                               publisher, tmp_path):
    # Finding 2: "database or disk is full" escaped Outbox.add (worker) and on_publish (paho).
    collector = collect(broker.url, f"{prefix}/#")
    gateway = _gateway(broker, prefix, bundle, spool=str(tmp_path / "spool.db"))
    db = gateway.outbox._db
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    with pytest.raises(sqlite3.OperationalError, match="full"):     # fill it: the disk is full
        for seq in range(10**9, 10**9 + 100):
            db.execute("INSERT INTO pending VALUES (?, 'filler', zeroblob(100))", (seq,))
    for i in range(3):
        _send_window(publisher, prefix, f"d{i}")
    try:
        assert collector.wait_for(lambda c: len(c.json("/prediction")) == 3)
        assert collector.wait_for(lambda c: c.json("/status")[-1]["state"] == "degraded"), \
            (dict(gateway.counters), [s["state"] for s in collector.json("/status")])
        spool_errors = [e for e in collector.json("/error") if e["reason"] == "spool_error"]
        assert spool_errors and "full" in spool_errors[0]["message"]
        assert _alive(gateway)
        assert gateway.counters["spool_error"] == gateway.outbox.n_spool_errors >= 3
    finally:
        assert gateway.stop()


def test_hostile_corrupt_spool_is_one_line_error(bundle, tmp_path, capsys):
    spool = tmp_path / "spool.db"
    spool.write_bytes(b"this is not an SQLite database" * 100)
    assert main(["serve", "--bundle", str(bundle), "--spool", str(spool)]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(spool) in err and "Traceback" not in err


def test_outbox_spool_failures_never_raise(tmp_path):
    from gateway.outbox import Outbox

    outbox = Outbox(10, tmp_path / "spool.db")
    outbox._db.close()                                   # every statement now fails
    outbox.add("t", b"1")
    assert len(outbox) == 1 and outbox.n_spool_errors == 1
    outbox._mid_to_seq[7] = 1
    outbox.on_publish(None, None, 7, None, None)
    assert len(outbox) == 0 and outbox.n_spool_errors == 2
    assert isinstance(outbox.last_spool_error, sqlite3.Error)


def test_inbox_is_bounded_in_bytes_as_well_as_messages(bundle):
    from types import SimpleNamespace

    gateway = Gateway(GatewayConfig(topic_prefix="q", queue_bytes=1000), load_bundle(bundle))
    try:
        message = SimpleNamespace(topic="q/d1/raw/acc", payload=b"x" * 400)
        for _ in range(5):
            gateway._on_message(None, None, message)
        assert gateway.inbox.qsize() == 2 and gateway.counters["queue_full"] == 3
        assert gateway._inbox_bytes == 800
    finally:
        gateway.client.loop_stop()
        gateway.outbox.close()
