"""Sustained load on the MQTT gateway, and the broker's own ceiling (issue 6).

    PYTHONPATH=. .venv/bin/python bench/bench_gateway.py [--devices 25 50 100 200]
        [--seconds 30] [--bundle BUNDLE]

N simulated devices stream acc + gyro at 100 Hz each (0.1 s of one sensor per message: 20
messages and 200 samples per device per second) to a Mosquitto on loopback, with the
recommended settings of gateway/mosquitto.conf. The gateway (`deepsense serve`, NumPy
runtime) runs in its own process pinned to core 0 (`taskset -c 0`); the publisher and the
prediction subscriber run in other processes on the other core. Per N:

- samples/s and messages/s the gateway ingested (its own counters, from its final status);
- windows/s predicted (5 s windows: 0.2 windows/s per device);
- end-to-end latency: from the wall time the publisher sent the message that completed a
  window (the first message of each sensor past the window's end) to the wall time the
  subscriber received its prediction, p50 and p99;
- lost: sensor messages published but not ingested, and windows completed during the run
  whose prediction never arrived;
- the gateway's CPU use (user + system time / wall time, of its one core).

The broker ceiling: the same publisher, as fast as it can, to a plain subscriber (no
inference), 20,000 QoS 1 messages of 10 samples.

Without --bundle, a DeepSense of the width DeepIoT leaves (16 conv filters, GRU 24; a
stand-in for a thinned bundle, trained 1 epoch: accuracy is irrelevant to throughput) is
trained and exported first. Goal: 100 devices (20,000 samples/s) on one gateway core with
p99 < 100 ms and no loss.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import markdown_table, write_section  # noqa: E402

from gateway.broker import Mosquitto  # noqa: E402
from gateway.messages import encode_samples  # noqa: E402
from gateway.replay import connect_client  # noqa: E402
from gateway.runtime import load_bundle  # noqa: E402

RATE_HZ = 100.0
BATCH_S = 0.1
OFFSETS_S = {"acc": 0.0, "gyro": 0.003}
PREFIX = "bench"


def make_bundle(work: Path) -> Path:
    """Train (1 epoch) and export a DeepSense as narrow as a DeepIoT-thinned one."""
    from deepsense.cli import main as cli

    data, run = work / "data", work / "run"
    assert cli(["prepare", "--source", "synthetic", "--out", str(data), "--users", "3",
                "--seconds", "10"]) == 0
    assert cli(["train", "--data", str(data), "--out", str(run), "--epochs", "1",
                "--split", "loso:c", "--set", "model.conv_filters=16",
                "--set", "model.merge_filters=16", "--set", "model.gru_units=[24, 24]"]) == 0
    from deepsense.export import export_bundle

    return export_bundle(run, work / "bundle", name="bench-thin")


def _publish(url: str, n_devices: int, seconds: float, start_wall: float, out: str,
             as_fast_as_possible: bool) -> None:
    """Child process: every device's acc and gyro batches; saves (batch, device, sensor) times."""
    if os.cpu_count() > 1:
        os.sched_setaffinity(0, {1})
    client = connect_client(url, f"bench-pub-{os.getpid()}")
    acked = threading.Semaphore(0)
    client.on_publish = lambda *a: acked.release()
    per_batch = int(RATE_HZ * BATCH_S)
    n_batches = int(round(seconds / BATCH_S))
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((64, per_batch, 3))
    sent = np.zeros((n_batches, n_devices, 2))
    base = np.arange(per_batch)
    n_sent = 0
    for k in range(n_batches):
        for d in range(n_devices):
            if not as_fast_as_possible:
                delay = start_wall + (k + 1) * BATCH_S + d * BATCH_S / n_devices - time.time()
                if delay > 0:
                    time.sleep(delay)
            for s, (sensor, offset) in enumerate(OFFSETS_S.items()):
                t = (k * per_batch + base) / RATE_HZ + offset
                values = np.sin(t[:, None] * (2.0 + d % 7)) + noise[(k + d + s) % 64]
                client.publish(f"{PREFIX}/dev{d}/raw/{sensor}", encode_samples(t, values), qos=1)
                sent[k, d, s] = time.time()
                n_sent += 1
    for _ in range(n_sent):
        acked.acquire(timeout=30)
    client.disconnect()
    client.loop_stop()
    np.save(out, sent)


