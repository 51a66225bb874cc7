"""TLS and passwords: the right credentials connect, wrong ones are refused, secrets stay out of logs."""

from __future__ import annotations

import logging

import pytest

from edge.runtime import load_bundle
from gateway.broker import Mosquitto, write_password_file
from gateway.config import GatewayConfig
from gateway.service import Gateway, GatewayConnectionError

pytestmark = [pytest.mark.broker, pytest.mark.slow]

PASSWORD = "pw-Zq8#tls-only"


@pytest.fixture
def secure_broker(mosquitto_binary, tmp_path, tls_files):
    users = write_password_file(tmp_path / "passwd", {"gw": PASSWORD, "reader": "reader-pw"})
    server = Mosquitto(tmp_path / "broker", password_file=users, tls=tls_files,
                       binary=mosquitto_binary).start()
    yield server
    server.kill()


def _config(broker, tls_files, tmp_path, password: str, prefix: str) -> GatewayConfig:
    secret = tmp_path / f"secret-{len(password)}"
    secret.write_text(password + "\n")
    return GatewayConfig(broker=broker.url, ca_file=str(tls_files.ca_file), username="gw",
                         password_file=str(secret), topic_prefix=prefix, reconnect_min_s=1,
                         reconnect_max_s=1)


def test_security_tls_and_password_accepted(secure_broker, tls_files, bundle, tmp_path, prefix,
                                            collect, caplog):
    caplog.set_level(logging.DEBUG)
    assert secure_broker.url.startswith("mqtts://")
    collector = collect(secure_broker.url, f"{prefix}/#", ca_file=str(tls_files.ca_file),
                        username="reader", password="reader-pw")
    config = _config(secure_broker, tls_files, tmp_path, PASSWORD, prefix)
    with Gateway(config, load_bundle(bundle)) as gateway:
        assert gateway.connected
        assert collector.wait_for(lambda c: any(s["state"] == "online"
                                                for s in c.json("/status")))
    assert PASSWORD not in caplog.text and PASSWORD not in repr(config)


def test_security_wrong_password_is_refused(secure_broker, tls_files, bundle, tmp_path, prefix,
                                            caplog):
    caplog.set_level(logging.DEBUG)
    config = _config(secure_broker, tls_files, tmp_path, "not-the-password", prefix)
    with pytest.raises(GatewayConnectionError, match="refused") as info:
        Gateway(config, load_bundle(bundle)).start()
    assert "not-the-password" not in str(info.value) + caplog.text


def test_security_anonymous_is_refused(secure_broker, tls_files, bundle, prefix):
    config = GatewayConfig(broker=secure_broker.url, ca_file=str(tls_files.ca_file),
                           topic_prefix=prefix)
    with pytest.raises(GatewayConnectionError, match="refused"):
        Gateway(config, load_bundle(bundle)).start()
