"""The recommended broker configuration (gateway/mosquitto.conf + mosquitto.acl), run as
shipped with only paths and the port replaced: TLS, passwords made by mosquitto_passwd, the
ACL. The gateway predicts; a device can neither announce a model nor speak for another."""

from __future__ import annotations

import getpass
import re
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from edge.runtime import load_bundle
from gateway.broker import free_port, wait_for_port
from gateway.client import open_client
from gateway.config import GatewayConfig
from gateway.messages import encode_samples
from gateway.service import Gateway, GatewayConnectionError

pytestmark = [pytest.mark.broker, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
USERS = {"gw1": "gw-pw-1", "operator": "op-pw-2", "dev1": "dev-pw-3", "dev2": "dev-pw-4"}


@pytest.fixture
def shipped_broker(mosquitto_binary, tls_files, tmp_path):
    """Mosquitto on gateway/mosquitto.conf; yields its port."""
    passwd_bin = shutil.which("mosquitto_passwd") or "/usr/bin/mosquitto_passwd"
    if not Path(passwd_bin).exists():
        pytest.skip("mosquitto_passwd not installed")
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        subprocess.run([passwd_bin, *(["-c"] if i == 0 else []), "-b", str(passwd), user,
                        password], check=True, capture_output=True)
    port = free_port()
    values = {"listener": f"{port} 127.0.0.1", "cafile": tls_files.ca_file,
              "certfile": tls_files.cert_file, "keyfile": tls_files.key_file,
              "password_file": passwd, "acl_file": REPO / "gateway" / "mosquitto.acl",
              "persistence_location": f"{tmp_path}/"}
    text = (REPO / "gateway" / "mosquitto.conf").read_text()
    for key, value in values.items():
        text, n = re.subn(rf"^{key} .*$", f"{key} {value}", text, flags=re.M)
        assert n == 1, f"gateway/mosquitto.conf has no '{key}' line"
    assert re.search(r"^allow_anonymous false$", text, re.M)
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(text + f"user {getpass.getuser()}\nlog_dest file {tmp_path}/log\n")
    process = subprocess.Popen([mosquitto_binary, "-c", str(conf)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_for_port("127.0.0.1", port, 5), (tmp_path / "log").read_text()[-500:]
        yield port
    finally:
        process.kill()
        process.wait()


def _login(url, tls_files, user, client_id):
    return open_client(url, client_id, ca_file=str(tls_files.ca_file), username=user,
                          password=USERS[user])


def test_gateway_runs_on_the_shipped_tls_password_acl_config(shipped_broker, tls_files, bundle,
                                                              tmp_path, collect):
    url = f"mqtts://127.0.0.1:{shipped_broker}"
    secret = tmp_path / "gw-secret"
    secret.write_text(USERS["gw1"] + "\n")
    config = GatewayConfig(broker=url, ca_file=str(tls_files.ca_file), username="gw1",
                           password_file=str(secret), gateway_id="gw1", reconnect_min_s=1,
                           reconnect_max_s=1)
    collector = collect(url, "sense/v1/#", "operator", ca_file=str(tls_files.ca_file),
                        username="operator", password=USERS["operator"])
    gateway = Gateway(config, load_bundle(bundle)).start()
    dev1 = _login(url, tls_files, "dev1", "dev1")
    t = np.arange(0, 5.5, 0.005)
    values = np.random.default_rng(0).standard_normal((t.size, 3))
    try:
        assert gateway.connected
        for sensor in ("acc", "gyro"):
            dev1.publish(f"sense/v1/dev1/raw/{sensor}", encode_samples(t, values),
                         qos=1).wait_for_publish(5)
            # The ACL drops both: dev1 speaking for dev2, and dev1 announcing a model.
            dev1.publish(f"sense/v1/dev2/raw/{sensor}", encode_samples(t, values),
                         qos=1).wait_for_publish(5)
        dev1.publish("sense/v1/gateway/gw1/model", b'{"sha256": "' + b"0" * 64 +
                     b'", "path": "/etc/passwd"}', qos=1).wait_for_publish(5)
        assert collector.wait_for(lambda c: len(c.json("/prediction")) == 1)
        time.sleep(1.0)
        assert [p["device_id"] for p in collector.json("/prediction")] == ["dev1"]
        assert gateway.counters["model_update_refused"] == 0
        assert "dev2" not in gateway.devices
    finally:
        dev1.disconnect()
        dev1.loop_stop()
        gateway.stop()
    anonymous = GatewayConfig(broker=url, ca_file=str(tls_files.ca_file), gateway_id="gw9")
    with pytest.raises(GatewayConnectionError, match="(?i)not authori[sz]ed|user name"):
        Gateway(anonymous, load_bundle(bundle)).start(connect_timeout_s=5)
