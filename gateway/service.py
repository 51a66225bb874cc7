"""The MQTT edge gateway: sensor messages in, one prediction per window out.

Threads: paho's network thread only puts incoming messages on a bounded queue (it never
blocks: a full queue drops the message and counts it); one worker thread parses them, keeps
the per-device streams, cuts windows, runs the model on batches of windows and hands the
predictions to the `Outbox`, which keeps each until the broker acknowledges it (QoS 1).
An over-the-air update is fetched and checked in a thread of its own and swapped in by the
worker between two batches.

Reliability: paho-mqtt 2.x VERSION2 callbacks, a stable client id with a persistent session
(clean_session=False, MQTT 3.1.1, so the broker queues sensor data while we are away),
subscriptions renewed in on_connect, reconnect with exponential backoff, a retained status
with a last will ("offline"), and `stop()` (SIGTERM in `serve`) cutting the last windows and
waiting for their acknowledgements before going offline.
"""

from __future__ import annotations

import logging
import queue
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Callable

import numpy as np
import paho.mqtt.client as mqtt

from edge.runtime import EdgeModel
from gateway.client import make_client
from gateway.config import GatewayConfig
from gateway.messages import (PayloadError, encode_error, encode_prediction, encode_status,
                              parse_samples)
from gateway.ota import UpdateError, fetch_bundle, load_update, read_announcement
from gateway.outbox import Outbox
from gateway.stream import DeviceStream, Window
from gateway.topics import check_id

log = logging.getLogger("gateway")

#: Connection refusals that retrying will not fix (MQTT 3.1.1 CONNACK codes as paho names them).
_FATAL_REFUSALS = ("Bad user name or password", "Not authorized", "Client identifier not valid",
                   "Unsupported protocol version")


#: Log lines per refusal reason and minute: a flood of bad input must not flood the log.
_LOGS_PER_MINUTE = 10
#: Messages the worker handles before it predicts and publishes what they completed.
_MAX_MESSAGES_PER_ROUND = 200


class GatewayConnectionError(OSError):
    """The broker refused the gateway (bad credentials, not authorised) or was unreachable."""


@dataclass
class _Ready:
    """A cut window waiting for the model, with when its last message arrived (monotonic s)."""

    window: Window
    received_s: float


