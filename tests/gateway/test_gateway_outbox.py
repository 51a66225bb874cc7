"""Outbox: bounded, kept until acknowledged, early acknowledgements, spool across restarts."""

from __future__ import annotations

from dataclasses import dataclass

import paho.mqtt.client as mqtt

from gateway.outbox import Outbox


@dataclass
class _Info:
    mid: int
    rc: int = mqtt.MQTT_ERR_SUCCESS


class _Client:
    """Stands in for paho: numbers messages, optionally acknowledges inside publish()."""

    def __init__(self, outbox: Outbox | None = None):
        self.sent: list[tuple[str, bytes]] = []
        self.ack_immediately = outbox

    def publish(self, topic, payload, qos=0, retain=False):
        self.sent.append((topic, payload))
        mid = len(self.sent)
        if self.ack_immediately is not None:       # PUBACK before publish() returns
            self.ack_immediately.on_publish(self, None, mid, None, None)
        return _Info(mid)


def test_outbox_keeps_until_acknowledged():
    outbox, client = Outbox(), _Client()
    outbox.add("t/1", b"a")
    outbox.add("t/2", b"b")
    assert outbox.pump(client, connected=False) == 0 and len(outbox) == 2
    assert outbox.pump(client, connected=True) == 2
    outbox.on_publish(client, None, 1, None, None)
    assert len(outbox) == 1 and not outbox.wait_empty(0.01)
    outbox.on_publish(client, None, 2, None, None)
    assert outbox.wait_empty(0.01) and outbox.n_acked == 2


def test_outbox_matches_acknowledgements_that_arrive_early():
    outbox = Outbox()
    client = _Client(outbox)
    outbox.add("t/1", b"a")
    outbox.send(client, "status", b"s", qos=1)
    outbox.pump(client, connected=True)
    assert len(outbox) == 0 and outbox.n_acked == 1


def test_outbox_drops_the_oldest_waiting_when_full():
    outbox = Outbox(max_pending=3)
    for i in range(5):
        outbox.add("t", str(i).encode())
    client = _Client()
    outbox.pump(client, connected=True)
    assert [p for _, p in client.sent] == [b"2", b"3", b"4"] and outbox.n_dropped == 2


def test_outbox_spool_survives_a_restart(tmp_path):
    spool = tmp_path / "spool.sqlite"
    first = Outbox(spool=spool)
    for i in range(3):
        first.add("t", str(i).encode())
    client = _Client()
    first.pump(client, connected=True)
    first.on_publish(client, None, 1, None, None)     # only the first was acknowledged
    first.close()
    second = Outbox(spool=spool)
    assert len(second) == 2
    again = _Client()
    second.pump(again, connected=True)
    assert [p for _, p in again.sent] == [b"1", b"2"]
    second.close()
