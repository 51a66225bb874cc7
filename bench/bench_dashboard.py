"""The dashboard with many devices, measured in a real browser.

N simulated devices publish one prediction each per `--interval-s` (6 classes, random
probabilities) to a local Mosquitto, a gateway status comes every second, and half way
the model version changes (an event on every timeline). The dashboard server subscribes;
headless Chromium (Debian's, through Playwright) shows the page. Reported from the page
(`window.deepsenseStats`): animation frames per second, SSE frames per second, render time
per frame, long tasks (> 50 ms, the browser's own measure of a frozen page), and the update
latency from the dashboard server receiving a prediction to the page drawing it.

    PYTHONPATH=. python bench/bench_dashboard.py [--devices 200] [--interval-s 1 0.2]
                                                 [--max-fps 4 10 1000] [--seconds 20]

Writes its section of BENCHMARKS.md.

Needs Mosquitto, Chromium (`apt-get install chromium`) and playwright (the 'dev' extra).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from gateway.broker import Mosquitto                      # noqa: E402
from gateway.client import make_client                    # noqa: E402
from gateway.dashboard import Dashboard                   # noqa: E402
from common import markdown_table, write_section          # noqa: E402

CLASSES = ("bike", "sit", "stand", "walk", "stairsup", "stairsdown")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
PREFIX = "bench/v1"


def publish_predictions(url: str, n_devices: int, interval_s: float, seconds: float,
                        stop: threading.Event) -> int:
    """Publish one prediction per device per `interval_s`, spread evenly; return the count."""
    client, host, port = make_client(url, "bench-devices")
    client.connect(host, port)
    client.loop_start()
    rng = random.Random(0)
    started, n = time.monotonic(), 0
    try:
        while not stop.is_set() and time.monotonic() - started < seconds:
            version = "1" if time.monotonic() - started < seconds / 2 else "2"
            for k in range(n_devices):
                weights = [rng.gammavariate(0.5, 1.0) for _ in CLASSES]
                total = sum(weights)
                probs = {c: w / total for c, w in zip(CLASSES, weights)}
                label = max(probs, key=probs.get)
                entropy = -sum(p * math.log(p) for p in probs.values() if p > 0)
                payload = {"schema": 1, "device_id": f"dev{k:03d}", "label": label,
                           "probs": probs, "max_prob": probs[label], "entropy": entropy,
                           "model": {"name": "har", "version": version, "sha256": version * 64},
                           "gateway_id": "gw1", "latency_ms": 2.0}
                client.publish(f"{PREFIX}/dev{k:03d}/prediction", json.dumps(payload), qos=0)
                n += 1
                due = started + (n / n_devices) * interval_s
                time.sleep(max(0.0, due - time.monotonic()))
            client.publish(f"{PREFIX}/gateway/gw1/status", json.dumps({
                "schema": 1, "gateway_id": "gw1", "state": "online",
                "model": {"name": "har", "version": version, "sha256": version * 64,
                          "task": "activity"},
                "devices": n_devices, "queue_depth": 0, "pending_predictions": 0,
                "predictions_dropped": 0, "counters": {"predictions": n}}), qos=1, retain=True)
    finally:
        client.disconnect()
        client.loop_stop()
    return n


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def measure(n_devices: int, interval_s: float, seconds: float, max_fps: float,
            chromium: str) -> dict:
    """One run: broker, dashboard, simulated devices and Chromium; the page's numbers."""
    from playwright.sync_api import sync_playwright

    stop = threading.Event()
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(tmp) as broker, \
            Dashboard(broker.url, PREFIX, 0, max_fps=max_fps) as dashboard, \
            sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.goto(dashboard.url)
        warmup_s = 5.0
        result: dict = {}
        publisher = threading.Thread(target=lambda: result.update(n=publish_predictions(
            broker.url, n_devices, interval_s, warmup_s + seconds, stop)))
        publisher.start()
        page.wait_for_function(f"document.querySelectorAll('.device').length >= {n_devices}",
                               timeout=30_000)
        time.sleep(max(0.0, warmup_s - 1))
        page.evaluate("""() => {
            window.longTasks = [];
            new PerformanceObserver((list) => {
                for (const e of list.getEntries()) window.longTasks.push(e.duration);
            }).observe({type: "longtask", buffered: false});
            window.deepsenseStats.reset();
        }""")
        measured_from = time.monotonic()
        load = os.getloadavg()[0]
        publisher.join()
        elapsed = time.monotonic() - measured_from
        stats = page.evaluate("""() => ({...window.deepsenseStats, longTasks: window.longTasks,
                                        devices: document.querySelectorAll('.device').length})""")
        browser.close()
    return {
        "devices": stats["devices"], "predictions_per_s": round(stats["predictions"] / elapsed),
        "max_fps": max_fps, "animation_fps": round(stats["rafTicks"] / elapsed, 1),
        "sse_frames_per_s": round(stats["frames"] / elapsed, 1),
        "render_ms": [round(percentile(stats["renderMs"], q), 1) for q in (50, 95, 100)],
        "latency_ms": [round(percentile(stats["latencyMs"], q)) for q in (50, 95, 100)],
        "long_tasks": len(stats["longTasks"]),
        "long_task_ms_max": round(max(stats["longTasks"], default=0)),
        "seconds": round(elapsed, 1), "load": round(max(load, os.getloadavg()[0]), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[200])
    parser.add_argument("--interval-s", type=float, nargs="+", default=[1.0, 0.2],
                        help="seconds between two predictions of one device (1: a 1 s stride)")
    parser.add_argument("--max-fps", type=float, nargs="+", default=[4.0, 10.0, 1000.0],
                        help="the server's frame caps to compare (1000: no cap)")
    parser.add_argument("--seconds", type=float, default=20.0, help="measured seconds per run")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--no-write", action="store_true", help="print, leave BENCHMARKS.md")
    args = parser.parse_args()
    rows = []
    for n in args.devices:
        for interval in args.interval_s:
            for cap in args.max_fps:
                row = measure(n, interval, args.seconds, cap, args.chromium)
                print(json.dumps(row), flush=True)
                rows.append([row["devices"], row["predictions_per_s"],
                             "none" if cap >= 1000 else f"{cap:g}", row["sse_frames_per_s"],
                             row["animation_fps"], " / ".join(map(str, row["render_ms"])),
                             " / ".join(map(str, row["latency_ms"])),
                             f"{row['long_tasks']} (max {row['long_task_ms_max']} ms)",
                             row["load"]])
    body = (f"{args.seconds:g} s measured per row after 5 s of warm-up; simulated devices publish "
            "one prediction each per interval (6 classes) to Mosquitto, a status comes every "
            "second, the model version changes half way; headless Debian Chromium "
            f"{_chromium_version(args.chromium)} at 1600x1000 (about 40 of the cards on screen). "
            "Update latency: dashboard server receives a prediction -> the page has drawn it. "
            "Long tasks: the browser's own count of main-thread tasks over 50 ms.\n\n"
            + markdown_table(["devices", "predictions/s", "server cap (frames/s)",
                              "SSE frames/s", "animation fps", "render ms p50 / p95 / max",
                              "update latency ms p50 / p95 / max", "long tasks",
                              "machine load (1 min)"], rows))
    if args.no_write:
        print(body)
    else:
        write_section("Dashboard in a browser (issue 16)",
                      "PYTHONPATH=. .venv/bin/python bench/bench_dashboard.py " + " ".join(
                          sys.argv[1:]), body)
    return 0


def _chromium_version(path: str) -> str:
    import subprocess

    out = subprocess.run([path, "--version"], capture_output=True, text=True).stdout
    return out.split()[1] if len(out.split()) > 1 else "?"


if __name__ == "__main__":
    sys.exit(main())
