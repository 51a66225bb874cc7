"""The edge side on 32-bit x86: a real i386 Debian bookworm userland (the Edison stand-in).

`bench/i386_root.py` builds the userland once with debootstrap (root; cached in
/var/cache/deepsense-i386) and pip-installs the project into a venv over Debian's NumPy 1.24.
Then, inside it: `deepsense predict` on a bundle, and `deepsense serve` + `deepsense replay`
through the host's Mosquitto on loopback. Both must agree with the 64-bit runtime on this
machine (outputs within 1e-4, same labels).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from deepsense.cli import main
from gateway.broker import Mosquitto, find_mosquitto
from gateway.client import open_client

REPO = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("i386_root", REPO / "bench" / "i386_root.py")
i386_root = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(i386_root)

pytestmark = [pytest.mark.slow, pytest.mark.broker]

#: Synthetic seconds per activity that `replay` publishes (6 activities).
REPLAY_SECONDS = "6"


@pytest.fixture(scope="module")
def root():
    """The i386 userland with this checkout installed; (root path, venv python inside it)."""
    if reason := i386_root.why_unavailable():
        if os.environ.get("CI") == "true" and i386_root.find_debootstrap() is None:
            pytest.fail(f"{reason}; CI must install debootstrap (make i386-tools)")
        pytest.skip(reason)
    path = i386_root.ensure_root()
    return path, i386_root.install_project(path, REPO)


@pytest.fixture
def inside(root, tmp_path):
    """A scratch directory in the root: (host path, path as the chroot sees it)."""
    path, _ = root
    scratch = path / "tmp" / f"test-{os.getpid()}-{tmp_path.name}"
    scratch.mkdir(parents=True)
    yield scratch, f"/{scratch.relative_to(path)}"
    shutil.rmtree(scratch, ignore_errors=True)


def test_the_root_is_32_bit_with_the_os_numpy(root):
    path, python = root
    done = i386_root.run_in_root(path, [python, "-c", (
        "import sys, json, platform, numpy, paho.mqtt\n"
        "print(json.dumps({'maxsize': sys.maxsize, 'machine': platform.machine(),\n"
        "  'numpy': numpy.__version__, 'numpy_file': numpy.__file__,\n"
        "  'paho': paho.mqtt.__version__, 'intp': numpy.dtype(numpy.intp).itemsize}))")])
    facts = json.loads(done.stdout)
    assert facts["maxsize"] < 2**32 and facts["intp"] == 4, facts
    assert facts["numpy"].startswith("1.24.") and facts["numpy_file"].startswith("/usr/lib/")
    assert int(facts["paho"].split(".")[0]) >= 2


def test_predict_on_i386_equals_64_bit(root, inside, runs, bundles, tmp_path):
    path, python = root
    scratch, seen = inside
    bundle = bundles["thinned"].with_suffix(".zip")
    shutil.copy2(bundle, scratch / "bundle.zip")
    shutil.copytree(runs["thinned"].parent / "data", scratch / "data")
    i386_root.run_in_root(path, [f"{i386_root.VENV}/bin/deepsense", "predict", "--bundle",
                                 f"{seen}/bundle.zip", "--data", f"{seen}/data", "--out",
                                 f"{seen}/pred"])
    assert main(["predict", "--bundle", str(bundle), "--data", str(scratch / "data"),
                 "--out", str(tmp_path / "pred")]) == 0
    ours, host = ([json.loads(line) for line in
                   (d / "pred" / "predictions.jsonl").read_text().splitlines()]
                  for d in (scratch, tmp_path))
    assert len(ours) == len(host) > 0
    for a, b in zip(ours, host):
        assert (a["window"], a["label"]) == (b["window"], b["label"])
        np.testing.assert_allclose(list(a["probs"].values()), list(b["probs"].values()),
                                   atol=1e-4)
    metrics = [json.loads((d / "pred" / "metrics.json").read_text()) for d in (scratch, tmp_path)]
    for key in ("accuracy", "macro_f1", "nll", "ece", "brier"):  # the 32-bit calibration path
        assert metrics[0][key] == pytest.approx(metrics[1][key], abs=1e-4), key


class _Predictions:
    """Prediction payloads published under one topic prefix, collected by a host client."""

    def __init__(self, url: str, prefix: str):
        self.payloads: dict[str, dict] = {}
        self.client = open_client(url)
        self.client.on_message = lambda c, u, m: self.payloads.__setitem__(
            json.loads(m.payload)["window_id"], json.loads(m.payload))
        self.client.subscribe(f"{prefix}/+/prediction", qos=1)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _wait_for_line(process: subprocess.Popen, text: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if text in line:
            return
        if not line and process.poll() is not None:
            break
    raise AssertionError(f"`{text}` not printed within {timeout_s} s (exit {process.poll()})")


def _stop(process: subprocess.Popen) -> str:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, out[-2000:]
    return out


def test_serve_and_replay_on_i386_equal_64_bit(root, inside, bundles, tmp_path):
    if find_mosquitto() is None:
        pytest.skip("mosquitto not installed (make broker)")
    path, _ = root
    scratch, seen = inside
    bundle = bundles["thinned"].with_suffix(".zip")
    shutil.copy2(bundle, scratch / "bundle.zip")
    broker = Mosquitto(tmp_path / "broker").start()
    deepsense32 = f"{i386_root.VENV}/bin/deepsense"
    flags = ["--broker", broker.url]
    collected = {bits: _Predictions(broker.url, f"i386/{bits}") for bits in ("32", "64")}
    servers = {}
    try:
        servers["32"] = i386_root.popen_in_root(
            path, [deepsense32, "serve", "--bundle", f"{seen}/bundle.zip", "--gateway-id", "gw32",
                   "--topic-prefix", "i386/32", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        servers["64"] = subprocess.Popen(
            [sys.executable, "-m", "deepsense.cli", "serve", "--bundle", str(bundle),
             "--gateway-id", "gw64", "--topic-prefix", "i386/64", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)})
        for server in servers.values():
            _wait_for_line(server, "serving ")
        replay = ["replay", "--data", "synthetic:b", "--seconds", REPLAY_SECONDS,
                  "--device-id", "phone1", "--speed", "0", *flags]
        i386_root.run_in_root(path, [deepsense32, *replay, "--topic-prefix", "i386/32"])
        assert main([*replay, "--topic-prefix", "i386/64"]) == 0
        outs = {bits: _stop(server) for bits, server in servers.items()}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (
                len(collected["32"].payloads) != len(collected["64"].payloads)):
            time.sleep(0.1)
    finally:
        for server in servers.values():
            if server.poll() is None:
                server.kill()
        for collector in collected.values():
            collector.close()
        broker.kill()
    ours, host = collected["32"].payloads, collected["64"].payloads
    assert "all predictions acknowledged" in outs["32"], outs["32"][-2000:]
    assert len(ours) > 10 and sorted(ours) == sorted(host)
    for window_id, payload in ours.items():
        assert payload["label"] == host[window_id]["label"]
        np.testing.assert_allclose(payload["outputs"], host[window_id]["outputs"], atol=1e-4)
