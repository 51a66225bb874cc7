"""Bad input never stops the gateway: any topic and payload is handled or refused and counted."""

from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.runtime import load_bundle
from gateway.config import GatewayConfig
from gateway.service import Gateway

pytestmark = pytest.mark.slow

_levels = st.sampled_from(["d1", "d2", "phone-7", "", "$x", "a+b", "gateway", "é", "d" * 70])
_sensors = st.sampled_from(["acc", "gyro", "magnet", ""])
_samples = st.lists(st.lists(st.one_of(st.floats(-1e3, 1e3), st.integers(-5, 5), st.none(),
                                       st.text(max_size=3)), min_size=3, max_size=5),
                    max_size=8)
_payloads = st.one_of(
    st.binary(max_size=64),
    _samples.map(lambda rows: json.dumps({"samples": rows}).encode()),
    st.fixed_dictionaries({"t_s": st.floats(allow_nan=True, allow_infinity=True),
                           "x": st.floats(-10, 10), "y": st.integers(), "z": st.booleans()})
    .map(lambda d: json.dumps(d).encode()))


@pytest.fixture(scope="module")
def offline_gateway(bundle):
    """A gateway that is never connected: refusals are counted, publishes go nowhere."""
    gateway = Gateway(GatewayConfig(topic_prefix="fuzz", max_devices=3), load_bundle(bundle))
    yield gateway
    gateway.client.loop_stop()
    gateway.outbox.close()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(_levels, _sensors, _payloads), min_size=1, max_size=10))
def test_handle_fuzz_never_raises_and_counts_everything(offline_gateway, messages):
    gateway = offline_gateway
    before = sum(v for k, v in gateway.counters.items() if k.startswith("refused_"))
    n_before = gateway.counters["messages"]
    for device, sensor, payload in messages:
        gateway._handle(f"fuzz/{device}/raw/{sensor}", payload, time.monotonic())
    gateway._predict_ready()
    assert gateway.counters["messages"] == n_before + len(messages)
    refused = sum(v for k, v in gateway.counters.items() if k.startswith("refused_"))
    assert refused >= before
    assert len(gateway.devices) <= 3


def test_handle_logs_at_most_ten_refusals_per_reason_and_minute(offline_gateway, caplog):
    for _ in range(25):
        offline_gateway._handle("fuzz/d9/raw/acc", b"{bad", time.monotonic())
    lines = [r for r in caplog.records if "malformed_json" in r.getMessage()]
    assert len(lines) <= 10
    assert offline_gateway.counters["refused_malformed_json"] >= 25
