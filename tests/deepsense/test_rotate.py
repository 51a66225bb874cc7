import numpy as np
import pytest
import tensorflow as tf

from deepsense.data.features import FeatureConfig, windows_features
from deepsense.data.recording import SensorStream
from deepsense.rotate import (gravity_axes, random_rotations, rotate_windows, rotation_augmenter,
                             rotations_about)

FEATURES = FeatureConfig(interval_s=0.25, n_intervals=4, n_points=10, min_valid_intervals=2)


def _streams(rng: np.random.Generator) -> dict[str, SensorStream]:
    t = np.sort(rng.uniform(0.0, 1.0, 90))
    return {"acc": SensorStream(t, rng.normal(size=(90, 3)) + [0.0, 0.0, 9.8]),
            "gyro": SensorStream(t, rng.normal(size=(90, 3)))}


def test_rotating_the_features_is_rotating_the_signals():
    rng = np.random.default_rng(0)
    streams = _streams(rng)
    rotation = random_rotations(1, 40.0).numpy()[0].astype(np.float64)
    turned = {name: SensorStream(s.t_s, s.values @ rotation.T) for name, s in streams.items()}
    x, _ = windows_features(streams, np.array([0.0]), FEATURES)
    expected, _ = windows_features(turned, np.array([0.0]), FEATURES)
    got = rotate_windows(tf.constant(x), tf.constant(rotation[None], tf.float32), FEATURES)
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-4)


def test_random_rotations_are_proper_and_within_the_angle():
    r = random_rotations(500, 20.0).numpy()
    np.testing.assert_allclose(r @ np.transpose(r, (0, 2, 1)), np.broadcast_to(np.eye(3), r.shape),
                               atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)
    angles = np.degrees(np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() <= 20.0 + 1e-3 and angles.mean() > 5.0


def test_augmenter_keeps_padded_intervals_and_labels():
    x = np.random.default_rng(1).normal(size=(8, 4, FEATURES.n_features)).astype(np.float32)
    x[:, 0] = 0.0  # a padded interval
    y = np.arange(8)
    rx, ry = rotation_augmenter(FEATURES, 30.0)(tf.constant(x), tf.constant(y))
    assert np.all(rx.numpy()[:, 0] == 0.0)
    np.testing.assert_array_equal(ry.numpy(), y)
    assert not np.allclose(rx.numpy()[:, 1:], x[:, 1:])


def test_turns_about_an_axis_keep_it_and_stay_within_the_angle():
    axes = tf.math.l2_normalize(tf.random.normal([500, 3], seed=2), axis=-1)
    r = rotations_about(axes, 90.0).numpy()
    np.testing.assert_allclose(np.einsum("nij,nj->ni", r, axes.numpy()), axes.numpy(), atol=1e-5)
    np.testing.assert_allclose(np.linalg.det(r), 1.0, atol=1e-5)
    angles = np.degrees(np.arccos(np.clip((np.trace(r, axis1=1, axis2=2) - 1) / 2, -1, 1)))
    assert angles.max() <= 90.0 + 1e-3 and angles.mean() > 30.0


def test_yaw_turns_a_window_about_its_gravity_and_keeps_its_tilt():
    rng = np.random.default_rng(3)
    x = np.concatenate([windows_features(_streams(rng), np.array([0.0]), FEATURES)[0]
                        for _ in range(16)]).astype(np.float32)
    turned, _ = rotation_augmenter(FEATURES, 0.0, yaw_degrees=90.0)(tf.constant(x), tf.zeros(16))
    before, after = gravity_axes(tf.constant(x), FEATURES), gravity_axes(turned, FEATURES)
    np.testing.assert_allclose(after.numpy(), before.numpy(), atol=1e-5)   # tilt kept
    assert not np.allclose(turned.numpy(), x, atol=1e-3)                    # but turned
    np.testing.assert_allclose(np.linalg.norm(turned.numpy()), np.linalg.norm(x), rtol=1e-5)


def test_yaw_needs_an_accelerometer():
    features = FeatureConfig(sensors=("gyro", "mag"), n_intervals=4, min_valid_intervals=2)
    with pytest.raises(ValueError, match="yaw_degrees needs an 'acc' sensor"):
        rotation_augmenter(features, 20.0, yaw_degrees=90.0)
