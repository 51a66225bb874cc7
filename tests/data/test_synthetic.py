"""Tests for deepsense.data.synthetic: determinism, clocks, physics, and learnability."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from deepsense.data.features import FeatureConfig, WindowSet, make_windows
from deepsense.data.synthetic import (ACTIVITIES, DEVICE_MODELS, SyntheticSpec, make_recording,
                                      make_recordings)

TINY = SyntheticSpec(n_users=2, devices=("nexus4_1", "gear_1"), activities=("sit", "walk"),
                     seconds_per_activity=12.0, n_gaps=1, max_gap_s=1.0, seed=3)


def _arrays(recordings):
    return [a for r in recordings for s in r.streams.values() for a in (s.t_s, s.values)]


def test_make_recordings_same_seed_is_bit_identical():
    first, second = make_recordings(TINY), make_recordings(TINY)
    assert [(r.user, r.device, r.label, r.target) for r in first] == \
        [(r.user, r.device, r.label, r.target) for r in second]
    assert all(np.array_equal(a, b) for a, b in zip(_arrays(first), _arrays(second)))


def test_make_recordings_other_seed_differs():
    other = make_recordings(replace(TINY, seed=4))
    assert not any(np.array_equal(a[:100], b[:100])
                   for a, b in zip(_arrays(make_recordings(TINY)), _arrays(other)))


def test_make_recording_independent_of_other_users_devices_activities():
    alone = SyntheticSpec(n_users=1, devices=("gear_1",), activities=("walk",),
                          seconds_per_activity=12.0, n_gaps=1, max_gap_s=1.0, seed=3)
    crowd = SyntheticSpec(n_users=3, devices=("s3mini_2", "gear_1"),
                          activities=("bike", "walk", "sit"), seconds_per_activity=12.0,
                          n_gaps=1, max_gap_s=1.0, seed=3)
    a = make_recordings(alone)[0]
    b = next(r for r in make_recordings(crowd)
             if (r.user, r.device, r.label) == ("a", "gear_1", "walk"))
    assert a.target == b.target
    assert all(np.array_equal(x, y) for x, y in zip(_arrays([a]), _arrays([b])))


def test_make_recordings_one_per_user_device_activity():
    recordings = make_recordings(TINY)
    keys = [(r.user, r.device, r.label) for r in recordings]
    assert keys == [(u, d, a) for u in ("a", "b") for d in TINY.devices for a in TINY.activities]
    assert all(r.source == "synthetic" and r.split is None for r in recordings)


@pytest.mark.parametrize("model", sorted(DEVICE_MODELS))
def test_make_recording_clocks_are_irregular_within_hhar_rates(model):
    recording = make_recording(TINY, "a", f"{model}_1", "walk")
    acc, gyro = recording.streams["acc"], recording.streams["gyro"]
    for sensor, stream in recording.streams.items():
        steps_s = np.diff(stream.t_s)
        assert np.all(steps_s > 0)
        assert stream.values.shape == (len(stream), 3)
        assert 45.0 <= 1.0 / np.median(steps_s) <= 210.0
        assert np.std(steps_s) / np.mean(steps_s) > 0.03          # jittered, not regular
        nominal_hz = getattr(DEVICE_MODELS[model], f"{sensor}_rate_hz")
        # Drops and the gap lower the count a little; the span stays the recording's length.
        assert 0.85 < len(stream) / (nominal_hz * TINY.seconds_per_activity) < 1.01
    assert not np.isin(gyro.t_s, acc.t_s).any()                   # separate clocks
    assert abs(acc.t_s[0] - gyro.t_s[0]) < 0.05


def test_make_recordings_gravity_magnitude_in_static_postures():
    spec = SyntheticSpec(n_users=3, devices=("s3_1", "lgwatch_1"), activities=("sit", "stand"),
                         seconds_per_activity=8.0, seed=1)
    for recording in make_recordings(spec):
        acc = recording.streams["acc"].values
        assert abs(np.linalg.norm(acc, axis=1).mean() - 9.81) < 0.3
        assert np.abs(recording.streams["gyro"].values).mean() < 0.1    # rad/s: nearly still
        assert recording.target == 0.0


def test_make_recordings_speed_target_and_dependence():
    spec = SyntheticSpec(n_users=30, devices=("s3mini_1",),
                         activities=("walk", "stairsup", "stairsdown", "bike"),
                         seconds_per_activity=10.0, n_gaps=0, seed=0)
    recordings = make_recordings(spec)
    speed = {a: np.array([r.target for r in recordings if r.label == a])
             for a in spec.activities}
    assert 0.9 < speed["walk"].min() and speed["walk"].max() < 1.8
    assert speed["stairsup"].max() < speed["walk"].min()
    assert speed["stairsdown"].max() < speed["walk"].max()
    assert speed["bike"].min() > speed["walk"].max()
    walks = [r for r in recordings if r.label == "walk"]
    impact = [np.linalg.norm(r.streams["acc"].values, axis=1).std() for r in walks]
    assert np.corrcoef(speed["walk"], impact)[0, 1] > 0.5       # faster walking, harder steps


def test_make_recordings_every_recording_gives_windows_some_masked():
    config = FeatureConfig()
    window_sets = [make_windows(r, config) for r in make_recordings(TINY)]
    assert all(len(w.x) >= 1 and w.x.shape[1:] == (20, 120) for w in window_sets)
    assert all(np.isfinite(w.x).all() for w in window_sets)
    assert not all(w.mask.all() for w in window_sets)             # the gaps are masked


def test_synthetic_spec_rejects_bad_arguments():
    with pytest.raises(ValueError, match="device"):
        SyntheticSpec(devices=("iphone_1",))
    with pytest.raises(ValueError, match="activities"):
        SyntheticSpec(activities=("swim",))
    with pytest.raises(ValueError, match="n_users"):
        SyntheticSpec(n_users=0)
    with pytest.raises(ValueError, match="max_gap_s"):
        SyntheticSpec(seconds_per_activity=4.0, n_gaps=2, max_gap_s=1.5)
    assert SyntheticSpec(n_users=28).users[-3:] == ("z", "aa", "ab")


# --- learnability: simple NumPy classifiers on window spectra must beat chance by far -----

def _window_features(windows: WindowSet, per_axis: bool) -> np.ndarray:
    """(n, n_features) summaries of each window's valid intervals.

    Per sensor: log mean |FFT| per bin (0-5) and axis (per_axis) or its norm over the axes
    (orientation-free); log std over intervals of that norm (how the motion changes within a
    window); the mean value per axis, signed (per_axis) or absolute.
    """
    n, n_intervals, _ = windows.x.shape
    pairs = windows.x.reshape(n, n_intervals, 2, 10, 3, 2).astype(np.float64)[:, :, :, :6]
    magnitude = np.hypot(pairs[..., 0], pairs[..., 1])           # (n, T, sensor, bin, axis)
    weight = windows.mask / windows.mask.sum(axis=1, keepdims=True)
    average = lambda a: np.einsum("nt,nt...->n...", weight, a)
    norm = np.linalg.norm(magnitude, axis=-1)                    # (n, T, sensor, bin)
    spread = np.sqrt(average((norm - average(norm)[:, None]) ** 2))
    mean_value = average(pairs[:, :, :, 0, :, 0]) / 10           # (n, sensor, axis)
    parts = [np.log1p(average(magnitude if per_axis else norm)), np.log1p(spread),
             mean_value if per_axis else np.abs(mean_value)]
    return np.concatenate([p.reshape(n, -1) for p in parts], axis=1)


def _softmax_regression_accuracy(x_train, y_train, x_test, y_test, n_classes: int) -> float:
    """Multinomial logistic regression (full-batch gradient descent, L2) test accuracy."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0) + 1e-6
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    weights, bias = np.zeros((x_train.shape[1], n_classes)), np.zeros(n_classes)
    targets = np.eye(n_classes)[y_train]
    for _ in range(500):
        logits = x_train @ weights + bias
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        grad = (probs - targets) / len(x_train)
        weights -= 0.5 * (x_train.T @ grad + 1e-3 * weights)
        bias -= 0.5 * grad.sum(axis=0)
    return float(np.mean(np.argmax(x_test @ weights + bias, axis=1) == y_test))