class Subscriber:
    """Keeps (topic, payload, wall time) of every message on `topic`."""

    def __init__(self, url: str, topic: str, client_id: str):
        self.received: list[tuple[str, bytes, float]] = []
        self.client = connect_client(url, client_id, clean_session=False)
        self.client.on_message = lambda c, u, m: self.received.append(
            (m.topic, bytes(m.payload), time.time()))
        self.client.subscribe(topic, qos=1)
        time.sleep(0.3)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _run_publisher(url: str, n_devices: int, seconds: float, work: Path,
                   as_fast_as_possible: bool = False) -> tuple[np.ndarray, float]:
    out = work / f"sent-{n_devices}.npy"
    start_wall = time.time() + 1.0
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_publish, args=(url, n_devices, seconds, start_wall, str(out),
                                               as_fast_as_possible))
    child.start()
    child.join()
    return np.load(out), start_wall


def broker_ceiling(broker: Mosquitto, work: Path, n_messages: int = 20_000) -> dict:
    sub = Subscriber(broker.url, f"{PREFIX}/+/raw/+", "bench-ceiling")
    try:
        n_devices = 100
        seconds = n_messages / (2 * n_devices) * BATCH_S
        sent, _ = _run_publisher(broker.url, n_devices, seconds, work, as_fast_as_possible=True)
        deadline = time.time() + 60
        while len(sub.received) < sent.size and time.time() < deadline:
            time.sleep(0.05)
        first, last = sent.min(), max(r[2] for r in sub.received)
        return {"messages": sent.size, "received": len(sub.received),
                "msgs_per_s": len(sub.received) / (last - first)}
    finally:
        sub.close()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway_run(broker: Mosquitto, bundle: Path, n_devices: int, seconds: float,
                work: Path, window_s: float) -> dict:
    config = work / "gateway.toml"
    config.write_text(f'[gateway]\nbroker = "{broker.url}"\ntopic_prefix = "{PREFIX}"\n'
                      f'gateway_id = "bench"\nmax_devices = 100000\nqueue_size = 1000000\n'
                      f'status_interval_s = 1.0\nidle_flush_s = 600.0\n')
    command = [sys.executable, "-m", "deepsense.cli", "serve", "--bundle", str(bundle),
               "--config", str(config), "--client-id", f"bench-gw-{n_devices}"]
    if shutil.which("taskset") and os.cpu_count() > 1:
        command = ["taskset", "-c", "0", *command]
    predictions = Subscriber(broker.url, f"{PREFIX}/+/prediction", f"bench-pred-{n_devices}")
    status = Subscriber(broker.url, f"{PREFIX}/gateway/bench/status", f"bench-st-{n_devices}")
    gateway = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    try:
        deadline = time.time() + 30
        while not any(json.loads(p)["state"] == "online" for _, p, _ in status.received):
            if time.time() > deadline or gateway.poll() is not None:
                raise RuntimeError("gateway did not come online: " + (gateway.stdout.read()
                                                                      if gateway.poll() else ""))
            time.sleep(0.1)
        cpu0, wall0 = cpu_seconds(gateway.pid), time.time()
        sent, start_wall = _run_publisher(broker.url, n_devices, seconds, work)
        time.sleep(2.0)                                   # last windows in flight
        cpu = (cpu_seconds(gateway.pid) - cpu0) / (time.time() - wall0)
        gateway.send_signal(signal.SIGTERM)
        gateway.communicate(timeout=120)
        time.sleep(0.5)
    finally:
        if gateway.poll() is None:
            gateway.kill()
            gateway.communicate()
        predictions.close()
        status.close()
    final = json.loads(status.received[-1][1])
    per_batch = int(RATE_HZ * BATCH_S)
    last_t = (sent.shape[0] * per_batch - 1) / RATE_HZ
    n_complete = int(np.floor((last_t - 1e-6 - window_s) / window_s + 1e-9)) + 1
    latencies, seen = [], set()
    for _, payload, t_recv in predictions.received:
        p = json.loads(payload)
        seen.add(p["window_id"])
        device, end = int(p["device_id"][3:]), p["window_end_s"]
        if p["window_index"] >= n_complete:
            continue
        done = max(sent[int(np.ceil((end - off + 1e-6) * RATE_HZ)) // per_batch, device, s]
                   for s, off in enumerate(OFFSETS_S.values()))
        latencies.append(1000 * (t_recv - done))
    expected = {f"dev{d}@{k * window_s + OFFSETS_S['acc']:.3f}" for d in range(n_devices)
                for k in range(n_complete)}
    counters = final["counters"]
    duration = sent.max() - start_wall
    return {"devices": n_devices, "samples_per_s": counters.get("samples", 0) / duration,
            "messages_lost": sent.size - counters.get("messages", 0),
            "windows_per_s": len(expected & seen) / duration,
            "windows_lost": len(expected - seen),
            "p50_ms": float(np.percentile(latencies, 50)) if latencies else float("nan"),
            "p99_ms": float(np.percentile(latencies, 99)) if latencies else float("nan"),
            "cpu": cpu, "refused": sum(v for k, v in counters.items()
                                       if k.startswith("refused_") or k == "queue_full")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--seconds", type=float, default=30.0, help="streaming time per N")
    parser.add_argument("--bundle", type=Path, help="a thinned bundle (default: make one)")
    args = parser.parse_args()
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    bundle = args.bundle or make_bundle(work)
    model = load_bundle(bundle)
    with Mosquitto(work / "broker") as broker:
        ceiling = broker_ceiling(broker, work)
        rows = []
        for n in args.devices:
            r = gateway_run(broker, bundle, n, args.seconds, work, model.features.window_s)
            rows.append(r)
            print(json.dumps(r), flush=True)
    table = markdown_table(
        ["devices", "samples/s in", "windows/s out", "p50 latency ms", "p99 latency ms",
         "messages lost", "windows lost", "refused", "gateway CPU (1 core)"],
        [[r["devices"], f"{r['samples_per_s']:,.0f}", f"{r['windows_per_s']:.1f}",
          f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}", r["messages_lost"], r["windows_lost"],
          r["refused"], f"{100 * r['cpu']:.0f}%"] for r in rows])
    ok = [r for r in rows if r["p99_ms"] < 100 and r["messages_lost"] == 0
          and r["windows_lost"] == 0]
    params = model.manifest.get("parameters", {})
    body = (f"Bundle: {model.name}, {params.get('exported', '?')} parameters, NumPy runtime. "
            f"{args.seconds:.0f} s of streaming per row; 100 Hz acc + gyro per device, 0.1 s "
            f"per message; gateway pinned to core 0.\n\n{table}\n\n"
            f"Broker ceiling (publisher -> subscriber, no inference, QoS 1, 10 samples per "
            f"message): {ceiling['msgs_per_s']:,.0f} messages/s "
            f"({10 * ceiling['msgs_per_s']:,.0f} samples/s), {ceiling['received']} of "
            f"{ceiling['messages']} received.\n\n"
            f"Largest N meeting the goal (p99 < 100 ms, nothing lost): "
            f"{max((r['devices'] for r in ok), default='none')}. "
            f"Total benchmark time {time.perf_counter() - started:.0f} s.")
    write_section("MQTT gateway under load (issue 6)",
                  "PYTHONPATH=. .venv/bin/python bench/bench_gateway.py " + " ".join(sys.argv[1:]),
                  body)


if __name__ == "__main__":
    main()
