"""Gateway fixtures: a real Mosquitto on a free loopback port, a real tiny bundle, TLS files."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from contextlib import ExitStack

import pytest

from deepsense.data.features import FeatureConfig
from deepsense.data.prepared import prepare_recordings, save_prepared
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recording, make_recordings
from gateway.broker import Mosquitto, TlsFiles, find_mosquitto

TINY = ["--set", "model.conv_filters=4", "--set", "model.merge_filters=4",
        "--set", "model.gru_units=[6, 6]"]


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    binary = find_mosquitto()
    if binary is None:
        if os.environ.get("CI") == "true":
            pytest.fail("mosquitto is not installed; CI must install it (make broker)")
        pytest.skip("mosquitto not installed (apt-get install mosquitto); broker tests skipped")
    return binary


@pytest.fixture
def broker(mosquitto_binary, tmp_path):
    """A Mosquitto of this test alone, with persistence; stopped (or killed) at the end."""
    server = Mosquitto(tmp_path / "broker", binary=mosquitto_binary).start()
    yield server
    server.kill()


@pytest.fixture
def prefix(request) -> str:
    return f"test/{request.node.name.replace('[', '_').replace(']', '')}"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """A tiny RDeepSense activity classifier trained for 2 epochs, user 'b' held out."""
    from deepsense.cli import main

    work = tmp_path_factory.mktemp("gateway-run")
    spec = SyntheticSpec(n_users=3, devices=("nexus4_1",), seconds_per_activity=12.0, n_gaps=1,
                         max_gap_s=1.0, seed=0)
    dataset = prepare_recordings(make_recordings(spec), FeatureConfig(stride_s=1.0),
                                 activity_names=list(ACTIVITIES))
    save_prepared(dataset, work / "data")
    assert main(["train", "--data", str(work / "data"), "--out", str(work / "run"),
                 "--epochs", "2", "--split", "loso:b", "--head", "rdeepsense", *TINY]) == 0
    return work / "run"


@pytest.fixture(scope="session")
def bundle(trained_run, tmp_path_factory):
    """An exported bundle directory; its zip is ``bundle.with_suffix('.zip')``."""
    from deepsense.export import export_bundle

    return export_bundle(trained_run, tmp_path_factory.mktemp("bundles") / "har", name="har",
                         version="1")


@pytest.fixture(scope="session")
def bundle_v2(trained_run, tmp_path_factory):
    from deepsense.export import export_bundle

    return export_bundle(trained_run, tmp_path_factory.mktemp("bundles") / "har-v2",
                         name="har", version="2")


@pytest.fixture
def held_out_recording():
    """User 'b' walking, 30 s of one phone (acc ~200 Hz, gyro ~200 Hz)."""
    spec = SyntheticSpec(n_users=3, devices=("nexus4_1",), seconds_per_activity=30.0, n_gaps=1,
                         max_gap_s=1.0, seed=0)
    return make_recording(spec, "b", "nexus4_1", "walk")


class Collector:
    """A subscriber with a persistent session that keeps every message by topic."""

    def __init__(self, url: str, topic: str, client_id: str, **tls):
        from gateway.client import connect_client

        self.messages: list[tuple[str, bytes]] = []
        self._cond = threading.Condition()
        self._stack = ExitStack()
        self.client = self._stack.enter_context(
            connect_client(url, client_id, clean_session=False, **tls))
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, codes, p: subscribed.set()
        self.client.subscribe(topic, qos=1)
        assert subscribed.wait(10), f"no SUBACK for {topic} within 10 s"

    def _on_message(self, client, userdata, message) -> None:
        with self._cond:
            self.messages.append((message.topic, bytes(message.payload)))
            self._cond.notify_all()

    def json(self, suffix: str = "") -> list[dict]:
        with self._cond:
            return [json.loads(p) for t, p in self.messages if t.endswith(suffix)]

    def wait_for(self, predicate, timeout_s: float = 20.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: predicate(self), timeout_s)

    def close(self) -> None:
        self._stack.close()


@pytest.fixture
def collect():
    made = []

    def make(url: str, topic: str, client_id: str = "collector", **tls) -> Collector:
        made.append(Collector(url, topic, client_id, **tls))
        return made[-1]

    yield make
    for collector in made:
        collector.close()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1 made with the openssl command line."""
    d = tmp_path_factory.mktemp("tls")

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
        "-days", "2", "-subj", "/CN=deepsense test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return TlsFiles(d / "ca.crt", d / "server.crt", d / "server.key")
