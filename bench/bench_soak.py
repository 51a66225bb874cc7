"""Soak: 50 devices for >= 30 minutes of data, with a broker restart, a full spool disk and a
refused over-the-air update in the middle (issue 13).

    PYTHONPATH=. .venv/bin/python bench/bench_soak.py [--devices 50] [--minutes 30]
        [--speed 3] [--bundle BUNDLE]

`replay` publishes `--minutes` of synthetic data (acc + gyro ~200 Hz, 0.1 s per message) for
each of `--devices` devices at `--speed` x real time to Mosquitto on loopback; the gateway is
`deepsense serve --spool` in its own process. Its spool lives on a 4 MiB tmpfs mounted for
the run (root only; otherwise the full-disk phase is skipped and the table says so). Events,
at fractions of the run:

- 1/4: graceful broker restart (SIGTERM, start again on the same port and state);
- 1/2: the spool disk is filled to the last byte for 60 s, then freed;
- 3/4: an unsigned model announcement (refused: `model_update_refused`, code `unsigned`).

The gateway's resident memory is sampled every second and plotted (bench/soak_rss.png).
Reported: windows expected (the same recordings cut offline) and predicted, lost, duplicates,
`spool_error` count, the states the retained status went through, RSS start / max / end, and
the exit code on SIGTERM. Writes the section "Gateway soak (issue 13)" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fuzz import Collector, rss_mib  # noqa: E402
from report import markdown_table, write_section  # noqa: E402

from deepsense.data.features import make_windows  # noqa: E402
from deepsense.data.recording import Recording, SensorStream  # noqa: E402
from deepsense.data.synthetic import SyntheticSpec, make_recording  # noqa: E402
from edge.runtime import load_bundle  # noqa: E402
from gateway.broker import Mosquitto  # noqa: E402
from gateway.client import open_client  # noqa: E402
from gateway.replay import plan_messages, replay  # noqa: E402
from gateway.topics import Topics  # noqa: E402

PREFIX = "soak"
PLOT = Path(__file__).resolve().parent / "soak_rss.png"
#: Seconds of data planned and replayed at a time (50 devices x 60 s: ~12,000 messages).
SEGMENT_S = 60.0


def split_recording(recording: Recording, segment_s: float) -> list[Recording]:
    """`recording` cut into consecutive pieces of `segment_s` seconds (same clock)."""
    start, end = recording.start_s, max(float(s.t_s[-1]) for s in recording.streams.values())
    pieces = []
    for lo in np.arange(start, end, segment_s):
        streams = {}
        for sensor, stream in recording.streams.items():
            keep = (stream.t_s >= lo) & (stream.t_s < lo + segment_s)
            streams[sensor] = SensorStream(stream.t_s[keep], stream.values[keep])
        if all(len(s) for s in streams.values()):
            pieces.append(replace(recording, streams=streams))
    return pieces


def mount_small_disk(path: Path, size: str = "4m") -> bool:
    """A tmpfs of `size` at `path` (root only); False where it cannot be mounted."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True).returncode == 0


