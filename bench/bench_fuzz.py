"""Fuzz a running gateway through Mosquitto with >= 100,000 messages (issue 13).

    PYTHONPATH=. .venv/bin/python bench/bench_fuzz.py [--messages 100000] [--bundle BUNDLE]

`gateway.fuzz.plan_fuzz` mixes 5 honest devices (200 Hz acc + gyro, 0.1 s per message, 30%
of the messages) with hostile ones: timestamps over the whole float range (+-1e308,
subnormals, milliseconds, NaN/Infinity text, 400-digit integers), batches over the limit,
300 KB payloads, a device whose gyro never reports, unknown sensors, topic levels trying to
inject log lines, bad JSON, values of 1e38 and more, jumping clocks, and over-the-air
announcements (unsigned, bad signature, /etc/passwd, http://127.0.0.1:22, bad URLs, 100 KB
data_b64). The gateway is `deepsense serve` in its own process; its resident memory is
sampled every 0.2 s. Checked and reported:

- the gateway's worker and network thread still work at the end (every honest window is
  predicted, the retained status keeps coming, no `worker_error` / `network_error`), and
  SIGTERM ends it with exit code 0;
- every honest device's windows predicted (as `expected_window_ids` cuts them);
- RSS bounded: the largest resident memory during the fuzz against a stated bound;
- counters adding up: every raw message ingested or counted as `queue_full`; every message
  parsed or refused with a reason; every parsed sample kept or refused with a reason.

Without --bundle, bench_gateway.make_bundle trains (1 epoch) and exports a thinned-width
DeepSense first. Writes the section "Gateway fuzz (issue 13)" of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from report import markdown_table, write_section  # noqa: E402

from edge.runtime import load_bundle  # noqa: E402
from gateway.broker import Mosquitto  # noqa: E402
from gateway.client import open_client  # noqa: E402
from gateway.config import GatewayConfig  # noqa: E402
from gateway.fuzz import (MESSAGE_REASONS, SAMPLE_REASONS, expected_window_ids,  # noqa: E402
                          plan_fuzz)
from gateway.topics import Topics  # noqa: E402

PREFIX = "fuzz"
#: Resident memory the gateway may reach (MiB): NumPy + paho + the model is ~60-80 MiB; the
#: bounded buffers (<= 15 s of samples per device and sensor), queue and outbox add the rest.
RSS_BOUND_MIB = 300


def rss_mib(pid: int) -> float:
    """Resident memory of process `pid` (Linux /proc), MiB."""
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class Collector:
    """Keeps every message on a topic filter (predictions, status); a persistent session,
    subscribed again on every connect, so a broker restart loses nothing."""

    def __init__(self, url: str, topic: str, client_id: str):
        self.messages: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()
        self.client = open_client(url, client_id, clean_session=False)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
        self.client.reconnect_delay_set(1, 2)
        self.client.subscribe(topic, qos=1)

    def _on_message(self, client, userdata, message) -> None:
        with self.lock:
            self.messages.append((message.topic, bytes(message.payload)))

    def json(self) -> list[dict]:
        with self.lock:
            return [json.loads(p) for _, p in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def counters_add_up(counters: Counter, n_raw: int) -> dict[str, bool]:
    refused = {k[len("refused_"):]: v for k, v in counters.items() if k.startswith("refused_")}
    return {
        "messages ingested or queue_full": counters["messages"] + counters["queue_full"] == n_raw,
        "messages parsed or refused": counters["messages"] == (
            counters["messages_parsed"] + counters["worker_error"]
            + sum(refused.get(r, 0) for r in MESSAGE_REASONS)),
        "samples kept or refused": counters["samples_in"] == counters["samples"] + sum(
            refused.get(r, 0) for r in SAMPLE_REASONS),
    }


def run(bundle: Path, n_messages: int, work: Path) -> dict:
    model = load_bundle(bundle)
    config = GatewayConfig(topic_prefix=PREFIX, gateway_id="fuzz", max_devices=1000,
                           queue_size=1_000_000, status_interval_s=1.0, idle_flush_s=600.0,
                           shutdown_timeout_s=60.0)
    started = time.perf_counter()
    plan = plan_fuzz(n_messages, Topics(PREFIX, "fuzz"),
                     max_batch_samples=config.max_batch_samples)
    expected = expected_window_ids(plan, model.features, max_lag_s=config.max_lag_s,
                                   max_jump_s=config.max_jump_s,
                                   max_buffered=config.max_buffered_samples)
    plan_s = time.perf_counter() - started
    with Mosquitto(work / "broker") as broker:
        toml = work / "gateway.toml"
        toml.write_text(f'[gateway]\nbroker = "{broker.url}"\ntopic_prefix = "{PREFIX}"\n'
                        f'gateway_id = "fuzz"\nmax_devices = 1000\nqueue_size = 1000000\n'
                        f'status_interval_s = 1.0\nidle_flush_s = 600.0\n'
                        f'shutdown_timeout_s = 60.0\n')
        predictions = Collector(broker.url, f"{PREFIX}/+/prediction", "fuzz-predictions")
        log_path = work / "gateway.log"         # a file: a full pipe would block the gateway
        log_file = log_path.open("w")
        status = Collector(broker.url, f"{PREFIX}/gateway/fuzz/status", "fuzz-status")
        gateway = subprocess.Popen([sys.executable, "-X", "faulthandler", "-m", "deepsense.cli",
                                    "serve", "--bundle",
                                    str(bundle), "--config", str(toml)],
                                   stdout=log_file, stderr=subprocess.STDOUT)
        rss, stop_sampling = [], threading.Event()

        def sample() -> None:
            while not stop_sampling.wait(0.2):
                try:
                    rss.append(rss_mib(gateway.pid))
                except (OSError, ValueError, IndexError):
                    return

        try:
            deadline = time.time() + 60
            while not any(s["state"] == "online" for s in status.json()):
                if time.time() > deadline or gateway.poll() is not None:
                    raise RuntimeError("gateway did not come online")
                time.sleep(0.1)
            rss_start = rss_mib(gateway.pid)
            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            client = open_client(broker.url, "fuzzer")
            t0 = time.perf_counter()
            pending = []
            for topic, payload in plan.messages:
                pending.append(client.publish(topic, payload, qos=1))
                if len(pending) >= 2000:
                    for info in pending:
                        info.wait_for_publish(60)
                    pending = []
            for info in pending:
                info.wait_for_publish(60)
            publish_s = time.perf_counter() - t0
            client.disconnect()
            client.loop_stop()
            last, last_change = None, time.time()
            while True:
                counters = Counter(status.json()[-1]["counters"])
                if counters["messages"] + counters["queue_full"] >= plan.n_raw:
                    break
                if counters != last:
                    last, last_change = counters, time.time()
                if time.time() - last_change > 60:     # no progress: dump its threads
                    gateway.send_signal(signal.SIGABRT)
                    gateway.wait(30)
                    raise RuntimeError(f"gateway stalled: {dict(counters)}\n"
                                       f"{log_path.read_text()[-6000:]}")
                time.sleep(0.5)
            ingest_s = time.perf_counter() - t0
            gateway.send_signal(signal.SIGTERM)
            exit_code = gateway.wait(180)
            time.sleep(1.0)
        finally:
            stop_sampling.set()
            if gateway.poll() is None:
                gateway.kill()
                gateway.wait()
            log_file.close()
            predictions.close()
            status.close()
    final = status.json()[-1]
    counters = Counter(final["counters"])
    seen = {p["window_id"] for p in predictions.json()}
    checks = counters_add_up(counters, plan.n_raw)
    return {"messages": n_messages, "n_raw": plan.n_raw, "n_model": plan.n_model,
            "kinds": plan.kinds, "plan_s": plan_s, "publish_s": publish_s,
            "ingest_s": ingest_s, "expected": len(expected), "predicted": len(expected & seen),
            "rss_start": rss_start, "rss_max": max(rss, default=rss_start),
            "rss_end": rss[-1] if rss else rss_start, "exit_code": exit_code,
            "final_state": final["state"], "counters": dict(counters), "checks": checks,
            "log_lines": len(log_path.read_text().splitlines()), "load": os.getloadavg()[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--bundle", type=Path, help="a bundle (default: train and export one)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-fuzz-"))
    if args.bundle is None:
        from bench_gateway import make_bundle

        args.bundle = make_bundle(work)
    r = run(args.bundle, args.messages, work)
    print(json.dumps(r), flush=True)
    c = r["counters"]
    refused = sum(v for k, v in c.items() if k.startswith("refused_"))
    table = markdown_table(
        ["messages", "sensor msgs / OTA", "published in", "ingested in", "honest windows "
         "predicted", "refused (msgs+samples)", "OTA refused", "worker / network errors",
         "gateway RSS start / max / end MiB", "exit on SIGTERM", "counters add up"],
        [[f"{r['messages']:,}", f"{r['n_raw']:,} / {r['n_model']:,}", f"{r['publish_s']:.0f} s",
          f"{r['ingest_s']:.0f} s ({r['n_raw'] / r['ingest_s']:,.0f} msgs/s)",
          f"{r['predicted']} of {r['expected']}", f"{refused:,}",
          f"{c.get('model_update_refused', 0):,}",
          f"{c.get('worker_error', 0)} / {c.get('network_error', 0)}",
          f"{r['rss_start']:.0f} / {r['rss_max']:.0f} / {r['rss_end']:.0f}",
          r["exit_code"], "yes" if all(r["checks"].values()) else f"NO: {r['checks']}"]])
    reasons = ", ".join(f"{k[len('refused_'):]} {v:,}" for k, v in sorted(c.items())
                        if k.startswith("refused_"))
    kinds = ", ".join(f"{k} {v:,}" for k, v in sorted(r["kinds"].items()))
    ok = (r["predicted"] == r["expected"] and r["exit_code"] == 0 and all(r["checks"].values())
          and r["rss_max"] < RSS_BOUND_MIB and not c.get("worker_error")
          and not c.get("network_error"))
    body = (f"{table}\n\nHostile messages by kind: {kinds}. Refusals by reason (sample "
            f"reasons count samples; sensor_missing and buffer_full count buffered samples "
            f"dropped): {reasons}. Dropped by the inbound queue's bounds (`queue_full`, 64 MiB / "
            f"1,000,000 messages): {c.get('queue_full', 0):,}. Predictions: "
            f"{c.get('predictions', 0):,}; final status "
            f"`{r['final_state']}`; the gateway wrote {r['log_lines']:,} log lines (at most 10 per "
            f"refusal reason and minute). RSS bound stated in advance: {RSS_BOUND_MIB} MiB "
            f"({'held' if r['rss_max'] < RSS_BOUND_MIB else 'EXCEEDED'}). Machine load "
            f"(1 min) at the end: {r['load']:.1f}. Verdict: {'pass' if ok else 'FAIL'}.")
    write_section("Gateway fuzz (issue 13)",
                  f"PYTHONPATH=. .venv/bin/python bench/bench_fuzz.py --messages {args.messages}",
                  body)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
