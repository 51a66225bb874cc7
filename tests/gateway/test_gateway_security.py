"""TLS and passwords: the right credentials connect, wrong ones are refused, secrets stay out of logs."""

from __future__ import annotations

import logging

import pytest

from edge.runtime import load_bundle
from gateway.broker import Mosquitto, TlsFiles, write_password_file
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


# paho 2.2 leaves the socket of a failed TLS handshake to the garbage collector.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_security_tls_failure_names_its_cause(mosquitto_binary, tls_files, bundle, tmp_path,
                                              prefix, caplog):
    # Review (Low): a hostname mismatch was logged only as "not reachable yet", forever.
    import subprocess

    d = tls_files.ca_file.parent

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    (tmp_path / "san.ext").write_text("subjectAltName=DNS:broker.example.org\n")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(tmp_path / "other.key"), "-out",
        str(tmp_path / "other.csr"), "-subj", "/CN=broker.example.org")
    run("x509", "-req", "-in", str(tmp_path / "other.csr"), "-CA", "ca.crt", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", str(tmp_path / "other.crt"), "-days", "2", "-extfile",
        str(tmp_path / "san.ext"))
    other = TlsFiles(tls_files.ca_file, tmp_path / "other.crt", tmp_path / "other.key")
    server = Mosquitto(tmp_path / "broker", tls=other, binary=mosquitto_binary).start()
    try:
        for ca_file, cause in ((tls_files.ca_file, "IP address mismatch"),
                               (tls_files.cert_file, "self-signed certificate")):
            config = GatewayConfig(broker=server.url, ca_file=str(ca_file), topic_prefix=prefix,
                                   reconnect_min_s=1, reconnect_max_s=1)
            gateway = Gateway(config, load_bundle(bundle))
            with caplog.at_level(logging.ERROR, logger="gateway"):
                gateway.start(connect_timeout_s=2)
            gateway.stop(flush=False)
            assert any(cause in r.getMessage() and "certificate" in r.getMessage()
                       for r in caplog.records), [r.getMessage() for r in caplog.records]
    finally:
        server.kill()