class Gateway:
    """One gateway: a paho client, a worker thread, the device streams and the outbox.

    The owner of its lifetime: ``with Gateway(config, model) as gateway:`` starts it and
    stops it (cutting the last windows, waiting for acknowledgements) when the block ends.

    Args:
        config: settings.
        model: the loaded bundle to serve.
    """

    def __init__(self, config: GatewayConfig, model: EdgeModel):
        self.config = config
        self.topics = config.topics
        self.model = model
        self.counters: Counter = Counter()
        self._counter_lock = threading.Lock()
        #: Called by the worker with each prediction's `latency_ms`, in seconds (metrics).
        self.on_latency: Callable[[float], None] | None = None
        self.devices: dict[str, DeviceStream] = {}
        self._last_seen: dict[str, float] = {}
        self.inbox: queue.Queue = queue.Queue(maxsize=config.queue_size)
        self.outbox = Outbox(config.max_pending, config.spool)
        self._ready: list[_Ready] = []
        self._connected = threading.Event()
        self._first_connack = threading.Event()
        self._subscribed = threading.Event()
        self._refusal: str | None = None
        self._stopping = threading.Event()
        self._worker: threading.Thread | None = None
        self._next_model: EdgeModel | None = None
        self._update_lock = threading.Lock()
        self._updating = False
        self._announcement: bytes | None = None
        self._announced_sha: str | None = None    # zip sha256 of the update now serving
        self._updates_tmp: tempfile.TemporaryDirectory | None = None
        self._last_status_s = 0.0
        self._last_idle_check_s = 0.0
        self._log_budget: dict[str, tuple[float, int]] = {}
        self._delivered: bool | None = None     # stop()'s result, once stopped
        self.client = self._make_client()

    # ------------------------------------------------------------------ connection
    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client, self._host, self._port = make_client(
            cfg.broker, cfg.resolved_client_id, clean_session=False, ca_file=cfg.ca_file,
            username=cfg.username, password=cfg.password() if cfg.username else None,
            max_inflight=100)
        client.will_set(self.topics.status, self._status_payload("offline"), qos=1, retain=True)
        client.reconnect_delay_set(cfg.reconnect_min_s, cfg.reconnect_max_s)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_publish = self.outbox.on_publish
        return client

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._refusal = str(reason_code)
            self._count("connect_refused")
            log.warning("broker %s:%s refused the connection: %s", self._host, self._port,
                        reason_code)
            self._first_connack.set()
            return
        self._refusal = None
        client.subscribe([(self.topics.raw_subscription, self.config.qos_in),
                          (self.topics.model, 1)])
        self._connected.set()
        self._first_connack.set()
        self._count("connects")
        log.info("connected to %s:%s (session present: %s)", self._host, self._port,
                 flags.session_present)
        self.publish_status()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failed = [str(code) for code in reason_codes if code.is_failure]
        if failed:
            log.error("broker refused the subscriptions: %s", ", ".join(failed))
        self._subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        if not self._stopping.is_set():
            self._count("disconnects")
            log.warning("disconnected from %s:%s (%s); reconnecting with backoff",
                        self._host, self._port, reason_code)

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        """Network thread: never blocks, never parses."""
        if message.topic == self.topics.model:
            if message.payload:            # empty: a retained announcement being cleared
                self._start_update(bytes(message.payload))
            return
        try:
            self.inbox.put_nowait((message.topic, bytes(message.payload), time.monotonic()))
        except queue.Full:
            self._count("queue_full")

    # ------------------------------------------------------------------ lifecycle
    def start(self, connect_timeout_s: float = 10.0) -> "Gateway":
        """Connect (in the background, retrying), start the worker, wait for the subscriptions.

        Raises:
            GatewayConnectionError: the broker refused us for a reason retrying cannot fix.
        """
        self.client.connect_async(self._host, self._port, keepalive=self.config.keepalive_s)
        self.client.loop_start()
        self._worker = threading.Thread(target=self._work, name="gateway-worker", daemon=True)
        self._worker.start()
        if self._first_connack.wait(connect_timeout_s) and self._refusal:
            if any(r.lower() in self._refusal.lower() for r in _FATAL_REFUSALS):
                reason = self._refusal
                self.stop(flush=False)
                raise GatewayConnectionError(f"broker {self._host}:{self._port} refused the "
                                             f"gateway: {reason}")
        if not self._connected.is_set():
            log.warning("broker %s:%s not reachable yet; retrying in the background",
                        self._host, self._port)
        else:
            self._subscribed.wait(connect_timeout_s)   # ready: sensor topics subscribed
        return self

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def stop(self, flush: bool = True) -> bool:
        """Stop: process what was received, cut the last windows, wait for acknowledgements.
        Stopping again returns the first stop's result.

        Returns:
            True if every prediction was acknowledged before `shutdown_timeout_s`.
        """
        if self._delivered is not None:
            return self._delivered
        self._stopping.set()
        if self._worker is not None:
            self._worker.join()
            self._worker = None
        if flush:
            self._flush_devices(list(self.devices))
            self._predict_ready()
        deadline = time.monotonic() + self.config.shutdown_timeout_s
        while len(self.outbox) and time.monotonic() < deadline:
            self.outbox.pump(self.client, self.connected)
            self.outbox.wait_empty(0.1)
        delivered = len(self.outbox) == 0
        if self.connected:
            self.publish_status("offline")
            self.client.disconnect()
        self.client.loop_stop()
        self.outbox.close()
        if self._updates_tmp is not None:
            self._updates_tmp.cleanup()
        log.info("stopped; %d prediction(s) not acknowledged", len(self.outbox))
        self._delivered = delivered
        return delivered

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while not (self._stopping.is_set() and self.inbox.empty()):
            try:
                item = self.inbox.get(timeout=0.05)
            except queue.Empty:
                item = None
            n = 0
            while item is not None:
                self._handle(*item)
                n += 1
                # ~200 messages are ~20 ms of parsing: windows cut meanwhile wait no longer.
                if n >= _MAX_MESSAGES_PER_ROUND or len(self._ready) >= self.config.batch_windows:
                    break
                try:
                    item = self.inbox.get_nowait()
                except queue.Empty:
                    item = None
            self._swap_model()
            self._predict_ready()
            self._housekeeping()
            self.outbox.pump(self.client, self.connected)

    def _handle(self, topic: str, payload: bytes, received_s: float) -> None:
        self._count("messages")
        try:
            device, sensor = self.topics.parse_raw(topic)
            check_id(device)
        except ValueError as exc:
            self._refuse(None, topic, "bad_device_id", str(exc))
            return
        features = self.model.features
        if sensor not in features.sensors:
            self._refuse(device, topic, "unknown_sensor",
                         f"sensor '{sensor:.40}' unknown; expected one of {list(features.sensors)}")
            return
        stream = self.devices.get(device)
        if stream is None:
            if len(self.devices) >= self.config.max_devices:
                self._refuse(device, topic, "too_many_devices",
                             f"{len(self.devices)} devices tracked; limit max_devices="
                             f"{self.config.max_devices}")
                return
            stream = self.devices[device] = DeviceStream(
                device, features, self.config.max_lag_s, self.config.max_jump_s)
        try:
            t_s, values = parse_samples(payload, features.n_axes,
                                        max_bytes=self.config.max_payload_bytes,
                                        max_samples=self.config.max_batch_samples)
        except PayloadError as exc:
            self._refuse(device, topic, exc.reason, str(exc), payload=payload)
            return
        accepted = stream.add(sensor, t_s, values)
        self._last_seen[device] = time.monotonic()
        self._count("samples", accepted.n_kept)
        for reason, count in accepted.refused.items():
            self._refuse(device, topic, reason, f"{count} sample(s) refused: {reason}", count)
        self._ready += [_Ready(w, received_s) for w in stream.ready_windows()]

    def _refuse(self, device: str | None, topic: str, reason: str, message: str,
                count: int = 1, payload: bytes = b"") -> None:
        self._count(f"refused_{reason}", count)
        if self._may_log(reason):
            log.warning("refused input on %.120s: %s: %s %.200r", topic, reason, message, payload)
        error_topic = self.topics.device_error(device) if device else self.topics.gateway_error
        self.outbox.send(self.client, error_topic, encode_error(device, topic, reason, message,
                                                                count))

    def _may_log(self, reason: str) -> bool:
        """At most `_LOGS_PER_MINUTE` log lines per refusal reason (counters see them all)."""
        now = time.monotonic()
        start, n = self._log_budget.get(reason, (now, 0))
        if now - start >= 60.0:
            if n > _LOGS_PER_MINUTE:
                log.warning("%d more '%s' refusals in the last minute were not logged",
                            n - _LOGS_PER_MINUTE, reason)
            start, n = now, 0
        self._log_budget[reason] = (start, n + 1)
        return n < _LOGS_PER_MINUTE

    def _predict_ready(self) -> None:
        while self._ready:
            batch, self._ready = (self._ready[:self.config.batch_windows],
                                  self._ready[self.config.batch_windows:])
            model = self.model
            x = np.stack([r.window.x for r in batch])
            try:
                outputs = model.predict(x)
                summaries = model.summarize(outputs)
            except ValueError as exc:
                self._count("predict_failed", len(batch))
                log.error("model failed on %d window(s): %s", len(batch), exc)
                continue
            now = time.monotonic()
            for ready, output, summary in zip(batch, outputs, summaries):
                payload = encode_prediction(ready.window, output, summary, model,
                                            self.config.gateway_id,
                                            1000 * (now - ready.received_s))
                self.outbox.add(self.topics.prediction(ready.window.device_id), payload)
            self._count("predictions", len(batch))
            if self.on_latency is not None:
                for ready in batch:
                    self.on_latency(now - ready.received_s)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._last_idle_check_s >= 1.0:
            self._last_idle_check_s = now
            idle = [d for d, seen in self._last_seen.items()
                    if now - seen >= self.config.idle_flush_s]
            self._flush_devices(idle)
        if now - self._last_status_s >= self.config.status_interval_s and self.connected:
            self.publish_status()

    def _flush_devices(self, devices: list[str]) -> None:
        """Cut the last windows of `devices` and forget them (idle, or shutting down)."""
        for device in devices:
            stream = self.devices.pop(device, None)
            self._last_seen.pop(device, None)
            if stream is not None:
                now = time.monotonic()
                self._ready += [_Ready(w, now) for w in stream.ready_windows(flush=True)]

    # ------------------------------------------------------------------ status
    def _status_payload(self, state: str) -> bytes:
        with self._counter_lock:
            counters = dict(self.counters)
        return encode_status(state, self.config.gateway_id, self.model,
                             devices=len(self.devices), queue_depth=self.inbox.qsize(),
                             pending_predictions=len(self.outbox),
                             predictions_dropped=self.outbox.n_dropped, counters=counters,
                             time_s=time.time())

    def publish_status(self, state: str = "online") -> None:
        self._last_status_s = time.monotonic()
        self.outbox.send(self.client, self.topics.status, self._status_payload(state), qos=1,
                         retain=True)

    def counters_snapshot(self) -> dict[str, int]:
        """A consistent copy of the counters, safe to read from any thread (metrics)."""
        with self._counter_lock:
            return dict(self.counters)

    def _count(self, name: str, n: int = 1) -> None:
        with self._counter_lock:
            self.counters[name] += n

    # ------------------------------------------------------------------ model updates
    def _start_update(self, payload: bytes) -> None:
        """Network thread: remember the newest announcement; one update thread handles them."""
        with self._update_lock:
            self._announcement = payload
            if self._updating:
                return
            self._updating = True
        threading.Thread(target=self._update_loop, name="gateway-update", daemon=True).start()

    def _update_loop(self) -> None:
        while True:
            with self._update_lock:
                payload, self._announcement = self._announcement, None
                if payload is None:
                    self._updating = False
                    return
            self._apply_update(payload)

    def _apply_update(self, payload: bytes) -> None:
        try:
            announcement = read_announcement(payload)
            if announcement["sha256"] == self._announced_sha:
                return                     # the same retained announcement, re-delivered
            if self.config.updates_dir is None and self._updates_tmp is None:
                self._updates_tmp = tempfile.TemporaryDirectory(prefix="deepsense-updates-")
            out_dir = self.config.updates_dir or self._updates_tmp.name
            path = fetch_bundle(announcement, out_dir, self.config.max_bundle_bytes)
            model = load_update(path, self.model)
            self._announced_sha = announcement["sha256"]
            with self._update_lock:
                self._next_model = model
            log.info("model update %s %s (%s) verified; swapping in", model.name, model.version,
                     model.bundle_sha256[:12])
        except UpdateError as exc:
            self._count("model_update_refused")
            log.warning("model update refused: %s", exc)
            self.outbox.send(self.client, self.topics.gateway_error,
                             encode_error(None, self.topics.model, "model_update_refused",
                                          str(exc)), qos=1)

    def _swap_model(self) -> None:
        with self._update_lock:
            model, self._next_model = self._next_model, None
        if model is not None:
            self._predict_ready()        # windows cut so far go to the model they were cut for
            self.model = model
            self._count("model_updates")
            self.publish_status()