def fill(path: Path) -> Path:
    """Write zeros to ``path/filler`` until the disk is full."""
    filler = path / "filler"
    with filler.open("wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError:
            pass
    return filler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of data")
    parser.add_argument("--speed", type=float, default=3.0, help="x real time")
    parser.add_argument("--bundle", type=Path)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    if args.bundle is None:
        from bench_gateway import make_bundle

        args.bundle = make_bundle(work)
    model = load_bundle(args.bundle)
    spec = SyntheticSpec(n_users=1, devices=("nexus4_1",), seconds_per_activity=args.minutes * 60,
                         n_gaps=0, seed=0)
    recording = make_recording(spec, "a", "nexus4_1", "walk")
    topics = Topics(PREFIX, "soak")
    segments = split_recording(recording, SEGMENT_S)    # planned one at a time: memory
    starts = make_windows(recording, model.features).start_s
    expected = {f"dev-{k}@{s:.3f}" for k in range(args.devices) for s in starts}
    disk = work / "spool-disk"
    full_disk = mount_small_disk(disk)
    rss: list[tuple[float, float]] = []
    events: list[tuple[float, str]] = []
    try:
        with Mosquitto(work / "broker") as broker:
            toml = work / "gateway.toml"
            toml.write_text(f'[gateway]\nbroker = "{broker.url}"\ntopic_prefix = "{PREFIX}"\n'
                            f'gateway_id = "soak"\nspool = "{disk}/spool.db"\n'
                            f'status_interval_s = 2.0\nidle_flush_s = 600.0\n'
                            f'shutdown_timeout_s = 60.0\nreconnect_max_s = 2\n')
            predictions = Collector(broker.url, f"{PREFIX}/+/prediction", "soak-predictions")
            status = Collector(broker.url, topics.status, "soak-status")
            log = (work / "gateway.log").open("w")
            gateway = subprocess.Popen([sys.executable, "-m", "deepsense.cli", "serve",
                                        "--bundle", str(args.bundle), "--config", str(toml)],
                                       stdout=log, stderr=subprocess.STDOUT)
            t0 = time.monotonic()
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(1.0):
                    try:
                        rss.append((time.monotonic() - t0, rss_mib(gateway.pid)))
                    except (OSError, ValueError, IndexError):
                        return

            threading.Thread(target=sample, daemon=True).start()
            time.sleep(3)
            client = open_client(broker.url, "soak-replay", clean_session=False)
            client.reconnect_delay_set(1, 2)
            unacknowledged = []

            def send() -> None:
                for segment in segments:
                    messages = plan_messages([segment], topics, device_id="dev",
                                             n_copies=args.devices)
                    unacknowledged.append(replay(messages, client, speed=args.speed,
                                                 timeout_s=120).n_unacknowledged)

            sender = threading.Thread(target=send)
            sender.start()
            run_s = args.minutes * 60 / args.speed

            def at(fraction: float, what: str) -> None:
                delay = t0 + fraction * run_s - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                events.append((time.monotonic() - t0, what))

            at(0.25, "broker restart")
            broker.stop()
            time.sleep(1.0)
            broker.start()
            if full_disk:
                at(0.5, "spool disk full")
                filler = fill(disk)
                time.sleep(60)
                filler.unlink()
                events.append((time.monotonic() - t0, "spool disk freed"))
            at(0.75, "unsigned OTA announcement")
            operator = open_client(broker.url, "soak-operator")
            operator.publish(topics.model, json.dumps({"sha256": "0" * 64,
                                                       "url": "https://x/"}), qos=1)
            operator.disconnect()
            sender.join()
            time.sleep(5)
            gateway.send_signal(signal.SIGTERM)
            exit_code = gateway.wait(180)
            stop.set()
            log.close()
            time.sleep(2)
            predictions.close()
            status.close()
    finally:
        if full_disk:
            subprocess.run(["umount", str(disk)], capture_output=True)
    ids = [p["window_id"] for p in predictions.json()]
    states = [s["state"] for s in status.json()]
    counters = Counter(status.json()[-1]["counters"]) if states else Counter()
    lost = expected - set(ids)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.5))
    ax.plot([t for t, _ in rss], [m for _, m in rss])
    for t, what in events:
        ax.axvline(t, color="grey", linestyle=":")
        ax.text(t, ax.get_ylim()[1], what, rotation=90, va="top", fontsize=7)
    ax.set_xlabel("seconds (wall)")
    ax.set_ylabel("gateway RSS (MiB)")
    ax.set_title(f"soak: {args.devices} devices, {args.minutes:g} min of data at x{args.speed:g}")
    fig.tight_layout()
    fig.savefig(PLOT, dpi=110)
    table = markdown_table(
        ["devices", "data", "windows expected", "predicted", "lost", "duplicates",
         "sensor messages not acknowledged",
         "spool_error", "OTA refused", "status states", "RSS start / max / end MiB",
         "exit on SIGTERM"],
        [[args.devices, f"{args.minutes:g} min at x{args.speed:g}", len(expected),
          len(expected & set(ids)), len(lost), len(ids) - len(set(ids)), sum(unacknowledged),
          counters.get("spool_error", 0) if full_disk else "not run (no tmpfs)",
          counters.get("model_update_refused", 0), " > ".join(dict.fromkeys(states)),
          f"{rss[0][1]:.0f} / {max(m for _, m in rss):.0f} / {rss[-1][1]:.0f}" if rss else "-",
          exit_code]])
    write_section("Gateway soak (issue 13)",
                  f"PYTHONPATH=. .venv/bin/python bench/bench_soak.py --devices {args.devices} "
                  f"--minutes {args.minutes:g} --speed {args.speed:g}",
                  f"{table}\n\nEvents (wall s): "
                  + ", ".join(f"{what} {t:.0f}" for t, what in events)
                  + f". RSS plot: bench/{PLOT.name}. Lost windows are those the README's "
                  "guarantees do not cover (a broker restart is graceful here: none expected).")


if __name__ == "__main__":
    main()