@pytest.fixture(scope="module")
def hhar_like():
    """Windows of 9 users x 2 devices x 6 activities x 30 s, with labels and time position."""
    spec = SyntheticSpec(n_users=9, devices=("s3mini_1", "gear_1"), seconds_per_activity=30.0,
                         seed=0)
    rows = {}
    for recording in make_recordings(spec):
        windows = make_windows(recording, FeatureConfig())
        n = len(windows.x)
        rows.setdefault(recording.device, []).append((
            windows, np.full(n, ACTIVITIES.index(recording.label)),
            np.full(n, spec.users.index(recording.user)), (np.arange(n) + 0.5) / n))
    return rows


def test_synthetic_activity_learnable_on_unseen_users(hhar_like):
    for device, rows in hhar_like.items():
        x = np.concatenate([_window_features(w, per_axis=False) for w, _, _, _ in rows])
        activity, user = (np.concatenate([r[i] for r in rows]) for i in (1, 2))
        train = user < 6                                         # users a-f; test on g-i
        accuracy = _softmax_regression_accuracy(x[train], activity[train], x[~train],
                                                activity[~train], len(ACTIVITIES))
        assert accuracy >= 0.75, (device, accuracy)              # chance: 1/6


def test_synthetic_user_learnable_on_later_data(hhar_like):
    for device, rows in hhar_like.items():
        x = np.concatenate([_window_features(w, per_axis=True) for w, _, _, _ in rows])
        user, position = (np.concatenate([r[i] for r in rows]) for i in (2, 3))
        train = position < 0.7                                   # first 70% of each recording
        accuracy = _softmax_regression_accuracy(x[train], user[train], x[~train],
                                                user[~train], 9)
        assert accuracy >= 0.85, (device, accuracy)              # chance: 1/9
