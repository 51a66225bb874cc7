"""`deepsense serve`, `replay` and `dashboard`: argument parsing and handlers (no TensorFlow).

`deepsense.cli.build_parser` calls `add_serve_parser`, `add_replay_parser` and
`add_dashboard_parser`; handlers return exit codes (0 ok; ConfigError -> 2 and
ValueError/OSError -> 1 in `deepsense.cli`).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Iterator

from deepsense.data.sources import add_source_arguments
from deepsense.errors import ConfigError, require
from gateway.config import DEFAULT_BROKER, PASSWORD_ENV, check_plaintext, read_password
from gateway.topics import DEFAULT_PREFIX


def add_serve_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="MQTT gateway: live predictions on sensor streams")
    p.add_argument("--bundle", required=True, type=Path, help="edge bundle directory or .zip")
    add_broker_arguments(p)
    p.add_argument("--config", type=Path, help="TOML file with a [gateway] table")
    p.add_argument("--embedded-broker", action="store_true",
                   help="start a local broker (Mosquitto if installed, else amqtt) and use it")
    p.add_argument("--gateway-id", help="names the status/error/model topics (gw1)")
    p.add_argument("--client-id", help="MQTT client id (stable: deepsense-gateway-<id>)")
    p.add_argument("--topic-prefix", help=f"first topic levels ({DEFAULT_PREFIX})")
    p.add_argument("--qos-in", type=int, choices=(0, 1), help="QoS of the sensor subscription")
    p.add_argument("--max-devices", type=int)
    p.add_argument("--spool", help="SQLite file keeping unacknowledged predictions on disk")
    p.add_argument("--backend", choices=("numpy", "litert"), default="numpy")
    p.add_argument("--metrics-port", type=int, metavar="PORT",
                   help="serve Prometheus metrics on http://0.0.0.0:PORT/metrics "
                        "(needs the 'metrics' extra)")
    p.add_argument("--dashboard", type=int, metavar="PORT",
                   help="also serve the live dashboard on http://127.0.0.1:PORT/")
    p.add_argument("--trusted-key", action="append", metavar="PUB",
                   help="Ed25519 public key (PEM) whose signed bundles may replace the model "
                        "over the air (repeatable; `deepsense keygen`, `deepsense sign`)")
    p.add_argument("--allow-unsigned-updates", action="store_true", default=None,
                   help="accept unsigned over-the-air bundles (anyone who may publish on the "
                        "model topic then chooses the model)")
    p.add_argument("--ota-dir", action="append", metavar="DIR",
                   help="directory an announcement's path or file:// URL may name (repeatable)")
    p.add_argument("--ota-host", action="append", metavar="HOST",
                   help="host an announcement's https:// URL may name (repeatable)")
    p.set_defaults(handler=cmd_serve)


def add_dashboard_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboard", help="live web page of the predictions, uncertainty and "
                       "gateway health on a broker")
    add_broker_arguments(p)
    p.add_argument("--topic-prefix", default=DEFAULT_PREFIX)
    p.add_argument("--port", type=int, default=8080, help="HTTP port (8080)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (127.0.0.1; the page has no login: use 0.0.0.0 "
                        "only behind a proxy that authenticates)")
    p.add_argument("--max-fps", type=float,
                   help="frames per second sent to each browser at most (default 10)")
    p.add_argument("--uncertain-below", type=float, metavar="P",
                   help="mark windows whose max probability is below P (default 0.6)")
    p.set_defaults(handler=cmd_dashboard)


def add_replay_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="publish a recording as live MQTT sensor messages")
    p.add_argument("--data", required=True,
                   help="our CSV, a raw HHAR folder, a .ts file, or synthetic[:USER]")
    add_source_arguments(p)
    add_broker_arguments(p)
    p.add_argument("--device-id", help="publish under this device id (one-device recordings)")
    p.add_argument("--devices", type=int, default=1, metavar="N",
                   help="publish N copies as <id>-0 .. <id>-N-1 (load tests)")
    p.add_argument("--speed", type=float, default=1.0,
                   help="x real time; 0 publishes as fast as possible")
    p.add_argument("--batch-s", type=float, default=0.1,
                   help="seconds of samples per message (0: one sample per message)")
    p.add_argument("--max-pause-s", type=float, default=5.0,
                   help="shorten longer pauses in the data to this (timestamps unchanged)")
    p.add_argument("--qos", type=int, choices=(0, 1), default=1)
    p.add_argument("--topic-prefix", default=DEFAULT_PREFIX)
    p.add_argument("--seconds", type=float, default=30.0,
                   help="synthetic: seconds per activity")
    p.set_defaults(handler=cmd_replay)


def add_signing_parsers(sub: argparse._SubParsersAction) -> None:
    """`deepsense keygen` and `deepsense sign`: who may replace a gateway's model."""
    p = sub.add_parser("keygen", help="make an Ed25519 key pair for signing bundles")
    p.add_argument("--out", required=True, type=Path,
                   help="private key file (mode 0600); the public key goes to OUT.pub")
    p.set_defaults(handler=cmd_keygen)
    p = sub.add_parser("sign", help="sign a bundle zip for over-the-air updates")
    p.add_argument("--key", required=True, type=Path, help="private key from `deepsense keygen`")
    p.add_argument("bundle", type=Path, help="bundle .zip (or its directory: DIR.zip is signed)")
    p.set_defaults(handler=cmd_sign)


