"""The MQTT edge gateway: sensor messages in, one prediction per window out.

Threads: paho's network thread only puts incoming messages on a bounded queue (it never
blocks: a full queue drops the message and counts it); one worker thread takes what the queue
holds every few milliseconds, parses it, keeps the per-device streams, cuts windows, runs the
model on one batch of every window those messages completed (many devices' windows often
end together) and hands the predictions to the `Outbox`, which keeps each until the broker
acknowledges it (QoS 1).
An over-the-air update is fetched and checked in a thread of its own and swapped in by the
worker between two batches.

Reliability: paho-mqtt 2.x VERSION2 callbacks, a stable client id with a persistent session
(clean_session=False, MQTT 3.1.1, so the broker queues sensor data while we are away),
subscriptions renewed in on_connect, reconnect with exponential backoff, a retained status
with a last will ("offline"), and `stop()` (SIGTERM in `serve`) cutting the last windows and
waiting for their acknowledgements before going offline.

Supervision: one device's input can fail only that device's windows (they are checked one
by one before batching, and a failing batch is retried window by window). Whatever else
escapes the worker's handling of a message or a round, or a paho callback, is caught at the
top, counted (``worker_error``, ``network_error``), logged with control characters escaped,
published on the error topic, and turns the retained status to ``degraded`` for
`_DEGRADED_HOLD_S`. After `_MAX_FAILED_ROUNDS` failed rounds in a row the worker gives up:
`failed` is set, the status says ``offline`` and `serve` exits 1 for its supervisor.
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
from pathlib import Path

import numpy as np
import paho.mqtt.client as mqtt

from edge.runtime import EdgeModel
from gateway.client import diagnose_tls, make_client
from gateway.config import GatewayConfig
from gateway.messages import (PayloadError, encode_error, encode_prediction, encode_status,
                              parse_samples)
from gateway.ota import (OtaPolicy, UpdateError, check_signature_policy, fetch_bundle,
                         load_update, read_announcement)
from gateway.outbox import Outbox
from gateway.sanitize import clean
from gateway.stream import DeviceStream, Window
from gateway.topics import check_id

log = logging.getLogger("gateway")

#: Connection refusals that retrying will not fix (MQTT 3.1.1 CONNACK codes as paho names them).
_FATAL_REFUSALS = ("Bad user name or password", "Not authorized", "Client identifier not valid",
                   "Unsupported protocol version")


#: Log lines per refusal reason and minute: a flood of bad input must not flood the log.
_LOGS_PER_MINUTE = 10
#: Seconds the worker sleeps when the inbox is empty (the most it adds to a window's latency).
_POLL_S = 0.005
#: Failed worker rounds in a row after which the gateway gives up (exit 1, restart it), and
#: the pause after each (so giving up takes seconds, and the status can say "degraded").
_MAX_FAILED_ROUNDS = 50
_FAILED_ROUND_PAUSE_S = 0.05
#: Seconds the status stays "degraded" after the last fault.
_DEGRADED_HOLD_S = 60.0


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

    Raises:
        SignatureError: a trusted key file cannot be read.
        MissingExtraError: trusted keys were given but `cryptography` is not installed.
        SpoolError: the spool file cannot be used.
    """

    def __init__(self, config: GatewayConfig, model: EdgeModel):
        self.config = config
        self.ota_policy = _ota_policy(config)
        self.topics = config.topics
        self.model = model
        self.counters: Counter = Counter()
        self._counter_lock = threading.Lock()
        #: Called by the worker with each prediction's `latency_ms`, in seconds (metrics).
        self.on_latency: Callable[[float], None] | None = None
        self.devices: dict[str, DeviceStream] = {}
        self._last_seen: dict[str, float] = {}
        self.inbox: queue.Queue = queue.Queue(maxsize=config.queue_size)
        self._inbox_bytes = 0                 # payload bytes waiting in `inbox`
        self._inbox_lock = threading.Lock()
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
        self._last_fault_s: float | None = None
        self._spool_errors_reported = 0
        self.failed = threading.Event()
        self.failure: str | None = None
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
        client.on_publish = self._on_publish
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
        """Network thread: never blocks, never parses, never lets an exception kill paho."""
        try:
            if message.topic == self.topics.model:
                if message.payload:            # empty: a retained announcement being cleared
                    self._start_update(bytes(message.payload))
                return
            payload = bytes(message.payload)
            with self._inbox_lock:
                if self._inbox_bytes + len(payload) > self.config.queue_bytes:
                    self._count("queue_full")
                    return
                try:
                    self.inbox.put_nowait((message.topic, payload, time.monotonic()))
                except queue.Full:
                    self._count("queue_full")
                    return
                self._inbox_bytes += len(payload)
        except Exception as exc:  # noqa: BLE001 - the network thread must survive; reported
            self._fault("network_error", exc)

    def _on_publish(self, client, userdata, mid: int, reason_code, properties) -> None:
        try:
            self.outbox.on_publish(client, userdata, mid, reason_code, properties)
        except Exception as exc:  # noqa: BLE001 - the network thread must survive; reported
            self._fault("network_error", exc)

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
            cause = (diagnose_tls(self._host, self._port, self.config.ca_file)
                     if self.config.broker.startswith("mqtts://") else "")
            if cause:
                log.error("broker %s:%s: %s; retrying in the background", self._host,
                          self._port, cause)
            else:
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
            try:
                self._flush_devices(list(self.devices))
                self._predict_ready()
            except Exception as exc:  # noqa: BLE001 - a failing flush must not stop the stop
                self._fault("worker_error", exc)
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
        """Worker thread: rounds until stopped; gives up after `_MAX_FAILED_ROUNDS` failures."""
        failed_rounds = 0
        while not (self._stopping.is_set() and self.inbox.empty()):
            try:
                self._round()
                failed_rounds = 0
            except Exception as exc:  # noqa: BLE001 - counted, reported; see the docstring
                failed_rounds += 1
                self._fault("worker_error", exc)
                self._stopping.wait(_FAILED_ROUND_PAUSE_S)    # a failing round never spins
                if failed_rounds >= _MAX_FAILED_ROUNDS:
                    self.failure = (f"worker gave up after {failed_rounds} failed rounds; "
                                    f"last: {type(exc).__name__}: {clean(str(exc), 120)}")
                    log.critical("%s", self.failure)
                    self.failed.set()
                    if self.connected:
                        self.publish_status("offline")
                    return

    def _round(self) -> None:
        """Handle the messages waiting now, predict the windows they completed in one batch
        (or batches of `batch_windows`), keep house, publish.

        The worker polls every `_POLL_S` rather than being woken by each message: a wake-up
        per message made the two threads trade the GIL at each of paho's socket calls (see
        BENCHMARKS.md, "MQTT gateway under load"); a poll hands over a batch at a time.
        """
        if self.inbox.empty():
            time.sleep(_POLL_S)
        for _ in range(self.inbox.qsize()):
            topic, payload, received_s = self.inbox.get_nowait()
            with self._inbox_lock:
                self._inbox_bytes -= len(payload)
            self._handle_safely(topic, payload, received_s)
            if len(self._ready) >= self.config.batch_windows:
                self._predict_ready()
        self._swap_model()
        self._predict_ready()
        self._housekeeping()
        self.outbox.pump(self.client, self.connected)

    def _handle_safely(self, topic: str, payload: bytes, received_s: float) -> None:
        """`_handle`, with anything unforeseen charged to that message's device alone."""
        try:
            self._handle(topic, payload, received_s)
        except Exception as exc:  # noqa: BLE001 - one message must not stop the others
            device = self._device_of(topic)
            if device is not None:               # its state may be inconsistent: start anew
                self.devices.pop(device, None)
                self._last_seen.pop(device, None)
            self._fault("worker_error", exc, device=device, topic=topic)

    def _device_of(self, topic: str) -> str | None:
        try:
            return check_id(self.topics.parse_raw(topic)[0])
        except ValueError:
            return None

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
                device, features, self.config.max_lag_s, self.config.max_jump_s,
                self.config.max_buffered_samples)
        try:
            t_s, values = parse_samples(payload, features.n_axes,
                                        max_bytes=self.config.max_payload_bytes,
                                        max_samples=self.config.max_batch_samples,
                                        max_abs_t_s=self.config.max_abs_t_s,
                                        max_abs_value=self.config.max_abs_value)
        except PayloadError as exc:
            self._refuse(device, topic, exc.reason, str(exc), payload=payload)
            return
        self._count("messages_parsed")
        self._count("samples_in", t_s.size)
        accepted = stream.add(sensor, t_s, values)
        self._last_seen[device] = time.monotonic()
        self._count("samples", accepted.n_kept)
        for reason, count in accepted.refused.items():
            self._refuse(device, topic, reason, f"{count} sample(s) refused: {reason}", count)
        for reason, count in accepted.dropped.items():
            why = (f"no sample of {stream.missing_sensors} yet" if reason == "sensor_missing"
                   else f"more than {self.config.max_buffered_samples} samples buffered")
            self._refuse(device, topic, reason, f"{count} buffered sample(s) dropped: {why}",
                         count)
        if accepted.clock_reset:
            self._refuse(device, topic, "clock_reset", "the device's clock moved by more than "
                         f"max_jump_s={self.config.max_jump_s:g} s for a whole window; its "
                         "stream restarted on the new clock")
        self._ready += [_Ready(w, received_s) for w in stream.ready_windows()]

    def _refuse(self, device: str | None, topic: str, reason: str, message: str,
                count: int = 1, payload: bytes = b"") -> None:
        self._count(f"refused_{reason}", count)
        if self._may_log(reason):
            log.warning("refused input on %s: %s: %s %s", clean(topic, 120), reason,
                        clean(message, 300), clean(payload) if payload else "")
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
            batch = [r for r in batch if self._window_ok(r.window)]
            if batch:
                self._predict_batch(batch)

    def _window_ok(self, window: Window) -> bool:
        """Finite features only: a bad window is refused for its own device, never batched."""
        if np.isfinite(window.x).all():
            return True
        self._refuse(window.device_id, self.topics.prediction(window.device_id),
                     "non_finite_window", f"window {window.index} holds NaN or Inf features "
                     "(sensor values too large?)")
        return False

    def _predict_batch(self, batch: list[_Ready]) -> None:
        """Predict `batch`; if it fails, retry window by window so only the culprit fails."""
        model = self.model
        try:
            outputs = model.predict(np.stack([r.window.x for r in batch]))
            finite = np.isfinite(outputs).all(axis=1)
        except (ValueError, FloatingPointError) as exc:
            if len(batch) > 1:
                for ready in batch:
                    self._predict_batch([ready])
                return
            outputs, finite = None, np.zeros(1, bool)
            failure = clean(str(exc), 200)
        else:
            failure = "the model's outputs are NaN or Inf"
        for ready in [r for r, ok in zip(batch, finite) if not ok]:
            w = ready.window
            self._count("predict_failed")
            self._refuse(w.device_id, self.topics.prediction(w.device_id), "predict_failed",
                         f"window {w.index}: {failure}")
        if outputs is None or not finite.any():
            return
        kept = [r for r, ok in zip(batch, finite) if ok]
        outputs = outputs[finite]
        summaries = model.summarize(outputs)
        now = time.monotonic()
        for ready, output, summary in zip(kept, outputs, summaries):
            payload = encode_prediction(ready.window, output, summary, model,
                                        self.config.gateway_id, 1000 * (now - ready.received_s))
            self.outbox.add(self.topics.prediction(ready.window.device_id), payload)
        self._count("predictions", len(kept))
        if self.on_latency is not None:
            for ready in kept:
                self.on_latency(now - ready.received_s)

    def _housekeeping(self) -> None:
        n_spool_errors = self.outbox.n_spool_errors
        if n_spool_errors > self._spool_errors_reported:
            self._fault("spool_error", self.outbox.last_spool_error, topic=self.config.spool,
                        count=n_spool_errors - self._spool_errors_reported)
            self._spool_errors_reported = n_spool_errors
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
    @property
    def state(self) -> str:
        """"offline" once the worker gave up, "degraded" for a while after a fault (or while
        the spool is failing), else "online"."""
        if self.failed.is_set():
            return "offline"
        recent = (self._last_fault_s is not None
                  and time.monotonic() - self._last_fault_s < _DEGRADED_HOLD_S)
        return "degraded" if recent or self.outbox.spool_failing else "online"

    def _status_payload(self, state: str) -> bytes:
        with self._counter_lock:
            counters = dict(self.counters)
        return encode_status(state, self.config.gateway_id, self.model,
                             devices=len(self.devices), queue_depth=self.inbox.qsize(),
                             pending_predictions=len(self.outbox),
                             predictions_dropped=self.outbox.n_dropped, counters=counters,
                             time_s=time.time())

    def publish_status(self, state: str | None = None) -> None:
        """Publish the retained status; `state` None means the current `state`."""
        state = state or self.state
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

    def _fault(self, reason: str, exc: BaseException, device: str | None = None,
               topic: str | None = None, code: str | None = None, count: int = 1) -> None:
        """Something escaped a handler: count it, log it (sanitised, with the traceback at
        debug level), publish it on the error topic and mark the gateway degraded."""
        self._count(reason, count)
        self._last_fault_s = time.monotonic()
        text = f"{type(exc).__name__}: {clean(str(exc), 200)}"
        if self._may_log(reason):
            log.error("%s%s on %s: %s", reason, f" ({code})" if code else "",
                      clean(topic or "-", 120), text)
            log.debug("traceback", exc_info=exc)
        error_topic = self.topics.device_error(device) if device else self.topics.gateway_error
        try:
            self.outbox.send(self.client, error_topic,
                             encode_error(device, topic or "", reason, text, count, code), qos=1)
        except Exception as send_exc:  # noqa: BLE001 - reporting must not raise again
            self._count("report_failed")
            log.error("cannot publish a %s report: %s", reason, type(send_exc).__name__)

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
        """Update thread: the newest announcement, one at a time; `_updating` always reset."""
        try:
            while True:
                with self._update_lock:
                    payload, self._announcement = self._announcement, None
                    if payload is None:
                        return
                self._apply_update(payload)
        finally:
            with self._update_lock:
                self._updating = False
                pending = self._announcement is not None
            if pending:                  # one arrived while this thread was ending
                self._start_update(self._announcement)

    def _apply_update(self, payload: bytes) -> None:
        """Fetch, verify and load one announced bundle; any failure refuses it (with a
        code) and keeps the running model; a refused file is deleted."""
        path = None
        try:
            announcement = read_announcement(payload)
            if announcement["sha256"] == self._announced_sha:
                return                     # the same retained announcement, re-delivered
            check_signature_policy(announcement, self.ota_policy)
            if self.config.updates_dir is None and self._updates_tmp is None:
                self._updates_tmp = tempfile.TemporaryDirectory(prefix="deepsense-updates-")
            out_dir = self.config.updates_dir or self._updates_tmp.name
            path = fetch_bundle(announcement, out_dir, self.ota_policy)
            signer = self._check_signature(path, announcement)
            model = load_update(path, self.model, self.ota_policy)
            self._announced_sha = announcement["sha256"]
            with self._update_lock:
                self._next_model = model
            log.info("model update %s %s (%s) verified (%s); swapping in", clean(model.name, 60),
                     clean(model.version, 30), model.bundle_sha256[:12], signer)
        except UpdateError as exc:
            self._refuse_update(exc.code, str(exc), path)
        except Exception as exc:  # noqa: BLE001 - a crafted bundle must never jam OTA
            self._refuse_update("internal_error", f"{type(exc).__name__}: {exc}", path)

    def _check_signature(self, path, announcement: dict) -> str:
        """Who signed the fetched zip ("key <id>"), or "unsigned, allowed by the operator"."""
        signature = announcement.get("signature")
        if signature is None:
            log.warning("accepting an unsigned model update (--allow-unsigned-updates)")
            return "unsigned, allowed by the operator"
        from edge.signing import SignatureError, verify_bytes

        try:
            signer = verify_bytes(path.read_bytes(), signature, self.ota_policy.trusted_keys)
        except SignatureError as exc:
            raise UpdateError(f"bundle refused: {exc}", "bad_signature") from None
        return f"signed by key {signer}"

    def _refuse_update(self, code: str, message: str, path) -> None:
        if path is not None:
            path.unlink(missing_ok=True)
        self._count("model_update_refused")
        self._count(f"model_update_refused_{code}")
        if self._may_log("model_update_refused"):
            log.warning("model update refused (%s): %s", code, clean(message, 300))
        self.outbox.send(self.client, self.topics.gateway_error,
                         encode_error(None, self.topics.model, "model_update_refused",
                                      clean(message, 300), code=code), qos=1)

    def _swap_model(self) -> None:
        with self._update_lock:
            model, self._next_model = self._next_model, None
        if model is not None:
            self._predict_ready()        # windows cut so far go to the model they were cut for
            self.model = model
            self._count("model_updates")
            self.publish_status()


def _ota_policy(config: GatewayConfig) -> OtaPolicy:
    """The operator's OTA settings, with the trusted keys loaded (fails at start, not later).

    Raises:
        SignatureError: a key file cannot be read. MissingExtraError: no `cryptography`.
    """
    keys = ()
    if config.trusted_keys:
        from edge.signing import load_public_key

        keys = tuple(load_public_key(path) for path in config.trusted_keys)
    return OtaPolicy(trusted_keys=keys, allow_unsigned=config.allow_unsigned_updates,
                     dirs=tuple(Path(d).resolve() for d in config.ota_dirs),
                     hosts=config.ota_hosts, max_bytes=config.max_bundle_bytes,
                     timeout_s=config.ota_timeout_s, max_batch=config.batch_windows,
                     max_activation_bytes=config.max_activation_bytes)
