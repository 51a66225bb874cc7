"""Predictions kept until the broker acknowledges them (QoS 1 PUBACK), bounded, optionally on disk.

While connected, entries are handed to paho, which keeps an unacknowledged QoS 1 message and
re-sends it (DUP) after a reconnect. While disconnected, entries wait here, so memory stays
bounded by `max_pending` (the oldest waiting entry is dropped and counted beyond it). With a
spool file (SQLite) the entries also survive a gateway restart and are sent again at start:
a consumer may see a prediction twice and drops duplicates by window id.

A failing spool (disk full, file removed, I/O error) never raises out of `add` or
`on_publish` (paho's network thread): the error is counted in `n_spool_errors`, kept in
`last_spool_error` for the gateway to report, and the entry is kept in memory only, so the
prediction is still delivered while the gateway runs but would not survive a restart. A spool
file that cannot be opened at start (corrupt, not SQLite) raises `SpoolError`.

paho calls ``on_publish`` while holding its own lock, so this class never calls paho while
holding its lock; an acknowledgement that arrives before `pump` has recorded the message id
is remembered and matched right after.
"""

from __future__ import annotations

import sqlite3
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt


class SpoolError(OSError):
    """The spool file cannot be opened or read; the message names the file."""


@dataclass
class _Entry:
    topic: str
    payload: bytes


class Outbox:
    """Unacknowledged QoS 1 predictions, in order.

    Args:
        max_pending: most entries kept (waiting + sent but not acknowledged).
        spool: SQLite file keeping entries across restarts, or None (memory only).
    """

    def __init__(self, max_pending: int = 100_000, spool: str | Path | None = None):
        self.max_pending = max_pending
        self.n_dropped = 0
        self.n_acked = 0
        self.n_spool_errors = 0
        self.last_spool_error: sqlite3.Error | None = None
        self.spool_failing = False        # the latest spool write failed
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._waiting: deque[int] = deque()
        self._mid_to_seq: dict[int, int | None] = {}
        self._early_acks: set[int] = set()
        self._lock = threading.Lock()
        self._empty = threading.Condition(self._lock)
        self._seq = 0
        self._db: sqlite3.Connection | None = None
        if spool is not None:
            self._open_spool(Path(spool))

    def _open_spool(self, path: Path) -> None:
        """Open (or create) the spool and load what it keeps.

        Raises:
            SpoolError: the file is not a readable spool (corrupt, not SQLite, unreadable).
        """
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS pending (seq INTEGER PRIMARY KEY, "
                             "topic TEXT NOT NULL, payload BLOB NOT NULL)")
            rows = self._db.execute("SELECT seq, topic, payload FROM pending ORDER BY seq")
            for seq, topic, payload in rows:
                self._entries[seq] = _Entry(str(topic), bytes(payload))
                self._waiting.append(seq)
                self._seq = seq
        except (sqlite3.Error, OSError, TypeError) as exc:
            if self._db is not None:
                self._db.close()
                self._db = None
            raise SpoolError(f"spool {path}: cannot be used ({type(exc).__name__}: {exc}); "
                             "move it away to start with an empty spool (its unsent "
                             "predictions are then lost)") from None

    def _spool(self, statement: str, parameters: tuple) -> None:
        """Run one statement on the spool; a failure is counted, never raised."""
        try:
            self._db.execute(statement, parameters)
            self.spool_failing = False
        except sqlite3.Error as exc:
            self.n_spool_errors += 1
            self.last_spool_error = exc
            self.spool_failing = True

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def add(self, topic: str, payload: bytes) -> None:
        """Keep a prediction until acknowledged; drop the oldest waiting one when full."""
        with self._lock:
            while len(self._entries) >= self.max_pending and self._waiting:
                self._forget(self._waiting.popleft())
                self.n_dropped += 1
            if len(self._entries) >= self.max_pending:
                self.n_dropped += 1          # everything kept is in flight: drop the newest
                return
            self._seq += 1
            if self._db is not None:     # before memory: a failure leaves nothing half-done
                self._spool("INSERT INTO pending VALUES (?, ?, ?)", (self._seq, topic, payload))
            self._entries[self._seq] = _Entry(topic, payload)
            self._waiting.append(self._seq)

    def pump(self, client: mqtt.Client, connected: bool, limit: int = 1000) -> int:
        """Hand up to `limit` waiting entries to paho (QoS 1) if connected; return how many."""
        if not connected:
            return 0
        with self._lock:
            batch = [self._waiting.popleft() for _ in range(min(limit, len(self._waiting)))]
            items = [(seq, self._entries[seq]) for seq in batch]
        for seq, entry in items:
            info = client.publish(entry.topic, entry.payload, qos=1)
            self._register(info, seq)
        return len(items)

    def send(self, client: mqtt.Client, topic: str, payload: bytes, qos: int = 0,
             retain: bool = False) -> None:
        """Publish something that is not kept here (status, errors), tracking its message id."""
        info = client.publish(topic, payload, qos=qos, retain=retain)
        if qos > 0 or info.rc == mqtt.MQTT_ERR_SUCCESS:   # a QoS 0 message not sent gets no ack
            self._register(info, None)

    def _register(self, info: mqtt.MQTTMessageInfo, seq: int | None) -> None:
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:    # paho refused to keep it: wait again
            if seq is not None:
                with self._lock:
                    self._waiting.appendleft(seq)
            return
        with self._lock:
            if info.mid in self._early_acks:
                self._early_acks.discard(info.mid)
                self._acked(seq)
            else:
                self._mid_to_seq[info.mid] = seq

    def on_publish(self, client, userdata, mid: int, reason_code, properties) -> None:
        """paho (VERSION2) on_publish: the broker acknowledged message `mid`."""
        with self._lock:
            if mid in self._mid_to_seq:
                self._acked(self._mid_to_seq.pop(mid))
            else:
                self._early_acks.add(mid)

    def _acked(self, seq: int | None) -> None:
        if seq is None or seq not in self._entries:
            return
        self._forget(seq)
        self.n_acked += 1
        if not self._entries:
            self._empty.notify_all()

    def _forget(self, seq: int) -> None:
        del self._entries[seq]
        if self._db is not None:     # a failure leaves the row: sent again after a restart
            self._spool("DELETE FROM pending WHERE seq = ?", (seq,))

    def wait_empty(self, timeout_s: float) -> bool:
        """Block until every entry is acknowledged (True) or `timeout_s` passes (False)."""
        with self._lock:
            return self._empty.wait_for(lambda: not self._entries, timeout_s)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
