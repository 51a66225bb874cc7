"""A local MQTT broker for tests, the demo and `serve --embedded-broker`.

`Mosquitto` runs the Debian/Homebrew binary with the recommended settings of
``gateway/mosquitto.conf`` on a free loopback port (optionally with a password file and TLS),
and can be stopped gracefully (SIGTERM), killed (SIGKILL) and restarted on the same port
with its persistence file. `EmbeddedBroker` is the fallback when Mosquitto is not installed:
amqtt, pure Python, MQTT 3.1.1, several times slower (for trying things out, not production).
"""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from deepsense.errors import require

#: Settings every broker we start uses (see gateway/mosquitto.conf for why).
RECOMMENDED = {
    "persistence": "true",
    "autosave_interval": "1",
    "max_queued_messages": "100000",
    "max_inflight_messages": "100",
}


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary (Debian puts it in /usr/sbin, often not on PATH), or None."""
    found = shutil.which("mosquitto")
    if found:
        return found
    for candidate in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto",
                      "/opt/homebrew/sbin/mosquitto"):
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago on `host`."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_s: float = 5.0) -> bool:
    """True once something accepts TCP connections on (host, port), False after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.05)
    return False


def write_password_file(path: str | Path, users: dict[str, str]) -> Path:
    """A Mosquitto password file (salted SHA-512, the ``$6$`` format) for `users`."""
    lines = []
    for user, password in users.items():
        salt = os.urandom(12)
        digest = hashlib.sha512(password.encode() + salt).digest()
        lines.append(f"{user}:$6${base64.b64encode(salt).decode()}$"
                     f"{base64.b64encode(digest).decode()}")
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)
    return path


@dataclass(frozen=True)
class TlsFiles:
    """PEM files of a TLS listener: the CA that signed the server certificate, and the server's."""

    ca_file: Path
    cert_file: Path
    key_file: Path


class Mosquitto:
    """One Mosquitto process on loopback, restartable on the same port with the same state.

    Args:
        workdir: where the config, persistence file and log go.
        port: the port (default: a free one).
        password_file: refuse anonymous clients and check this file.
        tls: serve MQTT over TLS (mqtts) with these files.
        binary: the mosquitto executable (default: `find_mosquitto()`).
    """

    def __init__(self, workdir: str | Path, port: int | None = None, *,
                 password_file: str | Path | None = None, tls: TlsFiles | None = None,
                 binary: str | None = None, host: str = "127.0.0.1"):
        self.binary = binary or find_mosquitto()
        if self.binary is None:
            raise FileNotFoundError("mosquitto not found: install it (Debian/Ubuntu: "
                                    "apt-get install mosquitto; macOS: brew install mosquitto)")
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = host
        self.port = port or free_port(host)
        self.password_file = password_file
        self.tls = tls
        self.process: subprocess.Popen | None = None
        self.conf_path = self.workdir / "mosquitto.conf"
        self.log_path = self.workdir / "mosquitto.log"
        self.conf_path.write_text(self.config_text())

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://{self.host}:{self.port}"

    def config_text(self) -> str:
        lines = [f"listener {self.port} {self.host}",
                 f"allow_anonymous {'false' if self.password_file else 'true'}",
                 f"persistence_location {self.workdir}/",
                 f"log_dest file {self.log_path}",
                 "log_type error", "log_type warning", "log_type notice",
                 f"user {getpass.getuser()}"]
        lines += [f"{key} {value}" for key, value in RECOMMENDED.items()]
        if self.password_file:
            lines.append(f"password_file {self.password_file}")
        if self.tls:
            lines += [f"cafile {self.tls.ca_file}", f"certfile {self.tls.cert_file}",
                      f"keyfile {self.tls.key_file}"]
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = 5.0) -> "Mosquitto":
        if self.process is not None and self.process.poll() is None:
            return self
        self.process = subprocess.Popen([self.binary, "-c", str(self.conf_path)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.host, self.port, timeout_s):
            self.kill()
            log = self.log_path.read_text()[-500:] if self.log_path.exists() else ""
            raise RuntimeError(f"mosquitto did not listen on {self.host}:{self.port} within "
                               f"{timeout_s} s; log: {log}")
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        """Graceful stop (SIGTERM): Mosquitto saves its persistence file first."""
        self._end(signal.SIGTERM, timeout_s)

    def kill(self) -> None:
        """Crash (SIGKILL): whatever was not autosaved is lost."""
        self._end(signal.SIGKILL, 10.0)

    def restart(self, timeout_s: float = 5.0) -> "Mosquitto":
        self.stop()
        return self.start(timeout_s)

    def _end(self, sig: int, timeout_s: float) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> "Mosquitto":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


_AMQTT_MAIN = """
import asyncio, sys
from amqtt.broker import Broker

async def main(host, port):
    config = {"listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}"}},
              "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                          {"allow_anonymous": True}}}
    broker = Broker(config)
    await broker.start()
    await asyncio.Event().wait()

asyncio.run(main(sys.argv[1], int(sys.argv[2])))
"""


class EmbeddedBroker:
    """amqtt (pure Python, MQTT 3.1.1, anonymous, in memory) in a child process on loopback.

    A child process keeps amqtt's event loop and its warnings out of the caller, and can be
    stopped like Mosquitto.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1"):
        require("amqtt.broker", "broker")
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self, timeout_s: float = 15.0) -> "EmbeddedBroker":
        self.process = subprocess.Popen(
            [sys.executable, "-c", _AMQTT_MAIN, self.host, str(self.port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.host, self.port, timeout_s):
            self.stop()
            raise RuntimeError(f"embedded broker did not listen on {self.host}:{self.port} "
                               f"within {timeout_s} s")
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def __enter__(self) -> "EmbeddedBroker":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def start_local_broker(workdir: str | Path) -> Mosquitto | EmbeddedBroker:
    """Mosquitto on a free loopback port if installed, else the embedded amqtt broker."""
    if find_mosquitto():
        return Mosquitto(workdir).start()
    return EmbeddedBroker().start()
