"""The live part of `deepsense demo`: broker, gateway, replay of held-out recordings, summary.

```python
from gateway.demo import run_live_demo
summary = run_live_demo("demo-output/bundle", held_out_recordings, workdir="demo-output/live")
```

Each recording is replayed as its own device (``<device>-<label>``) so that its windows are
exactly the windows `make_windows` cuts from it; the live accuracy and calibration (ECE of
the published probabilities) are then checked against the offline ones of the same bundle
on the same windows.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from deepsense.data.features import make_windows
from deepsense.data.recording import Recording
from edge.calibration import expected_calibration_error
from edge.runtime import load_bundle
from gateway.broker import start_local_broker
from gateway.client import connect_client
from gateway.config import GatewayConfig
from gateway.messages import window_id
from gateway.replay import plan_messages, replay
from gateway.service import Gateway
from gateway.topics import Topics

#: Messages the speed-0 replay may be ahead of the gateway (a few devices' worth of 0.1 s).
_MAX_AHEAD = 20

if TYPE_CHECKING:
    from gateway.dashboard import Dashboard


def run_live_demo(bundle: str | Path, recordings: Sequence[Recording], workdir: str | Path, *,
                  speed: float = 0.0, n_show: int = 8,
                  print_fn: Callable[[str], None] = print,
                  dashboard_port: int | None = None) -> dict:
    """Serve `bundle` over a local broker, replay `recordings` through it, compare with offline.

    Args:
        bundle: bundle directory or .zip (a classifier).
        recordings: labelled recordings (e.g. the held-out user's).
        workdir: the broker's files.
        speed: replay speed x real time; 0: as fast as the gateway keeps up (the replay
            waits whenever more than `_MAX_AHEAD` messages are not yet taken in).
        n_show: how many live predictions to print as they arrive.
        dashboard_port: also serve the live dashboard on this port, and keep it (and the
            broker) open after the replay until Ctrl-C.

    Returns:
        ``n_windows``, ``n_predictions``, ``live_accuracy``, ``offline_accuracy``,
        ``live_ece``, ``offline_ece`` (expected calibration error of the predicted
        probabilities, 15 bins), ``latency_ms_p50``/``p95`` (gateway: message in -> prediction
        out), ``model_bytes``, ``broker`` (which broker ran).
    """
    model = load_bundle(bundle)
    expected: dict[str, str] = {}
    offline_probs: list[np.ndarray] = []
    named = []
    for rec in recordings:
        device = f"{rec.device}-{rec.label}"
        named.append((device, rec))
        windows = make_windows(rec, model.features)
        if len(windows.x):
            offline_probs.append(model.predict(windows.x))
        for start in windows.start_s:
            expected[window_id(device, start)] = rec.label
    topics = Topics("demo", "demo")
    messages = [m for device, rec in named for m in plan_messages([rec], topics, device_id=device)]
    messages.sort(key=lambda m: m.at_s)
    broker = start_local_broker(workdir)
    received: dict[str, dict] = {}
    lock = threading.Lock()

    def on_message(client, userdata, message) -> None:
        p = json.loads(message.payload)
        with lock:
            if p["window_id"] not in received and len(received) < n_show:
                print_fn(f"  live {p['device_id']:>20s} {p['window_start_s']:9.2f} s: "
                         f"{p['label']:<10s} p={p['max_prob']:.2f} entropy={p['entropy']:.2f} "
                         f"({p['latency_ms']:.1f} ms)")
            received[p["window_id"]] = p

    dashboard = _start_dashboard(broker, topics, dashboard_port, print_fn)
    try:
        config = GatewayConfig(broker=broker.url, topic_prefix=topics.prefix, gateway_id="demo")
        with connect_client(broker.url, "demo-listener") as listener:
            listener.on_message = on_message
            listener.subscribe(topics.prediction("+"), qos=1)
            with Gateway(config, model) as gateway:
                with connect_client(broker.url, "demo-replay") as publisher:
                    replay(messages, publisher, speed=speed,
                           on_sent=None if speed > 0 else _keep_pace(gateway))
                # The broker acknowledged every message; wait until the gateway has taken
                # them all in, or stopping it would cut the streams short.
                deadline = time.monotonic() + 30
                while (gateway.counters["messages"] < len(messages)
                       and time.monotonic() < deadline):
                    time.sleep(0.05)
            deadline = time.monotonic() + 30
            while len(received) < len(expected) and time.monotonic() < deadline:
                time.sleep(0.05)
    finally:
        _close_dashboard(dashboard, keep_open=sys.exc_info()[0] is None, print_fn=print_fn)
        broker.stop()
    live = [p for wid, p in received.items() if wid in expected]
    latencies = [p["latency_ms"] for p in live]
    index = {name: i for i, name in enumerate(model.class_names)}
    offline_y = np.array([index[label] for label in expected.values()], np.int64)
    offline = np.concatenate(offline_probs) if offline_probs else np.zeros((0, len(index)))
    live_y = np.array([index[expected[p["window_id"]]] for p in live], np.int64)
    live_probs = np.array([[p["probs"][name] for name in model.class_names] for p in live])
    return {"n_windows": len(expected), "n_predictions": len(live),
            "live_accuracy": float(np.mean([p["label"] == expected[p["window_id"]]
                                            for p in live])) if live else float("nan"),
            "offline_accuracy": float(np.sum(offline.argmax(axis=1) == offline_y))
            / max(len(expected), 1),
            "live_ece": expected_calibration_error(live_y, live_probs) if live
            else float("nan"),
            "offline_ece": expected_calibration_error(offline_y, offline) if len(offline)
            else float("nan"),
            "latency_ms_p50": float(np.percentile(latencies, 50)) if live else float("nan"),
            "latency_ms_p95": float(np.percentile(latencies, 95)) if live else float("nan"),
            "model_bytes": model.manifest.get("size_bytes"), "broker": type(broker).__name__}


def _keep_pace(gateway: Gateway) -> Callable:
    """`replay`'s on_sent for speed 0: wait while the gateway has more than `_MAX_AHEAD`
    messages to take in. Unpaced, the whole replay sat in the gateway's queue at once and
    `latency_ms` measured that queue (p50 ~800 ms), not serving; devices publish in real time."""
    sent = 0

    def on_sent(message, wall_s: float) -> None:
        nonlocal sent
        sent += 1
        deadline = time.monotonic() + 10
        while sent - gateway.counters["messages"] > _MAX_AHEAD and time.monotonic() < deadline:
            time.sleep(0.001)

    return on_sent


def _start_dashboard(broker, topics: Topics, port: int | None,
                     print_fn: Callable[[str], None]) -> "Dashboard | None":
    """The dashboard of `run_live_demo` on `port` (None: no dashboard); stops `broker` if
    the port cannot be had."""
    if port is None:
        return None
    from gateway.dashboard import Dashboard

    try:
        dashboard = Dashboard(broker.url, topics.prefix, port).start()
    except OSError:
        broker.stop()
        raise
    print_fn(f"  dashboard: open {dashboard.url}")
    return dashboard


def _close_dashboard(dashboard: "Dashboard | None", keep_open: bool,
                     print_fn: Callable[[str], None]) -> None:
    """After a clean run, keep the page (and the broker) up until Ctrl-C; then stop it."""
    if dashboard is None:
        return
    try:
        if keep_open:
            print_fn(f"  the dashboard stays open on {dashboard.url} until Ctrl-C")
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        dashboard.stop()
