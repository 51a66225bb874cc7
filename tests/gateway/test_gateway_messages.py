"""Payloads: every malformed message is a PayloadError with a reason, never a crash; what the
gateway publishes (predictions, status) carries the window and the model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.messages import PayloadError, encode_samples, parse_samples, window_id
from gateway.topics import Topics, check_id


def test_parse_one_sample_and_a_batch():
    t, v = parse_samples(b'{"t_s": 1.5, "x": 1, "y": 2.5, "z": -3}')
    assert t.tolist() == [1.5] and v.tolist() == [[1.0, 2.5, -3.0]]
    t, v = parse_samples(b'{"schema": 1, "samples": [[1.0, 1, 2, 3], [1.01, 4, 5, 6]]}')
    assert t.tolist() == [1.0, 1.01] and v.shape == (2, 3)


def test_encode_samples_round_trips_exactly(rng):
    t = 1424696633.908 + np.cumsum(rng.uniform(0.001, 0.02, 50))
    v = rng.standard_normal((50, 3)) * 10
    t2, v2 = parse_samples(encode_samples(t, v))
    np.testing.assert_array_equal(t2, t)
    np.testing.assert_array_equal(v2, v)


@pytest.mark.parametrize("payload, reason", [
    (b"{not json", "malformed_json"),
    (b"\xff\xfe\x00", "malformed_json"),
    (b"[1, 2]", "bad_type"),
    (b'{"t_s": 1, "x": 1, "y": 2}', "missing_field"),
    (b'{"t_s": NaN, "x": 1, "y": 2, "z": 3}', "non_finite"),
    (b'{"t_s": 1, "x": Infinity, "y": 2, "z": 3}', "non_finite"),
    (b'{"t_s": 1, "x": 1e999, "y": 2, "z": 3}', "non_finite"),
    (b'{"t_s": 1, "x": true, "y": 2, "z": 3}', "bad_type"),
    (b'{"t_s": "1", "x": 1, "y": 2, "z": 3}', "bad_type"),
    (b'{"schema": 2, "t_s": 1, "x": 1, "y": 2, "z": 3}', "schema"),
    (b'{"samples": []}', "bad_type"),
    (b'{"samples": [[1, 2, 3]]}', "bad_type"),
    (b'{"samples": [[1, 2, 3, 4], [2, 3, 4, null]]}', "bad_type"),
    (b"[" * 100_000, "malformed_json"),
])
def test_parse_refuses_with_a_reason(payload, reason):
    with pytest.raises(PayloadError) as info:
        parse_samples(payload)
    assert info.value.reason == reason
    assert len(str(info.value)) <= 300


def test_parse_refuses_oversize_before_parsing():
    with pytest.raises(PayloadError, match="at most 100") as info:
        parse_samples(b" " * 101, max_bytes=100)
    assert info.value.reason == "oversize"
    rows = json.dumps({"samples": [[i, 0, 0, 0] for i in range(11)]}).encode()
    with pytest.raises(PayloadError, match="at most 10"):
        parse_samples(rows, max_samples=10)


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.sampled_from(["t_s", "x", "y", "z", "schema", "samples", "k"]),
                      children, max_size=6),
    max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.binary(max_size=200),
                 _json_values.map(lambda v: json.dumps(v).encode())))
def test_parse_fuzz_returns_finite_samples_or_refuses(payload):
    try:
        t, v = parse_samples(payload)
    except PayloadError as exc:
        assert exc.reason in {"malformed_json", "bad_type", "missing_field", "non_finite",
                              "schema", "oversize"}
        return
    assert t.dtype == np.float64 and v.shape == (t.size, 3) and t.size >= 1
    assert np.all(np.isfinite(t)) and np.all(np.isfinite(v))


@pytest.mark.parametrize("device", ["a/b", "+", "#", "", "$SYS", "gateway", "x" * 65, "d\x00",
                                    "dév", " d", "a b"])
def test_device_ids_that_would_inject_topic_levels_are_refused(device):
    with pytest.raises(ValueError, match="device id expected"):
        check_id(device)


def test_topics_layout_and_parse():
    topics = Topics("sense/v1", "gw1")
    assert topics.raw("d1", "acc") == "sense/v1/d1/raw/acc"
    assert topics.parse_raw("sense/v1/d1/raw/acc") == ("d1", "acc")
    assert topics.status == "sense/v1/gateway/gw1/status"
    with pytest.raises(ValueError, match="topic expected"):
        topics.parse_raw("sense/v1/d1/x/raw/acc")
    with pytest.raises(ValueError, match="topic prefix"):
        Topics("sense/+", "gw1")


def test_window_id_names_the_device_and_the_window_start():
    assert window_id("phone1", 12.3456) == "phone1@12.346"


def test_prediction_and_status_payloads_carry_the_window_and_the_model():
    from types import SimpleNamespace

    from gateway.messages import encode_prediction, encode_status
    from gateway.stream import Window

    model = SimpleNamespace(name="har", version="2", bundle_sha256="ab" * 32, task="activity")
    window = Window("phone1", 3, 10.0, 20.0, np.zeros((20, 120), np.float32),
                    np.array([True] * 15 + [False] * 5))
    p = json.loads(encode_prediction(window, np.array([0.25, 0.75]),
                                     {"label": "sit", "max_prob": 0.75}, model, "gw1", 1.23456))
    assert p == {"schema": 1, "device_id": "phone1", "window_id": "phone1@10.000",
                 "window_index": 3, "window_start_s": 10.0, "window_end_s": 20.0,
                 "valid_intervals": 15, "label": "sit", "max_prob": 0.75,
                 "outputs": [0.25, 0.75],
                 "model": {"name": "har", "version": "2", "sha256": "ab" * 32},
                 "gateway_id": "gw1", "latency_ms": 1.235}
    status = json.loads(encode_status("online", "gw1", model, devices=2, queue_depth=0,
                                      pending_predictions=1, predictions_dropped=0,
                                      counters={"messages": 5}, time_s=1.5))
    assert status["state"] == "online" and status["model"]["task"] == "activity"
    assert status["counters"] == {"messages": 5} and status["schema"] == 1


@pytest.mark.parametrize("payload", [
    b'{"t_s": 1.7e308, "x": 1, "y": 2, "z": 3}',
    b'{"samples": [[0, 1, 2, 3], [-1.7e308, 1, 2, 3]]}',
    b'{"t_s": 1.7e12, "x": 1, "y": 2, "z": 3}',                 # milliseconds, not seconds
    b'{"t_s": 1, "x": 1e38, "y": 2, "z": 3}',
    b'{"samples": [[0, 1, 2, 3], [1, 1, -1e38, 3]]}',
])
def test_parse_refuses_timestamps_and_values_out_of_range(payload):
    with pytest.raises(PayloadError, match="sample ") as info:
        parse_samples(payload)
    assert info.value.reason == "out_of_range"
