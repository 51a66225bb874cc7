"""Sustained load on the MQTT gateway, and the broker's own ceiling (issues 6 and 14).

    PYTHONPATH=. .venv/bin/python bench/bench_gateway.py [--devices 25 50 100 200]
        [--seconds 30] [--bundle BUNDLE] [--backends numpy litert]
        [--clocks staggered aligned] [--profile 100]

N simulated devices stream acc + gyro at 100 Hz each (0.1 s of one sensor per message: 20
messages and 200 samples per device per second) to a Mosquitto on loopback, with the
recommended settings of gateway/mosquitto.conf. The gateway (`deepsense serve`, NumPy
or LiteRT runtime) runs in its own process pinned to core 0 (`taskset -c 0`); the publisher
runs in another process on core 1. Device clocks are offset by k/N of a window, so windows
of different devices end at different times (as real devices do). Per N:

- samples/s and messages/s the gateway ingested (its own counters, from its final status);
- windows/s predicted (5 s windows: 0.2 windows/s per device);
- end-to-end latency: from the wall time the publisher sent the message that completed a
  window (the first message of each sensor past the window's end) to the wall time the
  subscriber received its prediction, p50 and p99; and the part inside the gateway (the
  prediction's `latency_ms`: message received -> prediction handed to paho);
- lost: sensor messages published but not ingested, and windows completed during the run
  whose prediction never arrived;
- the gateway's CPU use (user + system time / wall time, of its one core).

The broker ceiling: the same publisher, as fast as it can, to a plain subscriber (no
inference), 20,000 QoS 1 messages of 10 samples (one Python publisher: it may be the limit).

Without --bundle, a DeepSense of the width DeepIoT leaves (16 conv filters, GRU 24; a
stand-in for a thinned bundle, trained 1 epoch: accuracy is irrelevant to throughput) is
trained and exported first. Goals (issue 14, NumPy runtime): 100 devices (20,000 samples/s) on
one gateway core at p99 < 100 ms and no loss; 200 devices at p99 < 250 ms. Writes
bench/gateway_latency.png, and with --profile N a py-spy flame graph bench/gateway_flame_N.svg
(py-spy: bench/requirements.txt).
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
import time
from contextlib import ExitStack
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import markdown_table, write_section  # noqa: E402

from edge.runtime import load_bundle  # noqa: E402
from gateway.broker import Mosquitto  # noqa: E402
from gateway.client import connect_client  # noqa: E402
from gateway.messages import encode_samples, window_id  # noqa: E402

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

    return export_bundle(run, work / "bundle", name="bench-thin", formats=("numpy", "tflite"))


def start_batches(n_devices: int, window_s: float, aligned: bool) -> np.ndarray:
    """(n_devices,) batch at which each device switches on. All devices share one clock and
    a window grid starts at a device's first sample, so staggered starts (k/N of a window)
    spread the window ends as real devices do; aligned starts end every window together."""
    if aligned:
        return np.zeros(n_devices, dtype=np.int64)
    return np.arange(n_devices) * int(round(window_s / BATCH_S)) // n_devices


def _publish(url: str, prefix: str, n_devices: int, seconds: float, start_wall: float, out: str,
             as_fast_as_possible: bool, window_s: float, aligned: bool) -> None:
    """Child process: every device's acc and gyro batches, `seconds` from its start; saves
    (batch, device, sensor) wall send times, NaN where a device sent nothing."""
    from gateway.replay import AckCounter

    if os.cpu_count() > 1:
        os.sched_setaffinity(0, {1})
    acked = AckCounter()
    per_batch = int(RATE_HZ * BATCH_S)
    n_batches = int(round(seconds / BATCH_S))
    starts = start_batches(n_devices, window_s, aligned)
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((64, per_batch, 3))
    sent = np.full((n_batches + int(starts.max()), n_devices, 2), np.nan)
    base = np.arange(per_batch)
    n_sent = 0
    with connect_client(url, f"bench-pub-{os.getpid()}") as client:
        client.on_publish = acked.on_publish
        for k in range(sent.shape[0]):
            for d in np.flatnonzero((starts <= k) & (k < starts + n_batches)):
                if not as_fast_as_possible:
                    delay = (start_wall + (k + 1) * BATCH_S + d * BATCH_S / n_devices
                             - time.time())
                    if delay > 0:
                        time.sleep(delay)
                for s, (sensor, offset) in enumerate(OFFSETS_S.items()):
                    t = (k * per_batch + base) / RATE_HZ + offset
                    values = np.sin(t[:, None] * (2.0 + d % 7)) + noise[(k + d + s) % 64]
                    client.publish(f"{prefix}/dev{d}/raw/{sensor}", encode_samples(t, values),
                                   qos=1)
                    sent[k, d, s] = time.time()
                    n_sent += 1
        acked.wait(n_sent, 120)
    np.save(out, sent)


class Subscriber:
    """Keeps (topic, payload, wall time) of every message on `topic`."""

    def __init__(self, url: str, topic: str, client_id: str):
        self.received: list[tuple[str, bytes, float]] = []
        self._stack = ExitStack()
        self.client = self._stack.enter_context(connect_client(url, client_id))
        self.client.on_message = lambda c, u, m: self.received.append(
            (m.topic, bytes(m.payload), time.time()))
        self.client.subscribe(topic, qos=1)
        time.sleep(0.3)

    def close(self) -> None:
        self._stack.close()


def _run_publisher(url: str, prefix: str, n_devices: int, seconds: float, work: Path,
                   window_s: float, as_fast_as_possible: bool = False,
                   aligned: bool = False) -> tuple[np.ndarray, float]:
    out = work / f"sent-{prefix.replace('/', '-')}.npy"
    start_wall = time.time() + 1.0
    ctx = multiprocessing.get_context("spawn")
    child = ctx.Process(target=_publish, args=(url, prefix, n_devices, seconds, start_wall,
                                               str(out), as_fast_as_possible, window_s, aligned))
    child.start()
    child.join()
    return np.load(out), start_wall


def broker_ceiling(broker: Mosquitto, work: Path, n_messages: int = 20_000) -> dict:
    prefix = f"{PREFIX}/ceiling"
    sub = Subscriber(broker.url, f"{prefix}/+/raw/+", "bench-ceiling")
    try:
        n_devices = 100
        seconds = n_messages / (2 * n_devices) * BATCH_S
        sent, _ = _run_publisher(broker.url, prefix, n_devices, seconds, work, 5.0,
                                 as_fast_as_possible=True, aligned=True)
        deadline = time.time() + 60
        while len(sub.received) < sent.size and time.time() < deadline:
            time.sleep(0.05)
        first, last = sent.min(), max(r[2] for r in sub.received)
        return {"messages": sent.size, "received": len(sub.received),
                "msgs_per_s": len(sub.received) / (last - first)}
    finally:
        sub.close()


def cpu_costs(bundle: Path, n_devices: int = 100, seconds: float = 10.0) -> dict:
    """CPU time (not wall: robust to other load) of the gateway's steps, in this process.

    Ingest: parse + per-device stream + window cutting per message; inference per window at
    batch 1 and batched, per runtime.
    """
    from gateway.messages import parse_samples
    from gateway.stream import DeviceStream

    model = load_bundle(bundle)
    rng = np.random.default_rng(0)
    messages = [(d, sensor, encode_samples(
                    (k * 10 + np.arange(10)) / RATE_HZ + off,
                    rng.standard_normal((10, 3))))
                 for k in range(int(seconds / BATCH_S)) for d in range(n_devices)
                 for sensor, off in OFFSETS_S.items()]
    streams = [DeviceStream(f"d{d}", model.features) for d in range(n_devices)]
    windows = []
    started = time.process_time()
    for d, sensor, payload in messages:
        t, values = parse_samples(payload)
        streams[d].add(sensor, t, values)
        windows += streams[d].ready_windows()
    costs = {"ingest_us_per_message": 1e6 * (time.process_time() - started) / len(messages)}
    x = np.stack([w.x for w in windows])
    for backend in ("numpy", "litert"):
        try:
            runtime = load_bundle(bundle, backend=backend)
        except (ImportError, ValueError):
            continue
        started = time.process_time()
        for window in x:
            runtime.predict(window[None])
        middle = time.process_time()
        runtime.predict(x)
        costs[f"{backend}_ms_per_window"] = 1e3 * (middle - started) / len(x)
        costs[f"{backend}_ms_per_window_batched"] = 1e3 * (time.process_time() - middle) / len(x)
    return costs


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def gateway_run(broker: Mosquitto, bundle: Path, n_devices: int, seconds: float,
                work: Path, window_s: float, backend: str, aligned: bool,
                profile: Path | None = None) -> dict:
    """One gateway process under `n_devices` for `seconds` (per device); with `profile`,
    py-spy samples it meanwhile (flame graph SVG there, GIL and thread summary returned)."""
    clocks = "aligned" if aligned else "staggered"
    prefix = f"{PREFIX}/{backend}{n_devices}{clocks}{'p' if profile else ''}"   # fresh session
    config = work / "gateway.toml"
    config.write_text(f'[gateway]\nbroker = "{broker.url}"\ntopic_prefix = "{prefix}"\n'
                      f'gateway_id = "bench"\nmax_devices = 100000\nqueue_size = 1000000\n'
                      f'status_interval_s = 1.0\nidle_flush_s = 600.0\n')
    command = [sys.executable, "-m", "deepsense.cli", "serve", "--bundle", str(bundle),
               "--config", str(config), "--client-id", f"bench-gw-{prefix.replace('/', '-')}",
               "--backend", backend]
    if shutil.which("taskset") and os.cpu_count() > 1:
        command = ["taskset", "-c", "0", *command]
    predictions = Subscriber(broker.url, f"{prefix}/+/prediction", f"bench-pred-{prefix}")
    status = Subscriber(broker.url, f"{prefix}/gateway/bench/status", f"bench-st-{prefix}")
    gateway = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    samplers = []
    try:
        deadline = time.time() + 30
        while not any(json.loads(p)["state"] == "online" for _, p, _ in status.received):
            if time.time() > deadline or gateway.poll() is not None:
                raise RuntimeError("gateway did not come online: " + (gateway.stdout.read()
                                                                      if gateway.poll() else ""))
            time.sleep(0.1)
        if profile is not None:
            samplers = start_profilers(gateway.pid, profile, work, seconds + window_s)
        cpu0, wall0 = cpu_seconds(gateway.pid), time.time()
        sent, start_wall = _run_publisher(broker.url, prefix, n_devices, seconds, work,
                                          window_s, aligned=aligned)
        time.sleep(2.0)                                   # last windows in flight
        cpu = (cpu_seconds(gateway.pid) - cpu0) / (time.time() - wall0)
        for sampler in samplers:
            sampler.wait(timeout=60)
        gateway.send_signal(signal.SIGTERM)
        gateway.communicate(timeout=120)
        time.sleep(0.5)
    finally:
        for sampler in samplers:
            if sampler.poll() is None:
                sampler.kill()
        if gateway.poll() is None:
            gateway.kill()
            gateway.communicate()
        predictions.close()
        status.close()
    final = json.loads(status.received[-1][1])
    per_batch = int(RATE_HZ * BATCH_S)
    starts = start_batches(n_devices, window_s, aligned)
    n_batches = int(round(seconds / BATCH_S))
    last_t = (n_batches * per_batch - 1) / RATE_HZ       # acc, after the device's first sample
    n_complete = int(np.floor((last_t - 1e-6 - window_s) / window_s + 1e-9)) + 1
    latencies, inside, seen = [], [], set()
    for _, payload, t_recv in predictions.received:
        p = json.loads(payload)
        seen.add(p["window_id"])
        device, end = int(p["device_id"][3:]), p["window_end_s"]
        if p["window_index"] >= n_complete:
            continue
        done = max(sent[int(np.ceil((end - off + 1e-6) * RATE_HZ)) // per_batch, device, s]
                   for s, off in enumerate(OFFSETS_S.values()))
        latencies.append(1000 * (t_recv - done))
        inside.append(p["latency_ms"])
    expected = {window_id(f"dev{d}", starts[d] * BATCH_S + k * window_s)
                for d in range(n_devices) for k in range(n_complete)}
    counters = final["counters"]
    duration = np.nanmax(sent) - start_wall
    row = {"devices": n_devices, "clocks": clocks,
           "samples_per_s": counters.get("samples", 0) / duration,
           "messages_lost": int(np.isfinite(sent).sum()) - counters.get("messages", 0),
           "windows_per_s": len(expected & seen) / duration,
           "windows_lost": len(expected - seen),
           "p50_ms": float(np.percentile(latencies, 50)) if latencies else float("nan"),
           "p99_ms": float(np.percentile(latencies, 99)) if latencies else float("nan"),
           "gateway_p50_ms": float(np.percentile(inside, 50)) if inside else float("nan"),
           "gateway_p99_ms": float(np.percentile(inside, 99)) if inside else float("nan"),
           "cpu": cpu, "load": os.getloadavg()[0],
           "refused": sum(v for k, v in counters.items()
                          if k.startswith("refused_") or k == "queue_full")}
    if profile is not None:
        row["profile"] = profile_summary(work)
        row["profile_seconds"] = seconds + window_s + 1
    return row


def start_profilers(pid: int, svg: Path, work: Path, seconds: float) -> list[subprocess.Popen]:
    """py-spy on `pid` for `seconds`, on core 1: a flame graph of every thread's wall time
    (idle included) to `svg`, and raw stacks (active only, GIL holders only) to summarise."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    common = [spy, "record", "--pid", str(pid), "--threads", "--rate", "100", "--nonblocking",
              "--duration", str(int(seconds) + 1)]
    runs = [["--idle", "--format", "flamegraph", "-o", str(svg)],
            ["--format", "raw", "-o", str(work / "profile-active.txt")],
            ["--gil", "--format", "raw", "-o", str(work / "profile-gil.txt")]]
    pin = ["taskset", "-c", "1"] if shutil.which("taskset") and os.cpu_count() > 1 else []
    return [subprocess.Popen([*pin, *common, *extra], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for extra in runs]


#: Where a sampled stack is: the first frame from the leaf that matches (file or function).
_PLACES = [("model (edge runtime)", ("edge/runtime", "edge/ops")),
           ("features (interpolate, FFT)", ("deepsense/data/features",)),
           ("messages (parse JSON, encode)", ("gateway/messages.py:",)),
           ("device streams (buffer, cut)", ("gateway/stream.py",)),
           ("outbox / publish", ("gateway/outbox", "publish (paho")),
           ("paho packet handling", ("paho/mqtt",)),
           ("queue hand-off (put / notify)", ("queue.py", "threading.py"))]


def _place(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, keys in _PLACES:
            if any(key in frame for key in keys):
                return name
    return "other"


def profile_summary(work: Path) -> dict:
    """Samples (100 per second) per thread and place: active (not idle), and holding the GIL."""
    summary = {}
    for kind in ("active", "gil"):
        counts: dict[str, dict[str, int]] = {}
        for line in (work / f"profile-{kind}.txt").read_text().splitlines():
            stack, n = line.rsplit(" ", 1)
            frames = stack.split(";")
            thread = frames[0].split(": ", 1)[-1].split("-bench")[0]
            place = _place(frames[1:])
            counts.setdefault(thread, {}).setdefault(place, 0)
            counts[thread][place] += int(n)
        summary[kind] = counts
    return summary


#: The goals of issue 14: (devices, clocks, p99 bound in ms), NumPy runtime, nothing lost.
GOALS = [(100, "staggered", 100.0), (200, "staggered", 250.0)]


def goal_rows(rows: list[dict]) -> list[list[object]]:
    """One line per goal (and per clocks case measured at its N): met or missed, by how much."""
    lines = []
    for n, _, bound in GOALS:
        for r in rows:
            if r["backend"] != "numpy" or r["devices"] != n:
                continue
            lost = r["messages_lost"] + r["windows_lost"]
            met = r["p99_ms"] < bound and lost == 0
            how = "met" if met else (f"missed: p99 {r['p99_ms'] / bound:.1f}x the bound"
                                     + (f", {lost} lost" if lost else ""))
            lines.append([f"{n} devices, p99 < {bound:.0f} ms, nothing lost", r["clocks"],
                          f"{r['p99_ms']:.1f}", lost, how])
    return lines


def plot(rows: list[dict], path: Path) -> None:
    """p50 and p99 latency against devices, one line per runtime and clocks case."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for (backend, clocks), color in zip(sorted({(r["backend"], r["clocks"]) for r in rows}),
                                        ["C0", "C1", "C2", "C3"]):
        case = sorted((r for r in rows if (r["backend"], r["clocks"]) == (backend, clocks)),
                      key=lambda r: r["devices"])
        n = [r["devices"] for r in case]
        ax.plot(n, [r["p99_ms"] for r in case], "o-", color=color,
                label=f"{backend}, {clocks} clocks: p99")
        ax.plot(n, [r["p50_ms"] for r in case], "s--", color=color, alpha=0.6,
                label=f"{backend}, {clocks} clocks: p50")
    for n, _, bound in GOALS:
        ax.plot([n], [bound], "k*", markersize=12)
    ax.set_yscale("log")
    ax.set_xlabel("devices (100 Hz acc + gyro, 0.1 s per message)")
    ax.set_ylabel("end-to-end latency, ms (log)")
    ax.set_title("MQTT gateway on one core (stars: goals)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[25, 50, 100, 200])
    parser.add_argument("--seconds", type=float, default=30.0, help="streaming time per N")
    parser.add_argument("--bundle", type=Path, help="a thinned bundle (default: make one)")
    parser.add_argument("--backends", nargs="+", default=["numpy", "litert"],
                        choices=["numpy", "litert"])
    parser.add_argument("--clocks", nargs="+", default=["staggered", "aligned"],
                        choices=["staggered", "aligned"],
                        help="aligned: every device's windows end at the same moment (worst case)")
    parser.add_argument("--profile", type=int, metavar="DEVICES",
                        help="also run py-spy on the gateway at this N (numpy, staggered): "
                             "bench/gateway_flame_<N>.svg")
    args = parser.parse_args()
    started = time.perf_counter()
    here = Path(__file__).resolve().parent
    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    bundle = args.bundle or make_bundle(work)
    model = load_bundle(bundle)
    costs = cpu_costs(bundle)
    print(json.dumps(costs), flush=True)
    window_s = model.features.window_s
    loads = [os.getloadavg()]
    with Mosquitto(work / "broker") as broker:
        ceiling = broker_ceiling(broker, work)
        rows = []
        for backend in args.backends:
            for clocks in args.clocks:
                for n in args.devices:
                    r = gateway_run(broker, bundle, n, args.seconds, work, window_s, backend,
                                    clocks == "aligned")
                    rows.append({"backend": backend, **r})
                    print(json.dumps(rows[-1]), flush=True)
        profile = None
        if args.profile:
            svg = here / f"gateway_flame_{args.profile}.svg"
            profile = gateway_run(broker, bundle, args.profile, args.seconds, work, window_s,
                                  "numpy", False, profile=svg)
            print(json.dumps(profile), flush=True)
    loads.append(os.getloadavg())
    plot(rows, here / "gateway_latency.png")
    table = markdown_table(
        ["runtime", "clocks", "devices", "samples/s in", "windows/s out", "p50 latency ms",
         "p99 latency ms", "in gateway p50/p99 ms", "messages lost", "windows lost", "refused",
         "gateway CPU (1 core)", "machine load (1 min)"],
        [[r["backend"], r["clocks"], r["devices"], f"{r['samples_per_s']:,.0f}",
          f"{r['windows_per_s']:.1f}", f"{r['p50_ms']:.1f}", f"{r['p99_ms']:.1f}",
          f"{r['gateway_p50_ms']:.1f} / {r['gateway_p99_ms']:.1f}", r["messages_lost"],
          r["windows_lost"], r["refused"], f"{100 * r['cpu']:.0f}%", f"{r['load']:.1f}"]
         for r in rows])
    goals = markdown_table(["goal (NumPy runtime)", "clocks", "p99 ms", "lost", "result"],
                           goal_rows(rows))
    params = model.manifest.get("parameters", {})
    body = (f"Bundle: {model.name}, {params.get('exported', '?')} parameters. "
            f"{args.seconds:.0f} s of streaming per device and row; 100 Hz acc + gyro per "
            f"device, 0.1 s per message; gateway pinned to core 0, publisher to core 1. "
            f"Staggered clocks: device k switches on k/N of a window after device 0, so "
            f"windows end spread out; aligned: every device's windows end in the same 0.1 s "
            f"(the worst case; the issue-6 rows were this case, unintended). Load average "
            f"(1/5/15 min) at the start {'/'.join(f'{v:.1f}' for v in loads[0])}, at the end "
            f"{'/'.join(f'{v:.1f}' for v in loads[1])}.\n\n{table}\n\n"
            f"![p50/p99 latency against devices](bench/gateway_latency.png)\n\n{goals}\n\n"
            f"Broker ceiling (publisher -> subscriber, no inference, QoS 1, 10 samples per "
            f"message): {ceiling['msgs_per_s']:,.0f} messages/s "
            f"({10 * ceiling['msgs_per_s']:,.0f} samples/s), {ceiling['received']} of "
            f"{ceiling['messages']} received.\n\n"
            f"CPU per step (process time, 100 devices): ingest (parse, stream, cut windows) "
            f"{costs['ingest_us_per_message']:.0f} us per message = "
            f"{costs['ingest_us_per_message'] * 2000 / 1e4:.0f}% of a core at 100 devices "
            f"(2,000 messages/s); inference per window "
            + ", ".join(f"{b} {costs[f'{b}_ms_per_window']:.2f} ms at batch 1, "
                        f"{costs[f'{b}_ms_per_window_batched']:.2f} ms batched"
                        for b in ("numpy", "litert") if f"{b}_ms_per_window" in costs)
            + f" (100 devices: 20 windows/s).\n\n"
            + (profile_text(profile) if profile else "")
            + f"Total benchmark time {time.perf_counter() - started:.0f} s.")
    write_section("MQTT gateway under load (issue 6)",
                  "PYTHONPATH=. .venv/bin/python bench/bench_gateway.py " + " ".join(sys.argv[1:]),
                  body)


def profile_text(row: dict) -> str:
    """The py-spy summary of a profiled run as one paragraph (shares of wall time)."""
    seconds = row["profile_seconds"]
    parts = []
    for kind, label in (("active", "running or runnable"), ("gil", "holding the GIL")):
        for thread, places in row["profile"][kind].items():
            total = sum(places.values())
            top = ", ".join(f"{place} {100 * n / (100 * seconds):.0f}%"
                            for place, n in sorted(places.items(), key=lambda x: -x[1])[:4])
            parts.append(f"{thread} {label} {100 * total / (100 * seconds):.0f}% ({top})")
    return (f"Profile (py-spy, 100 Hz, {row['devices']} devices, staggered; "
            f"bench/gateway_flame_{row['devices']}.svg; shares of wall time): "
            + "; ".join(parts) + f". This run: p50/p99 {row['p50_ms']:.1f}/{row['p99_ms']:.1f} "
            f"ms, gateway CPU {100 * row['cpu']:.0f}%.\n\n")


if __name__ == "__main__":
    main()