def cmd_keygen(args: argparse.Namespace) -> int:
    from edge.signing import generate_key

    public = generate_key(args.out)
    print(f"private key {args.out} (keep it off the gateways); public key {public} "
          f"(serve --trusted-key {public})")
    return 0


def cmd_sign(args: argparse.Namespace) -> int:
    """Write ``<zip>.sig`` and print the announcement fields (JSON) for the model topic."""
    import hashlib
    import json

    from edge.signing import SIGNATURE_SUFFIX, sign_bytes

    zip_path = args.bundle.with_suffix(".zip") if args.bundle.is_dir() else args.bundle
    data = zip_path.read_bytes()
    signature = sign_bytes(data, args.key)
    zip_path.with_name(zip_path.name + SIGNATURE_SUFFIX).write_text(signature + "\n")
    print(json.dumps({"sha256": hashlib.sha256(data).hexdigest(), "signature": signature,
                      "path": str(zip_path.resolve())}))
    return 0


def add_broker_arguments(p: argparse.ArgumentParser) -> None:
    """The broker and credential flags `serve` and `replay` share; None means the default
    (`DEFAULT_BROKER`; for `serve` the config file's value first)."""
    p.add_argument("--broker", help=f"mqtt://HOST:PORT or mqtts://HOST:PORT "
                   f"(default {DEFAULT_BROKER})")
    p.add_argument("--ca-file", help="CA certificate (PEM) for mqtts:// (default: the "
                   "system's trust store)")
    p.add_argument("--username", help=f"broker user; password from --password-file or "
                   f"${PASSWORD_ENV}")
    p.add_argument("--password-file", help="file whose first line is the broker password")
    p.add_argument("--allow-plaintext", action="store_true", default=None,
                   help="allow --username or --ca-file with a plaintext mqtt:// broker")


def cmd_serve(args: argparse.Namespace) -> int:
    from edge.runtime import load_bundle
    from gateway.broker import start_local_broker
    from gateway.config import load_gateway_config
    from gateway.service import Gateway

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    overrides = {"broker": args.broker, "gateway_id": args.gateway_id,
                 "client_id": args.client_id, "topic_prefix": args.topic_prefix,
                 "ca_file": args.ca_file, "username": args.username,
                 "password_file": args.password_file, "qos_in": args.qos_in,
                 "max_devices": args.max_devices, "spool": args.spool,
                 "trusted_keys": args.trusted_key, "ota_dirs": args.ota_dir,
                 "ota_hosts": args.ota_host, "allow_unsigned_updates": args.allow_unsigned_updates,
                 "allow_plaintext": args.allow_plaintext}
    config = load_gateway_config(args.config, overrides)
    if args.metrics_port is not None:
        require("prometheus_client", "metrics")       # fail before connecting
    model = load_bundle(args.bundle, backend=args.backend)
    broker = None
    with tempfile.TemporaryDirectory(prefix="deepsense-broker-") as workdir:
        if args.embedded_broker:
            broker = start_local_broker(workdir)
            config = load_gateway_config(args.config, {**overrides, "broker": broker.url})
            print(f"started {type(broker).__name__} on {broker.url}", flush=True)
        try:
            gateway = Gateway(config, model)
            with _serve_extras(gateway, args.metrics_port, args.dashboard):
                return _serve(gateway)
        finally:
            if broker is not None:
                broker.stop()


