"""A live web dashboard of the gateways' predictions, uncertainty and health.

```sh
deepsense dashboard --broker mqtt://127.0.0.1:1883 --port 8080      # then open the URL
deepsense serve --bundle bundles/har --dashboard 8080                # one gateway and its page
```

One MQTT subscriber (paho, like the gateway) keeps a `DashboardState`: per device, its last
prediction and a short timeline (max_prob/entropy, or mean and 95% interval for regression)
with uncertain windows and model changes marked; per gateway, its retained status. A
stdlib `ThreadingHTTPServer` serves one page (plain HTML/JS/CSS from `gateway/static`, no
CDN) and pushes changes with Server-Sent Events, coalesced: each browser gets at most
`max_fps` (10) frames per second, each holding only what changed since its previous frame,
so 200 devices publishing once a second cost 10 small frames a second, not 200 messages;
the page draws on requestAnimationFrame, only the cards on screen (BENCHMARKS.md).

Needs nothing beyond the base install (NumPy is not even imported).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

import paho.mqtt.client as mqtt

from gateway.client import make_client
from gateway.topics import DEFAULT_PREFIX, GATEWAY_LEVEL, check_prefix

log = logging.getLogger("gateway.dashboard")

#: A classification window is marked uncertain when its max probability is below this.
UNCERTAIN_BELOW = 0.6
#: A regression window is marked uncertain when its 95% interval is this many times wider
#: than the median width of the device's recent windows.
UNCERTAIN_WIDTH_RATIO = 2.0
#: Timeline points kept per device (about two minutes at one window a second).
TIMELINE_POINTS = 120
#: Frames per second each browser gets at most (updates in between are merged).
MAX_FPS = 10.0
#: An idle event stream sends a comment this often, so proxies keep it open.
HEARTBEAT_S = 15.0
#: Files the page needs: name -> content type. Nothing else is served.
STATIC_FILES = {"dashboard.html": "text/html; charset=utf-8",
                "dashboard.js": "text/javascript; charset=utf-8",
                "dashboard.css": "text/css; charset=utf-8"}


@dataclass
class DeviceView:
    """What the page shows of one device: the last prediction and its recent timeline.

    Attributes:
        points: classification ``[t_ms, max_prob, entropy, uncertain, version]``;
            regression ``[t_ms, mean, low, high, uncertain, version]`` (first target).
        events: model changes ``[t_ms, "name version", version]``.
        version: the state version of its last change (frames carry what is newer).
    """

    device_id: str
    last: dict = field(default_factory=dict)
    points: deque = field(default_factory=lambda: deque(maxlen=TIMELINE_POINTS))
    events: deque = field(default_factory=lambda: deque(maxlen=20))
    n_predictions: int = 0
    model_key: str | None = None
    version: int = 0

    def to_frame(self, since: int) -> dict:
        """The device as JSON for the page, with only the points and events after `since`."""
        return {"device_id": self.device_id, "last": self.last, "n": self.n_predictions,
                "reset": since == 0,
                "points": [p[:-1] for p in self.points if p[-1] > since],
                "events": [e[:-1] for e in self.events if e[-1] > since]}


class DashboardState:
    """Everything the page shows, updated from MQTT messages; thread-safe.

    Every change bumps a version number; `frame_since(v)` returns what changed after `v`,
    which is how each browser gets deltas no matter how many updates came in between.

    Args:
        uncertain_below: max_prob under which a classification window is uncertain.
    """

    def __init__(self, uncertain_below: float = UNCERTAIN_BELOW):
        if not 0.0 < uncertain_below <= 1.0:
            raise ValueError(f"uncertain_below expected in (0, 1]. "
                             f"Received: {uncertain_below!r}")
        self.uncertain_below = uncertain_below
        self.version = 0
        self.devices: dict[str, DeviceView] = {}
        self.gateways: dict[str, dict] = {}
        self._gateway_versions: dict[str, int] = {}
        self.errors: Counter = Counter()
        self._errors_version = 0
        self.n_bad_messages = 0
        self._changed = threading.Condition()

    def _bump(self) -> int:
        self.version += 1
        self._changed.notify_all()
        return self.version

    def add_prediction(self, payload: dict, received_s: float) -> None:
        """One message of ``<prefix>/<device>/prediction`` (already parsed JSON)."""
        device = str(payload["device_id"])
        t_ms = round(received_s * 1000)
        model = payload.get("model") or {}
        model_key = f"{model.get('name', '?')} {model.get('version', '?')}"
        with self._changed:
            view = self.devices.get(device)
            if view is None:
                view = self.devices[device] = DeviceView(device)
            v = self._bump()
            if "probs" in payload:
                uncertain = float(payload["max_prob"]) < self.uncertain_below
                view.points.append([t_ms, float(payload["max_prob"]),
                                    float(payload["entropy"]), uncertain, v])
            else:
                uncertain = self._regression_point(view, payload, t_ms, v)
            if view.model_key is not None and model_key != view.model_key:
                view.events.append([t_ms, model_key, v])
            view.model_key = model_key
            view.last = {k: payload.get(k) for k in (
                "label", "probs", "max_prob", "entropy", "mean", "std", "interval_95",
                "window_start_s", "window_end_s", "latency_ms", "gateway_id")}
            view.last.update(model=model, uncertain=uncertain, received_ms=t_ms)
            view.n_predictions += 1
            view.version = v

    @staticmethod
    def _regression_point(view: DeviceView, payload: dict, t_ms: int, v: int) -> bool:
        """Append mean and interval of the first target; True if the interval is unusually
        wide (over `UNCERTAIN_WIDTH_RATIO` x the median of the device's recent widths)."""
        mean = payload.get("mean") or {}
        if not mean:
            raise ValueError("prediction expected 'probs' or 'mean'")
        target = next(iter(mean))
        value = float(mean[target])
        interval = (payload.get("interval_95") or {}).get(target) or [value, value]
        low, high = float(interval[0]), float(interval[1])
        widths = sorted(p[3] - p[2] for p in view.points)
        uncertain = bool(widths) and (high - low) > UNCERTAIN_WIDTH_RATIO * max(
            widths[len(widths) // 2], 1e-12)
        view.points.append([t_ms, value, low, high, uncertain, v])
        return uncertain

    def add_status(self, gateway_id: str, payload: dict, received_s: float) -> None:
        """One retained status of ``<prefix>/gateway/<id>/status``.

        The state shown is the gateway's own (online/offline), or "degraded" when it is
        online but, since its previous status, it dropped input or predictions
        (queue_full, predictions_dropped), a window failed, or it lost the broker. (The
        page also shows "degraded" when no status came for 3 status intervals.)
        """
        counters = payload.get("counters") or {}
        with self._changed:
            previous = self.gateways.get(gateway_id)
            state = str(payload.get("state", "unknown"))
            events = list(previous["events"]) if previous else []
            model = payload.get("model") or {}
            if previous and previous.get("model", {}).get("sha256") != model.get("sha256"):
                events = (events + [[round(received_s * 1000),
                                     f"{model.get('name')} {model.get('version')}"]])[-5:]
            if state == "online" and previous is not None:
                before = previous.get("counters") or {}
                worse = [k for k in ("queue_full", "predict_failed", "disconnects")
                         if counters.get(k, 0) > before.get(k, 0)]
                if payload.get("predictions_dropped", 0) > previous.get("predictions_dropped", 0):
                    worse.append("predictions_dropped")
                if worse:
                    state = "degraded"
            self.gateways[gateway_id] = {
                **{k: payload.get(k) for k in ("devices", "queue_depth", "pending_predictions",
                                               "predictions_dropped")},
                "gateway_id": gateway_id, "state": state, "model": model, "counters": counters,
                "refusals": {k[len("refused_"):]: v for k, v in counters.items()
                             if k.startswith("refused_")} | (
                    {"queue_full": counters["queue_full"]} if "queue_full" in counters else {}),
                "events": events, "received_ms": round(received_s * 1000)}
            self._gateway_versions[gateway_id] = self._bump()

    def add_error(self, payload: dict) -> None:
        """One message of an error topic: counted by reason (what this page has seen)."""
        with self._changed:
            self.errors[str(payload.get("reason", "unknown"))] += int(payload.get("count", 1))
            self._errors_version = self._bump()

    def count_bad_message(self) -> None:
        """A message that was not the JSON its topic promises (logged by the caller)."""
        with self._changed:
            self.n_bad_messages += 1

    def frame_since(self, since: int) -> tuple[int, dict | None]:
        """(version, what changed after `since` as JSON-ready dict, or None if nothing)."""
        with self._changed:
            if self.version == since:
                return since, None
            frame: dict[str, Any] = {
                "version": self.version, "now_ms": round(time.time() * 1000),
                "uncertain_below": self.uncertain_below,
                "devices": [d.to_frame(since) for d in self.devices.values()
                            if d.version > since],
                "gateways": [g for gid, g in self.gateways.items()
                             if self._gateway_versions[gid] > since]}
            if self._errors_version > since:
                frame["errors"] = dict(self.errors)
            return self.version, frame

    def wait_newer(self, version: int, timeout_s: float) -> bool:
        """Block until the state is newer than `version` (True) or `timeout_s` passed."""
        with self._changed:
            return self._changed.wait_for(lambda: self.version > version, timeout_s)

    def wake_all(self) -> None:
        """Wake every event stream waiting in `wait_newer` (on shutdown)."""
        with self._changed:
            self._changed.notify_all()


class Dashboard:
    """The MQTT subscriber and the web server; a context manager that owns both.

    Args:
        broker: ``mqtt://HOST:PORT`` or ``mqtts://HOST:PORT``.
        topic_prefix: the gateways' topic prefix.
        port: HTTP port (0: a free one); host: address to listen on (loopback by default:
            the page has no authentication).
        ca_file, username, password: as for the gateway (see `gateway.client.make_client`).
        max_fps: frames per second per browser at most.
        uncertain_below: see `DashboardState`.
    """

    def __init__(self, broker: str, topic_prefix: str = DEFAULT_PREFIX, port: int = 8080, *,
                 host: str = "127.0.0.1", ca_file: str | None = None,
                 username: str | None = None, password: str | None = None,
                 max_fps: float = MAX_FPS, uncertain_below: float = UNCERTAIN_BELOW):
        if max_fps <= 0:
            raise ValueError(f"max_fps expected > 0. Received: {max_fps!r}")
        self.prefix = check_prefix(topic_prefix)
        self.max_fps = max_fps
        self.state = DashboardState(uncertain_below)
        self._stopping = threading.Event()
        self.client, self._broker_host, self._broker_port = make_client(
            broker, "", ca_file=ca_file, username=username, password=password)
        self.client.reconnect_delay_set(1, 30)
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.on_disconnect = lambda *_: self._connected.clear()
        self._connected = threading.Event()
        try:
            self.server = ThreadingHTTPServer((host, port), _handler_for(self))
        except OSError as exc:
            raise OSError(f"dashboard cannot listen on {host}:{port}: {exc.strerror}") from None
        self.server.daemon_threads = True
        self._http_thread = threading.Thread(target=self.server.serve_forever,
                                             name="dashboard-http", daemon=True)

    @property
    def url(self) -> str:
        """The page's address (loopback when listening on every interface)."""
        host, port = self.server.server_address[:2]
        return f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/"

    @property
    def connected(self) -> bool:
        """Subscribed to the broker (what /healthz reports)."""
        return self._connected.is_set()

    def start(self) -> "Dashboard":
        """Serve the page and connect to the broker (in the background, with retries)."""
        self._http_thread.start()
        self.client.connect_async(self._broker_host, self._broker_port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self) -> None:
        """Close the event streams, the web server and the MQTT connection."""
        self._stopping.set()
        self.state.wake_all()
        self.server.shutdown()
        self.server.server_close()
        self.client.disconnect()
        self.client.loop_stop()

    def __enter__(self) -> "Dashboard":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ MQTT
    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s:%s refused the dashboard: %s", self._broker_host,
                        self._broker_port, reason_code)
            return
        p = self.prefix
        client.subscribe([(f"{p}/+/prediction", 0), (f"{p}/+/error", 0),
                          (f"{p}/{GATEWAY_LEVEL}/+/status", 0), (f"{p}/{GATEWAY_LEVEL}/+/error", 0)])
        self._connected.set()

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        levels = message.topic[len(self.prefix) + 1:].split("/")
        try:
            payload = json.loads(message.payload)
            if not isinstance(payload, dict):
                raise ValueError("not a JSON object")
            if levels[-1] == "prediction":
                self.state.add_prediction(payload, time.time())
            elif levels[-1] == "status" and len(levels) == 3:
                self.state.add_status(levels[1], payload, time.time())
            elif levels[-1] == "error":
                self.state.add_error(payload)
        except (ValueError, KeyError, TypeError) as exc:     # JSONDecodeError is a ValueError
            self.state.count_bad_message()
            log.warning("dashboard ignored a message on %.120s: %s", message.topic, exc)

    # ------------------------------------------------------------------ event stream
    def stream(self, handler: BaseHTTPRequestHandler) -> None:
        """Send frames to one browser until it goes away or the dashboard stops."""
        handler.send_response(HTTPStatus.OK)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        sent, period = 0, 1.0 / self.max_fps
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                sent, frame = self.state.frame_since(sent)
                if frame is not None:
                    handler.wfile.write(b"data: " + json.dumps(frame).encode() + b"\n\n")
                    handler.wfile.flush()
                elif not self.state.wait_newer(sent, HEARTBEAT_S):
                    handler.wfile.write(b": heartbeat\n\n")
                    handler.wfile.flush()
                    continue
                self._stopping.wait(max(0.0, period - (time.monotonic() - started)))
        except (BrokenPipeError, ConnectionResetError):
            return                                  # the browser went away


def _handler_for(dashboard: Dashboard) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to `dashboard` (http.server makes one per request)."""
    static = resources.files("gateway") / "static"

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/events":
                dashboard.stream(self)
            elif path == "/api/state":
                self._send(json.dumps(dashboard.state.frame_since(0)[1] or {}).encode(),
                           "application/json")
            elif path == "/healthz":
                ok = dashboard.connected
                self._send(b"ok\n" if ok else b"not connected to the broker\n",
                           "text/plain", HTTPStatus.OK if ok else HTTPStatus.SERVICE_UNAVAILABLE)
            else:
                name = "dashboard.html" if path == "/" else path.removeprefix("/static/")
                if name not in STATIC_FILES:
                    self._send(b"not found\n", "text/plain", HTTPStatus.NOT_FOUND)
                    return
                self._send((static / name).read_bytes(), STATIC_FILES[name])

        def _send(self, body: bytes, content_type: str,
                  status: HTTPStatus = HTTPStatus.OK) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            log.debug("dashboard http: " + format, *args)

    return Handler
