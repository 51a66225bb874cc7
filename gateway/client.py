"""paho-mqtt clients: built in one place for the gateway, replay, the demo and the tests.

Every client speaks MQTT 3.1.1 with paho's VERSION2 callbacks, uses TLS (system trust store
or `ca_file`, certificate required) for ``mqtts://`` URLs and a user name and password when
given. The password comes from `gateway.config.read_password`; it is never logged.
"""

from __future__ import annotations

import socket
import ssl
import threading
from contextlib import contextmanager
from typing import Iterator

import paho.mqtt.client as mqtt

from gateway.config import parse_broker_url


def make_client(broker: str, client_id: str = "", *, clean_session: bool = True,
                ca_file: str | None = None, username: str | None = None,
                password: str | None = None, max_inflight: int = 1000
                ) -> tuple[mqtt.Client, str, int]:
    """A paho client for `broker` (``mqtt://`` or ``mqtts://HOST:PORT``), not connected yet.

    Args:
        client_id: "" lets the broker pick one (then `clean_session` must be True).
        clean_session: False keeps the session (subscriptions, queued QoS 1 messages) on the
            broker while the client is away.
        max_inflight: QoS 1 messages sent but not yet acknowledged at once.

    Returns:
        (client, host, port).
    """
    tls, host, port = parse_broker_url(broker)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=clean_session, protocol=mqtt.MQTTv311)
    if tls:
        client.tls_set(ca_certs=ca_file, cert_reqs=ssl.CERT_REQUIRED)
    if username:
        client.username_pw_set(username, password)
    client.max_inflight_messages_set(max_inflight)
    return client, host, port


def open_client(broker: str, client_id: str = "", *, clean_session: bool = True,
                ca_file: str | None = None, username: str | None = None,
                password: str | None = None, timeout_s: float = 10.0) -> mqtt.Client:
    """A connected paho client (see `make_client`) with its network loop running; the caller
    disconnects it and stops its loop (`connect_client` does that for a ``with`` block).

    paho reconnects it by itself and re-sends unacknowledged QoS 1 messages.

    Raises:
        ConnectionError: the broker did not accept the client within `timeout_s`.
    """
    client, host, port = make_client(broker, client_id, clean_session=clean_session,
                                     ca_file=ca_file, username=username, password=password)
    connected = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties) -> None:
        if not reason_code.is_failure:
            connected.set()

    client.on_connect = on_connect
    client.connect(host, port, keepalive=30)
    client.loop_start()
    if not connected.wait(timeout_s):
        client.loop_stop()
        client.disconnect()
        raise ConnectionError(f"broker {host}:{port} did not accept the client "
                              f"within {timeout_s} s")
    return client


@contextmanager
def connect_client(broker: str, client_id: str = "", **options) -> Iterator[mqtt.Client]:
    """`open_client` for a ``with`` block: disconnected, its loop stopped, when it ends.

    ```python
    with connect_client("mqtt://127.0.0.1:1883", "replay") as client:
        client.publish("sense/v1/phone1/raw/acc", payload, qos=1)
    ```
    """
    client = open_client(broker, client_id, **options)
    try:
        yield client
    finally:
        client.disconnect()
        client.loop_stop()


def diagnose_tls(host: str, port: int, ca_file: str | None, timeout_s: float = 5.0) -> str:
    """Why a TLS connection to `host`:`port` fails, in one line (paho's reconnect loop
    swallows the reason): the certificate check (unknown issuer, expired, hostname or IP
    mismatch), another TLS error, or the network. "" when the handshake succeeds."""
    context = ssl.create_default_context(cafile=ca_file)
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw, \
                context.wrap_socket(raw, server_hostname=host):
            return ""
    except ssl.SSLCertVerificationError as exc:
        return f"TLS certificate rejected: {exc.verify_message} (CA file: {ca_file or 'system'})"
    except ssl.SSLError as exc:
        return f"TLS handshake failed: {exc.reason or exc}"
    except OSError as exc:
        return f"cannot reach {host}:{port}: {exc.strerror or type(exc).__name__}"
