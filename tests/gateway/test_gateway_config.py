"""Gateway settings: TOML + flags, URL checks, secrets from a file or the environment."""

from __future__ import annotations

import subprocess
import sys

import pytest

from deepsense.errors import ConfigError
from gateway.config import DEFAULT_BROKER, GatewayConfig, load_gateway_config, parse_broker_url


def test_config_file_then_overrides(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text('[gateway]\nbroker = "mqtts://broker.example:8884"\nmax_devices = 5\n'
                    'gateway_id = "edge-7"\n')
    config = load_gateway_config(path, {"max_devices": 9, "username": None})
    assert (config.broker, config.max_devices, config.gateway_id) == (
        "mqtts://broker.example:8884", 9, "edge-7")
    assert config.resolved_client_id == "deepsense-gateway-edge-7"
    assert config.topics.status == "sense/v1/gateway/edge-7/status"


@pytest.mark.parametrize("overrides, match", [
    ({"brokr": "mqtt://x"}, r"unknown key\(s\) \['gateway.brokr'\]"),
    ({"spool": 5}, "gateway.spool expected a str"),
    ({"ca_file": ["x"]}, "gateway.ca_file expected a str"),
    ({"max_devices": 2.5}, "gateway.max_devices expected an integer"),
    ({"broker": "http://x:1"}, "mqtt://HOST:PORT"),
    ({"broker": "mqtt://user:pw@x:1"}, "must not carry credentials"),
    ({"gateway_id": "a/b"}, "gateway id expected"),
    ({"topic_prefix": "a/#"}, "topic prefix"),
    ({"qos_in": 2}, "qos_in"),
    ({"queue_size": 0}, "positive"),
])
def test_config_refuses_bad_settings(overrides, match):
    with pytest.raises(ConfigError, match=match):
        load_gateway_config(None, overrides)


def test_config_file_values_are_typed_and_named(tmp_path):
    path = tmp_path / "gw.toml"
    path.write_text('[train]\nepochs = 3\n\n[gateway]\nspool = 5\n')
    with pytest.raises(ConfigError, match="gateway.spool expected a str"):
        load_gateway_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_gateway_config(tmp_path / "missing.toml")


def test_config_broker_url_defaults():
    assert parse_broker_url("mqtt://h") == (False, "h", 1883)
    assert parse_broker_url("mqtts://h") == (True, "h", 8883)


def test_config_password_from_file_or_environment(tmp_path, monkeypatch):
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n")
    assert GatewayConfig(password_file=str(secret)).password() == "s3cret"
    monkeypatch.setenv("DEEPSENSE_MQTT_PASSWORD", "from-env")
    config = GatewayConfig(username="u")
    assert config.password() == "from-env" and "from-env" not in repr(config)
    with pytest.raises(ConfigError, match="cannot read a password"):
        GatewayConfig(password_file=str(tmp_path / "missing")).password()


def test_gateway_never_imports_tensorflow():
    code = ("import sys, gateway.service, gateway.replay, gateway.commands, gateway.broker; "
            "import deepsense.cli; deepsense.cli.build_parser(); "
            "print('tensorflow' in sys.modules or 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_serve_and_replay_share_the_broker_flags_and_their_defaults():
    from deepsense.cli import build_parser

    parser = build_parser()
    serve = parser.parse_args(["serve", "--bundle", "b"])
    replay = parser.parse_args(["replay", "--data", "d"])
    for flag in ("broker", "ca_file", "username", "password_file"):
        assert getattr(serve, flag) is None and getattr(replay, flag) is None
    assert load_gateway_config().broker == DEFAULT_BROKER
    assert replay.topic_prefix == load_gateway_config().topic_prefix


def test_replay_reads_the_password_like_the_gateway(tmp_path, monkeypatch):
    import gateway.client

    seen = {}

    class Stop(Exception):
        pass

    def fake_connect(broker, **kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(gateway.client, "connect_client", fake_connect)
    monkeypatch.setenv("DEEPSENSE_MQTT_PASSWORD", "from-env")
    from deepsense.cli import build_parser
    from gateway.commands import cmd_replay

    args = build_parser().parse_args(["replay", "--data", "synthetic", "--seconds", "2",
                                      "--username", "u"])
    with pytest.raises(Stop):
        cmd_replay(args)
    assert seen["password"] == GatewayConfig(username="u").password() == "from-env"