def _serve(gateway) -> int:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with gateway:
            topics, model = gateway.topics, gateway.model
            print(f"serving {model.name} {model.version} ({model.bundle_sha256[:12]}) for "
                  f"{topics.raw_subscription} on {gateway.config.broker}; predictions on "
                  f"{topics.prediction('<device>')}, status on {topics.status}", flush=True)
            while not stop.wait(0.5) and not gateway.failed.is_set():
                pass
            if gateway.failed.is_set():
                print(f"error: {gateway.failure}; stopping (exit 1: let the supervisor restart "
                      "the gateway)", file=sys.stderr, flush=True)
            print("stopping: cutting the last windows and waiting for acknowledgements",
                  flush=True)
            delivered = gateway.stop()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    counters = gateway.counters
    print(f"stopped: {counters['messages']} messages, {counters['samples']} samples, "
          f"{counters['predictions']} predictions, "
          f"{sum(v for k, v in counters.items() if k.startswith('refused_'))} refused; "
          f"{'all' if delivered else 'NOT all'} predictions acknowledged", flush=True)
    return 1 if gateway.failed.is_set() else 0


@contextlib.contextmanager
def _serve_extras(gateway, metrics_port: int | None, dashboard_port: int | None) -> Iterator[None]:
    """`serve --metrics-port` and `--dashboard`: up before the gateway connects (the page
    sees its first status), down after it stops."""
    with contextlib.ExitStack() as extras:
        if metrics_port is not None:
            from gateway.metrics import serve_metrics

            url = extras.enter_context(serve_metrics(gateway, metrics_port))
            print(f"metrics on {url}", flush=True)
        if dashboard_port is not None:
            dashboard = extras.enter_context(_dashboard_for(gateway.config, dashboard_port))
            print(f"dashboard on {dashboard.url}", flush=True)
        yield


def _dashboard_for(config, port: int):
    """A dashboard on the gateway's broker, credentials and topic prefix (not started)."""
    from gateway.dashboard import Dashboard

    return Dashboard(config.broker, config.topic_prefix, port, ca_file=config.ca_file,
                     username=config.username,
                     password=config.password() if config.username else None)


def cmd_dashboard(args: argparse.Namespace) -> int:
    from gateway.dashboard import Dashboard

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    broker = args.broker or DEFAULT_BROKER
    password = read_password(args.password_file) if args.username else None
    try:
        tuning = {k: v for k, v in (("max_fps", args.max_fps),
                                    ("uncertain_below", args.uncertain_below)) if v is not None}
        dashboard = Dashboard(broker, args.topic_prefix, args.port, host=args.host,
                              ca_file=args.ca_file, username=args.username, password=password,
                              **tuning)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set())
                for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        with dashboard:
            print(f"dashboard of {args.topic_prefix}/# on {broker}: open {dashboard.url} "
                  f"(Ctrl-C stops)", flush=True)
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from deepsense.data.sources import read_options, read_recordings
    from gateway.client import connect_client
    from gateway.replay import plan_messages, replay, synthetic_stream
    from gateway.topics import Topics

    if args.devices < 1:
        raise ConfigError(f"--devices expected >= 1. Received: {args.devices}")
    broker = args.broker or DEFAULT_BROKER
    check_plaintext(broker, args.username, args.ca_file, bool(args.allow_plaintext))
    password = read_password(args.password_file) if args.username else None
    data = read_recordings(args.source, args.data,
                           read_options(args, synthetic=synthetic_stream(args.seconds)))
    messages = plan_messages(data.recordings, Topics(args.topic_prefix), device_id=args.device_id,
                             n_copies=args.devices, batch_s=args.batch_s)
    n_devices = len({m.device_id for m in messages})
    print(f"replaying {len(messages)} messages of {n_devices} device(s) "
          f"({messages[-1].at_s:.1f} s of data) at {args.speed:g}x to {broker}", flush=True)
    with connect_client(broker, ca_file=args.ca_file, username=args.username,
                        password=password) as client:
        report = replay(messages, client, speed=args.speed, qos=args.qos,
                        max_pause_s=args.max_pause_s)
    print(f"published {report.n_messages} messages, {report.n_samples} samples in "
          f"{report.seconds:.1f} s ({report.n_samples / max(report.seconds, 1e-9):.0f} "
          f"samples/s); {report.n_unacknowledged} not acknowledged", flush=True)
    return 0 if report.n_unacknowledged == 0 else 1
