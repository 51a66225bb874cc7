"""Fleets: gateways behind two bridged Mosquittos (README "Fleets").

Broker A is where devices and consumers are; broker B, where the gateways are, is reached from
A by a Mosquitto bridge (``topic <prefix>/# both 1``). Devices are split into groups by a topic
level (``<prefix>/<group>/<device>/raw/<sensor>``), one gateway per group with that group as its
topic prefix, so every device's stream stays in order on one gateway. Prediction consumers,
where order does not matter, share the load with an MQTT shared subscription.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from contextlib import ExitStack

import numpy as np
import pytest

from deepsense.data.features import make_windows
from edge.runtime import load_bundle
from gateway.broker import Mosquitto
from gateway.client import connect_client
from gateway.config import GatewayConfig
from gateway.messages import window_id
from gateway.replay import plan_messages, replay
from gateway.service import Gateway
from gateway.topics import Topics

pytestmark = [pytest.mark.broker, pytest.mark.slow]

GROUPS = {"g1": "phone1", "g2": "phone2"}        # device group -> its device


#: Bridge topic lines (mosquitto.conf(5)): everything under the prefix both ways, or only
#: what each side needs (README "Fleets"). Groups are the level after the prefix.
BRIDGE_TOPICS = {
    "both": ["{p}/# both 1"],
    "split": ["{p}/+/+/raw/+ out 1", "{p}/+/+/prediction in 1", "{p}/+/+/error in 1",
              "{p}/+/gateway/# both 1", "{p}/bridge-probe both 1"],
}


def _bridge_lines(name: str, remote: Mosquitto, topics: list[str]) -> list[str]:
    """A Mosquitto bridge to `remote` sharing `topics` at QoS 1."""
    return [f"connection {name}", f"address {remote.host}:{remote.port}",
            f"remote_clientid {name}", *(f"topic {t}" for t in topics), "cleansession false",
            "bridge_protocol_version mqttv311", "try_private true", "restart_timeout 1",
            "notifications false"]


def _wait_bridged(a: Mosquitto, b: Mosquitto, topic: str, timeout_s: float = 15.0) -> None:
    """Publish probes on one broker until they arrive on the other, in both directions."""
    for source, target in ((a, b), (b, a)):
        got = []
        with connect_client(target.url) as listener, connect_client(source.url) as sender:
            listener.on_message = lambda c, u, m: got.append(m.topic)
            listener.subscribe(topic, qos=1)
            deadline = time.monotonic() + timeout_s
            while not got and time.monotonic() < deadline:
                sender.publish(topic, b"probe", qos=1)
                time.sleep(0.2)
        assert got, f"bridge {source.url} -> {target.url} not up within {timeout_s} s"


@pytest.fixture
def bridged(mosquitto_binary, tmp_path, prefix, request):
    """(A, B): two Mosquittos on loopback, A bridged to B for the topics under `prefix`
    (`BRIDGE_TOPICS[request.param]`, default "both")."""
    topics = [t.format(p=prefix) for t in BRIDGE_TOPICS[getattr(request, "param", "both")]]
    b = Mosquitto(tmp_path / "broker-b", binary=mosquitto_binary).start()
    a = Mosquitto(tmp_path / "broker-a", binary=mosquitto_binary)
    a.conf_path.write_text(a.config_text()
                           + "\n".join(_bridge_lines("bridge-a-b", b, topics)) + "\n")
    a.start()
    try:
        _wait_bridged(a, b, f"{prefix}/bridge-probe")
        yield a, b
    finally:
        a.kill()
        b.kill()


def _gateway(broker: Mosquitto, prefix: str, group: str, bundle) -> Gateway:
    config = GatewayConfig(broker=broker.url, topic_prefix=f"{prefix}/{group}",
                           gateway_id=f"gw-{group}", reconnect_min_s=1, reconnect_max_s=2,
                           shutdown_timeout_s=20,
                           allow_unsigned_updates=True)  # rollout here; signing: test_gateway_signing
    return Gateway(config, load_bundle(bundle))


def _eventually(predicate, timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


@pytest.mark.parametrize("bridged", sorted(BRIDGE_TOPICS), indirect=True)
def test_bridge_every_window_arrives_across_two_bridged_brokers(
        bridged, bundle, held_out_recording, prefix, collect):
    a, b = bridged
    model = load_bundle(bundle)
    windows = make_windows(held_out_recording, model.features)
    expected_outputs = model.predict(windows.x)
    expected = {window_id(device, start): row for device in GROUPS.values()
                for start, row in zip(windows.start_s, expected_outputs)}
    # Consumers on A: two members of one shared subscription split the predictions between
    # them; a plain subscriber watches the gateways' retained status.
    sinks = [collect(a.url, f"$share/sinks/{prefix}/+/+/prediction", f"sink{k}")
             for k in range(2)]
    watcher = collect(a.url, f"{prefix}/+/gateway/+/status", "watcher")
    with ExitStack() as stack:
        gateways = {group: stack.enter_context(_gateway(b, prefix, group, bundle))
                    for group in GROUPS}

        messages = sorted((m for group, device in GROUPS.items()
                           for m in plan_messages([held_out_recording],
                                                  Topics(f"{prefix}/{group}"),
                                                  device_id=device)),
                          key=lambda m: m.at_s)
        with connect_client(a.url) as client:       # the devices publish to broker A
            report = replay(messages, client, speed=0)
            assert report.n_unacknowledged == 0

        def received() -> list[dict]:
            return [p for sink in sinks for p in sink.json("/prediction")]

        # The last windows of each device are cut when it goes idle or its gateway stops.
        assert _eventually(lambda: len(received()) >= len(expected) - 2 * len(GROUPS))
        # stop() cuts the streams: first let every message cross the bridge into a gateway.
        assert _eventually(lambda: sum(g.counters["messages"] for g in gateways.values())
                           >= len(messages))
        for gateway in gateways.values():
            assert gateway.stop()
    assert _eventually(lambda: {p["window_id"] for p in received()} >= set(expected)), \
        sorted(set(expected) - {p["window_id"] for p in received()})

    predictions = received()
    live = {p["window_id"]: p for p in predictions}
    assert len(predictions) == len(live) == len(expected)       # each exactly once
    assert all(sink.json("/prediction") for sink in sinks)      # the load was shared
    for wid, row in expected.items():
        p = live[wid]
        np.testing.assert_allclose(p["outputs"], row, rtol=1e-5, atol=1e-6)
        group = next(g for g, d in GROUPS.items() if d == p["device_id"])
        assert p["gateway_id"] == f"gw-{group}"                  # its group's gateway only
        assert p["model"]["sha256"] == model.bundle_sha256
    for group, gateway in gateways.items():
        assert gateway.counters["predictions"] == len(windows.x)
        assert not any(k.startswith("refused_") for k in gateway.counters), gateway.counters
        status_topic = f"{prefix}/{group}/gateway/gw-{group}/status"
        assert watcher.wait_for(lambda c: c.json(status_topic)
                                and c.json(status_topic)[-1]["state"] == "offline")


def _announcement(zip_bytes: bytes) -> bytes:
    return json.dumps({"sha256": hashlib.sha256(zip_bytes).hexdigest(),
                       "data_b64": base64.b64encode(zip_bytes).decode()}).encode()


def test_bridge_staged_rollout_by_retained_announcement_per_group(
        bridged, bundle, bundle_v2, prefix, collect):
    a, b = bridged
    v1_zip, v2_zip = (x.with_suffix(".zip").read_bytes() for x in (bundle, bundle_v2))
    errors = collect(a.url, f"{prefix}/+/gateway/+/error", "errors")
    with ExitStack() as stack:
        gateways = {group: stack.enter_context(_gateway(b, prefix, group, bundle))
                    for group in GROUPS}
        operator = stack.enter_context(connect_client(a.url))  # the operator publishes on A

        def announce(group: str, payload: bytes) -> None:
            operator.publish(f"{prefix}/{group}/gateway/gw-{group}/model", payload, qos=1,
                             retain=True).wait_for_publish(5)

        # Stage 1: group g1 only. Group g2 is offered a corrupt bundle: refused, v1 stays.
        announce("g1", _announcement(v2_zip))
        announce("g2", _announcement(b"PK\x03\x04 corrupt"))
        assert _eventually(lambda: gateways["g1"].model.version == "2")
        assert errors.wait_for(lambda c: [e["reason"] for e in c.json()]
                               == ["model_update_refused"])
        assert gateways["g2"].model.version == "1"

        # A gateway that restarts gets the retained announcement again and comes up on v2.
        gateways["g1"].stop()
        gateways["g1"] = stack.enter_context(_gateway(b, prefix, "g1", bundle))
        assert _eventually(lambda: gateways["g1"].model.version == "2")

        # Roll back, then forward again; clearing the retained announcement changes nothing.
        announce("g1", _announcement(v1_zip))
        assert _eventually(lambda: gateways["g1"].model.version == "1")
        announce("g1", _announcement(v2_zip))
        assert _eventually(lambda: gateways["g1"].model.version == "2")
        announce("g1", b"")
        # Stage 2: g2 gets the good bundle.
        announce("g2", _announcement(v2_zip))
        assert _eventually(lambda: gateways["g2"].model.version == "2")
    assert gateways["g1"].counters["model_updates"] == 3
    assert gateways["g1"].counters["model_update_refused"] == 0
    assert gateways["g2"].counters["model_update_refused"] == 1
    assert len(errors.json()) == 1
