import numpy as np
import tensorflow as tf

from deepsense.data.features import FeatureConfig, windows_features
from deepsense.data.recording import SensorStream
from deepsense.rotate import random_rotations, rotate_windows, rotation_augmenter

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
