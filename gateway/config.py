"""Gateway settings: one frozen dataclass, read from a TOML file's [gateway] table and flags
by the typed loader every section uses (`deepsense.config.load_section`): unknown keys and
values of the wrong type are ConfigErrors naming ``gateway.<key>``.

Secrets are never stored here: the password is read from `password_file` or from the
environment variable named by `password_env` at connect time, and never logged.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

from deepsense.config import load_section
from deepsense.errors import ConfigError
from gateway.messages import MAX_BATCH_SAMPLES, MAX_PAYLOAD_BYTES
from gateway.topics import DEFAULT_GATEWAY_ID, DEFAULT_PREFIX, Topics, check_id, check_prefix

#: Environment variable holding the broker password, unless `password_file` is given.
PASSWORD_ENV = "DEEPSENSE_MQTT_PASSWORD"
#: The broker `serve` and `replay` use when none is given: a local Mosquitto.
DEFAULT_BROKER = "mqtt://127.0.0.1:1883"


@dataclass(frozen=True)
class GatewayConfig:
    """Everything `deepsense serve` can be told (flags override the config file).

    Attributes:
        broker: ``mqtt://host:port`` or ``mqtts://host:port`` (TLS; port defaults 1883/8883).
        ca_file: CA certificate (PEM) that signed the broker's certificate; default: the
            system's trust store.
        username: broker user name; the password comes from `password_file` or the
            environment variable `password_env`.
        password_file: file whose first line is the password.
        password_env: environment variable with the password (default DEEPSENSE_MQTT_PASSWORD).
        gateway_id: names this gateway's status, error and model topics.
        client_id: MQTT client id; stable, so the broker keeps the session (default
            ``deepsense-gateway-<gateway_id>``).
        topic_prefix: first levels of every topic (``sense/v1``).
        qos_in: QoS of the sensor subscription (1: the broker queues while we are away; 0
            for lossy high-rate links). Predictions are always QoS 1.
        keepalive_s: MQTT keepalive.
        reconnect_min_s, reconnect_max_s: exponential reconnect backoff bounds.
        max_devices: devices tracked at once; more are refused ("too_many_devices").
        max_payload_bytes, max_batch_samples: larger messages are refused ("oversize").
        queue_size: messages waiting between the network thread and the worker; when full,
            new messages are dropped and counted ("queue_full") rather than blocking.
        queue_bytes: payload bytes waiting there at most (the same: dropped, "queue_full").
        batch_windows: most windows per model call.
        max_pending: predictions kept until the broker acknowledges them; beyond this the
            oldest not yet sent is dropped and counted.
        spool: SQLite file that keeps unacknowledged predictions across restarts (optional).
        status_interval_s: how often the retained status is refreshed.
        idle_flush_s: a device silent this long (wall clock) has its last windows cut and its
            state dropped; its next sample starts a new window grid.
        max_lag_s: a sensor this far behind another is left out of a window (default: one
            window length).
        max_jump_s: samples this far ahead of a device's newest are refused ("time_jump").
        shutdown_timeout_s: on SIGTERM, how long to wait for pending acknowledgements.
        updates_dir: where over-the-air bundles are stored (default: a temporary directory).
        max_bundle_bytes: larger over-the-air bundles are refused.
        max_abs_t_s: timestamps beyond +-this many seconds are refused ("out_of_range").
        max_abs_value: sensor values beyond +-this are refused ("out_of_range").
        max_buffered_samples: most samples buffered per device and sensor; the oldest are
            dropped beyond it ("buffer_full").
        trusted_keys: Ed25519 public key files (PEM) whose signed bundles may replace the
            model (`deepsense keygen`, `deepsense sign`).
        allow_unsigned_updates: accept over-the-air bundles without a signature (opt-out:
            then anyone who may publish on the model topic chooses the model).
        ota_dirs: directories an announcement's `path` or ``file://`` URL may name.
        ota_hosts: hosts an announcement's ``https://`` URL may name.
        ota_timeout_s: total deadline of one bundle download.
        max_activation_bytes: a bundle whose largest intermediate at `batch_windows` windows
            takes more is refused.
        allow_plaintext: allow credentials or a CA file with an ``mqtt://`` (not TLS) broker.
    """

    broker: str = DEFAULT_BROKER
    ca_file: str | None = None
    username: str | None = None
    password_file: str | None = None
    password_env: str = PASSWORD_ENV
    gateway_id: str = DEFAULT_GATEWAY_ID
    client_id: str | None = None
    topic_prefix: str = DEFAULT_PREFIX
    qos_in: int = 1
    keepalive_s: int = 30
    reconnect_min_s: int = 1
    reconnect_max_s: int = 30
    max_devices: int = 1000
    max_payload_bytes: int = MAX_PAYLOAD_BYTES
    max_batch_samples: int = MAX_BATCH_SAMPLES
    queue_size: int = 10_000
    queue_bytes: int = 64 * 1024 * 1024
    batch_windows: int = 64
    max_pending: int = 100_000
    spool: str | None = None
    status_interval_s: float = 10.0
    idle_flush_s: float = 30.0
    max_lag_s: float | None = None
    max_jump_s: float = 300.0
    shutdown_timeout_s: float = 10.0
    updates_dir: str | None = None
    max_bundle_bytes: int = 64 * 1024 * 1024
    max_abs_t_s: float = 1e10
    max_abs_value: float = 1e6
    max_buffered_samples: int = 200_000
    trusted_keys: tuple[str, ...] = ()
    allow_unsigned_updates: bool = False
    ota_dirs: tuple[str, ...] = ()
    ota_hosts: tuple[str, ...] = ()
    ota_timeout_s: float = 60.0
    max_activation_bytes: int = 256 * 1024 * 1024
    allow_plaintext: bool = False

    def __post_init__(self) -> None:
        for name in ("trusted_keys", "ota_dirs", "ota_hosts"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"gateway.{name} expected a list of strings. "
                                  f"Received: {value!r}")
            object.__setattr__(self, name, tuple(value))
        try:
            parse_broker_url(self.broker)
            check_id(self.gateway_id, "gateway id")
            check_prefix(self.topic_prefix)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        check_plaintext(self.broker, self.username, self.ca_file, self.allow_plaintext)
        for name in ("allow_unsigned_updates", "allow_plaintext"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"gateway.{name} expected true or false. "
                                  f"Received: {getattr(self, name)!r}")
        if self.qos_in not in (0, 1):
            raise ConfigError(f"gateway.qos_in expected 0 or 1. Received: {self.qos_in!r}")
        for name in ("keepalive_s", "reconnect_min_s", "reconnect_max_s", "max_devices",
                     "max_payload_bytes", "max_batch_samples", "queue_size", "queue_bytes",
                     "batch_windows",
                     "max_pending", "status_interval_s", "idle_flush_s", "max_jump_s",
                     "shutdown_timeout_s", "max_bundle_bytes", "max_abs_t_s", "max_abs_value",
                     "max_buffered_samples", "ota_timeout_s", "max_activation_bytes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"gateway.{name} expected a positive number. "
                                  f"Received: {value!r}")

    @property
    def resolved_client_id(self) -> str:
        return self.client_id or f"deepsense-gateway-{self.gateway_id}"

    @property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix, self.gateway_id)

    def password(self) -> str | None:
        """The broker password from `password_file` or the environment, or None."""
        return read_password(self.password_file, self.password_env)


def read_password(password_file: str | None, password_env: str = PASSWORD_ENV) -> str | None:
    """The first line of `password_file`, else the environment variable `password_env`, or
    None. The password is never logged.

    Raises:
        ConfigError: `password_file` cannot be read or is empty.
    """
    if password_file:
        try:
            return Path(password_file).read_text().splitlines()[0].strip()
        except (OSError, IndexError) as exc:
            raise ConfigError(f"password file {password_file!r}: cannot read "
                              f"a password ({type(exc).__name__})") from None
    return os.environ.get(password_env) or None


def check_plaintext(broker: str, username: str | None, ca_file: str | None,
                    allow_plaintext: bool) -> None:
    """Refuse credentials or a CA file over a plaintext ``mqtt://`` broker unless allowed:
    the password would cross the network in clear, and a CA file says TLS was meant.
    A loopback broker (127.0.0.0/8, ::1, localhost) is exempt: nothing leaves the machine.

    Raises:
        ConfigError: naming the broker and the way out.
    """
    tls, host, _ = parse_broker_url(broker)
    if tls or allow_plaintext or not (username or ca_file) or host == "localhost":
        return
    try:
        loopback = ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(f"broker {broker} is plaintext (mqtt://) but a user name or a CA "
                          "file was given: use mqtts:// (TLS), or --allow-plaintext on a "
                          "network you trust")


def parse_broker_url(url: str) -> tuple[bool, str, int]:
    """``mqtt://host:port`` / ``mqtts://host:port`` -> (tls, host, port)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError(f"broker expected mqtt://HOST:PORT or mqtts://HOST:PORT. "
                         f"Received: {url!r}")
    if parts.username or parts.password:
        raise ValueError("broker URL must not carry credentials; use --username and "
                         "--password-file or the environment")
    tls = parts.scheme == "mqtts"
    try:
        port = parts.port or (8883 if tls else 1883)
    except ValueError:
        raise ValueError(f"broker port expected 1-65535. Received: {url!r}") from None
    return tls, parts.hostname, port


def load_gateway_config(path: str | Path | None = None,
                        overrides: Mapping[str, Any] | None = None) -> GatewayConfig:
    """Settings from a TOML file's ``[gateway]`` table, then `overrides` (None values ignored).

    Raises:
        ConfigError: unreadable file, unknown key, or a value of the wrong type or range.
    """
    return load_section(GatewayConfig, "gateway", path, overrides)
