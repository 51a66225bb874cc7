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
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from deepsense.data.features import make_windows
from deepsense.data.recording import Recording
from edge.calibration import expected_calibration_error
from edge.runtime import load_bundle
from gateway.broker import start_local_broker
from gateway.client import connect_client
from gateway.config import GatewayConfig
from gateway.replay import plan_messages, replay
from gateway.service import Gateway
from gateway.topics import Topics


def run_live_demo(bundle: str | Path, recordings: Sequence[Recording], workdir: str | Path, *,
                  speed: float = 0.0, n_show: int = 8,
                  print_fn: Callable[[str], None] = print) -> dict:
    """Serve `bundle` over a local broker, replay `recordings` through it, compare with offline.

    Args:
        bundle: bundle directory or .zip (a classifier).
        recordings: labelled recordings (e.g. the held-out user's).
        workdir: the broker's files.
        speed: replay speed (0: as fast as the broker takes it).
        n_show: how many live predictions to print as they arrive.

    Returns:
        ``n_windows``, ``n_predictions``, ``live_accuracy``, ``offline_accuracy``,
        ``live_ece``, ``offline_ece`` (expected calibration error of the predicted
        probabilities, 15 bins), ``latency_ms_p50``/``p95`` (gateway: message in -> prediction out), ``model_bytes``,
        ``broker`` (which broker ran).
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
            expected[f"{device}@{start:.3f}"] = rec.label
    topics = Topics("demo", "demo")
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

    try:
        listener = connect_client(broker.url, "demo-listener")
        listener.on_message = on_message
        listener.subscribe(topics.prediction("+"), qos=1)
        gateway = Gateway(GatewayConfig(broker=broker.url, topic_prefix=topics.prefix,
                                        gateway_id="demo"), model).start()
        publisher = connect_client(broker.url, "demo-replay")
        messages = [m for device, rec in named
                    for m in plan_messages([rec], topics, device_id=device)]
        messages.sort(key=lambda m: m.at_s)
        replay(messages, publisher, speed=speed)
        publisher.disconnect()
        publisher.loop_stop()
        # The broker acknowledged every message; wait until the gateway has taken them all
        # in, or stop() would cut the streams short.
        deadline = time.monotonic() + 30
        while gateway.counters["messages"] < len(messages) and time.monotonic() < deadline:
            time.sleep(0.05)
        gateway.stop()
        deadline = time.monotonic() + 30
        while len(received) < len(expected) and time.monotonic() < deadline:
            time.sleep(0.05)
        listener.disconnect()
        listener.loop_stop()
    finally:
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
