"""Fuzz through a real broker: 8,000 messages, hostile ones amid 5 honest devices.

The gateway must end with its worker and network threads alive, every honest window
predicted, memory bounded and every message and sample accounted for in its counters.
bench/bench_fuzz.py runs the same with >= 100,000 messages and the gateway in its own process.
"""

from __future__ import annotations

import os
import time
from collections import Counter

import pytest

from edge.runtime import load_bundle
from gateway.client import open_client
from gateway.config import GatewayConfig
from gateway.fuzz import MESSAGE_REASONS, SAMPLE_REASONS, expected_window_ids, plan_fuzz
from gateway.service import Gateway

pytestmark = [pytest.mark.broker, pytest.mark.slow]

N_MESSAGES = 8_000
#: Growth of the test process's resident memory the fuzz may cause (MiB): buffers are bounded
#: (<= 15 s of samples per device and sensor, 41 devices), the outbox holds a few hundred.
RSS_GROWTH_MIB = 150


def rss_mib() -> float:
    """Resident memory of this process now (Linux /proc), MiB."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def check_counters(counters: Counter, n_raw: int) -> None:
    """Every raw message and every parsed sample is accounted for exactly once."""
    refused = {k[len("refused_"):]: v for k, v in counters.items() if k.startswith("refused_")}
    assert counters["messages"] + counters["queue_full"] == n_raw
    assert counters["messages"] == (counters["messages_parsed"] + counters["worker_error"]
                                    + sum(refused.get(r, 0) for r in MESSAGE_REASONS))
    assert counters["samples_in"] == counters["samples"] + sum(refused.get(r, 0)
                                                               for r in SAMPLE_REASONS)


def test_fuzz_through_the_broker(broker, bundle, prefix, collect):
    config = GatewayConfig(broker=broker.url, topic_prefix=prefix, gateway_id="gw1",
                           max_devices=100, shutdown_timeout_s=30, queue_size=100_000)
    model = load_bundle(bundle)
    plan = plan_fuzz(N_MESSAGES, config.topics, max_batch_samples=config.max_batch_samples)
    expected = expected_window_ids(plan, model.features, max_lag_s=config.max_lag_s,
                                   max_jump_s=config.max_jump_s,
                                   max_buffered=config.max_buffered_samples)
    assert len(expected) >= 15
    collector = collect(broker.url, f"{prefix}/+/prediction")
    gateway = Gateway(config, model).start()
    client = open_client(broker.url, "fuzzer")
    rss_before = rss_mib()
    started = time.monotonic()
    try:
        infos = [client.publish(topic, payload, qos=1) for topic, payload in plan.messages]
        for info in infos:
            info.wait_for_publish(30)
        deadline = time.monotonic() + 30
        while gateway.counters["messages"] + gateway.counters["queue_full"] < plan.n_raw:
            assert time.monotonic() < deadline, dict(gateway.counters)
            time.sleep(0.1)
        assert gateway._worker.is_alive() and gateway.client._thread.is_alive()
    finally:
        client.disconnect()
        client.loop_stop()
        assert gateway.stop()
    seconds = time.monotonic() - started
    rss_growth = rss_mib() - rss_before
    assert collector.wait_for(lambda c: {p["window_id"] for p in c.json()} >= expected, 20), \
        sorted(expected - {p["window_id"] for p in collector.json()})
    counters = Counter(gateway.counters)
    check_counters(counters, plan.n_raw)
    assert counters["worker_error"] == 0 and counters["network_error"] == 0
    assert 1 <= counters["model_update_refused"] <= plan.n_model
    assert gateway.model.version == "1"
    assert rss_growth < RSS_GROWTH_MIB, rss_growth
    assert seconds < 60, seconds
    print(f"fuzz: {N_MESSAGES} messages in {seconds:.1f} s, RSS +{rss_growth:.0f} MiB, "
          f"{len(expected)} honest windows, counters {dict(counters)}")
