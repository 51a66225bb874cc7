"""Live windowing: a stream cut message by message equals `make_windows` over the file."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deepsense.data.csv_format import read_sensor_csv, write_sensor_csv
from deepsense.data.features import FeatureConfig, make_windows
from deepsense.data.synthetic import SyntheticSpec, make_recording
from gateway.messages import encode_samples, parse_samples
from gateway.stream import DeviceStream


def _messages(recording, rng, max_batch: int = 40):
    """The recording as wire messages: random batch sizes, sensors interleaved in time."""
    chunks = []
    for sensor, stream in recording.streams.items():
        i = 0
        while i < len(stream):
            n = int(rng.integers(1, max_batch))
            t, v = stream.t_s[i:i + n], stream.values[i:i + n]
            chunks.append((float(t[-1]), sensor, encode_samples(t, v)))
            i += n
    chunks.sort(key=lambda c: c[0])
    return [(sensor, payload) for _, sensor, payload in chunks]


@pytest.mark.parametrize("stride_s", [None, 1.25])
def test_stream_live_equals_file(tmp_path, rng, stride_s):
    spec = SyntheticSpec(n_users=1, devices=("s3_1",), seconds_per_activity=24.0, n_gaps=2,
                         max_gap_s=2.0, seed=3)
    recording = make_recording(spec, "a", "s3_1", "walk")
    path = write_sensor_csv([recording], tmp_path / "rec.csv")
    (recording,), _ = read_sensor_csv(path)
    config = FeatureConfig(stride_s=stride_s)
    offline = make_windows(recording, config)

    stream = DeviceStream("s3_1", config)
    live = []
    for sensor, payload in _messages(recording, rng):
        t, v = parse_samples(payload)
        accepted = stream.add(sensor, t, v)
        assert accepted.n_kept == t.size and not accepted.refused
        live += stream.ready_windows()
    live += stream.ready_windows(flush=True)

    assert len(offline.x) > 3
    assert [w.start_s for w in live] == offline.start_s.tolist()
    np.testing.assert_array_equal(np.stack([w.x for w in live]), offline.x)
    np.testing.assert_array_equal(np.stack([w.mask for w in live]), offline.mask)
    assert stream.n_buffered < 2 * 200 * config.window_s  # trimmed as windows are cut


def test_stream_refuses_duplicates_out_of_order_late_and_jumps():
    config = FeatureConfig(n_intervals=4, min_valid_intervals=1)   # 1 s windows
    stream = DeviceStream("d1", config, max_jump_s=10.0)
    t = np.arange(250) / 100
    v = np.zeros((t.size, 3))
    assert stream.add("acc", t, v).n_kept == t.size
    assert stream.add("gyro", t, v).n_kept == t.size
    assert [w.index for w in stream.ready_windows()] == [0, 1]
    result = stream.add("acc", np.array([2.49, 2.48, 2.5, 2.5, 2.6]), np.zeros((5, 3)))
    assert result.n_kept == 2
    assert result.refused == {"duplicate_timestamp": 2, "out_of_order": 1}
    assert stream.add("gyro", np.array([0.5]), np.zeros((1, 3))).refused == {"out_of_order": 1}
    assert stream.add("acc", np.array([100.0]), np.zeros((1, 3))).refused == {"time_jump": 1}


def test_stream_late_sensor_is_cut_out_after_max_lag():
    config = FeatureConfig(n_intervals=4, min_valid_intervals=1)   # 1 s windows
    stream = DeviceStream("d1", config, max_lag_s=1.0)
    stream.add("gyro", np.array([0.0, 0.05]), np.zeros((2, 3)))
    t = np.arange(350) / 100
    stream.add("acc", t, np.zeros((t.size, 3)))
    windows = stream.ready_windows()
    assert [w.index for w in windows] == [0]            # windows 1..2 have no gyro: dropped
    assert stream.next_start_s == pytest.approx(2.0)
    assert stream.add("gyro", np.array([1.0, 2.5]), np.zeros((2, 3))).refused == {"late": 1}


def test_stream_long_gap_costs_no_empty_windows():
    config = FeatureConfig(n_intervals=4, min_valid_intervals=1)
    stream = DeviceStream("d1", config, max_jump_s=1e9)
    for start in (0.0, 1e7):
        t = start + np.arange(150) / 100
        stream.add("acc", t, np.zeros((t.size, 3)))
        stream.add("gyro", t, np.zeros((t.size, 3)))
    windows = stream.ready_windows(flush=True)
    assert [w.start_s for w in windows] == [0.0, 1.0, 1e7]
    assert windows[2].index == 10_000_000


_times = st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=1, max_size=30)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["acc", "gyro"]), _times), max_size=12))
def test_stream_fuzz_any_timestamps_never_break_it(messages):
    config = FeatureConfig(n_intervals=4, min_valid_intervals=1)
    stream = DeviceStream("d1", config, max_jump_s=50.0)
    cut = []
    for sensor, times in messages:
        t = np.array(times)
        result = stream.add(sensor, t, np.ones((t.size, 3)))
        assert result.n_kept + sum(result.refused.values()) == t.size
        cut += stream.ready_windows()
    cut += stream.ready_windows(flush=True)
    indices = [w.index for w in cut]
    assert indices == sorted(set(indices))
    assert all(np.all(np.isfinite(w.x)) and w.x.shape == (4, 120) for w in cut)


def _ones(t: np.ndarray) -> np.ndarray:
    return np.ones((t.size, 3))


def test_stream_sensors_on_far_apart_clocks_are_refused_as_time_jump():
    # Review finding: acc at 1.7e308 and gyro at -1.7e308 overflowed the window count.
    config = FeatureConfig(n_intervals=4, min_valid_intervals=1)
    stream = DeviceStream("d1", config, max_jump_s=10.0)
    assert stream.add("acc", np.array([1e9]), _ones(np.zeros(1))).n_kept == 1
    assert stream.add("gyro", np.array([-1e9]), _ones(np.zeros(1))).refused == {"time_jump": 1}
    assert stream.origin_s is None
    assert stream.ready_windows(flush=True) == []


def test_stream_time_jump_checks_every_sample_of_a_batch():
    # Review finding: only a batch's first sample was checked.
    config = FeatureConfig(n_intervals=4, min_valid_intervals=1)
    stream = DeviceStream("d1", config, max_jump_s=10.0)
    t = np.arange(100) / 100
    stream.add("acc", t, _ones(t))
    stream.add("gyro", t, _ones(t))
    batch = np.concatenate([[1.0, 1.01], 1e6 + np.arange(5) / 100])
    result = stream.add("acc", batch, _ones(batch))
    assert result.n_kept == 2 and result.refused == {"time_jump": 5}
    first = DeviceStream("d2", config, max_jump_s=10.0)
    assert first.add("acc", np.array([0.0, 1e6]), _ones(np.zeros(2))).refused == {"time_jump": 1}


def test_stream_first_sample_at_zero_then_real_clock_restarts_the_stream():
    # Review finding: a first sample at t=0 made every later sample a time_jump.
    config = FeatureConfig(n_intervals=4, min_valid_intervals=1)          # 1 s windows
    stream = DeviceStream("d1", config, max_jump_s=10.0)
    stream.add("acc", np.array([0.0]), _ones(np.zeros(1)))
    resets, refused = 0, 0
    for start in 1.7e9 + np.arange(0, 5, 0.5):
        t = start + np.arange(50) / 100
        for sensor in ("acc", "gyro"):
            result = stream.add(sensor, t, _ones(t))
            resets += result.clock_reset
            refused += sum(result.refused.values())
    windows = stream.ready_windows(flush=True)
    assert resets == 1
    assert refused <= 2 * 100 + 50               # at most one window of each sensor refused
    assert len(windows) >= 3
    assert all(w.start_s >= 1.7e9 for w in windows)


def test_stream_missing_sensor_bounds_the_buffer():
    # Review finding: a gyro that never reports grew the buffer without bound.
    config = FeatureConfig(n_intervals=4, min_valid_intervals=1)          # 1 s windows
    stream = DeviceStream("d1", config, max_lag_s=1.0)
    dropped = 0
    for start in range(60):
        t = start + np.arange(100) / 100
        result = stream.add("acc", t, _ones(t))
        assert result.n_kept == 100
        dropped += result.dropped["sensor_missing"]
    assert stream.n_buffered <= 2 * 100 + 100                 # max_lag + window (+1 message)
    assert dropped == 6000 - stream.n_buffered
    assert stream.missing_sensors == ["gyro"]


def test_stream_bounds_the_buffer_in_samples():
    config = FeatureConfig(n_intervals=4, min_valid_intervals=1)
    stream = DeviceStream("d1", config, max_buffered=500)
    t = np.arange(2000) * 1e-4                                # 10 kHz: 0.2 s
    result = stream.add("acc", t, _ones(t))
    assert result.dropped == {"buffer_full": 1500}
    assert stream.n_buffered == 500
