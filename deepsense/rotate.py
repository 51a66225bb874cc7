"""Random rigid rotations of feature windows while training (TensorFlow).

A phone sits a little differently on every user: its axes are rotated against the body's.
Rotating a window's 3-axis signals by one random rotation (the same for every sensor: the
phone is a rigid body) shows the model orientations its training users did not. The FFT is
linear per axis, so rotating the signal is rotating each frequency bin's (x, y, z)
coefficients: the rotation is applied to the features directly, padded (all-zero)
intervals stay zero, and nothing is stored.

Two kinds, composed: first a turn about the window's own gravity direction (its mean
acceleration), which shows the phone at every heading around the body (another place on
the belt, another pocket) and leaves the angles between its axes and gravity, the cue that
tells sitting from standing, unchanged; then a small tilt about a random axis.

Feature layout (deepsense.data.features): per interval, per sensor, per bin, (x re, x im,
y re, y im, z re, z im), i.e. (T, n_sensors * n_points * 3 * 2) -> (T, S, P, 3, 2).
"""

from __future__ import annotations

import math

import tensorflow as tf

from deepsense.data.features import FeatureConfig


def random_rotations(n: tf.Tensor, max_degrees: float) -> tf.Tensor:
    """(n, 3, 3) rotation matrices: a uniform random axis, an angle uniform in [0, max_degrees]."""
    axes = tf.math.l2_normalize(tf.random.normal([n, 3]), axis=-1)
    return _rodrigues(axes, tf.random.uniform([n, 1, 1], 0.0, max_degrees * math.pi / 180.0))


def rotations_about(axes: tf.Tensor, max_degrees: float) -> tf.Tensor:
    """(n, 3, 3) rotations about the (n, 3) unit `axes` by angles uniform in
    [-max_degrees, max_degrees]; a zero axis gives the identity."""
    limit = max_degrees * math.pi / 180.0
    angle = tf.random.uniform([tf.shape(axes)[0], 1, 1], -limit, limit)
    return _rodrigues(axes, angle)


def _rodrigues(axes: tf.Tensor, angle: tf.Tensor) -> tf.Tensor:
    """(n, 3, 3) rotations by `angle` (n, 1, 1) radians about unit `axes` (n, 3):
    R = I + sin(a) K + (1 - cos(a)) K^2, K the cross-product matrix of the axis."""
    x, y, z = axes[:, 0], axes[:, 1], axes[:, 2]
    zero = tf.zeros_like(x)
    k = tf.reshape(tf.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1), [-1, 3, 3])
    return tf.eye(3, batch_shape=[tf.shape(axes)[0]]) + tf.sin(angle) * k + (
        1.0 - tf.cos(angle)) * (k @ k)


def gravity_axes(x: tf.Tensor, features: FeatureConfig, sensor: str = "acc") -> tf.Tensor:
    """(B, 3) unit vectors along each window's mean acceleration: the sum over intervals of
    the `sensor`'s 0 Hz bin (real parts) of windows `x` (B, T, F)."""
    parts = _per_axis(x, features)
    dc = tf.reduce_sum(parts[:, :, features.sensors.index(sensor), 0, :, 0], axis=1)
    return tf.math.l2_normalize(dc, axis=-1)


def rotate_windows(x: tf.Tensor, rotations: tf.Tensor, features: FeatureConfig) -> tf.Tensor:
    """Rotate every sensor of each window of `x` (B, T, F) by that window's (B, 3, 3) matrix."""
    turned = tf.einsum("bij,btspjc->btspic", rotations, _per_axis(x, features))
    return tf.reshape(turned, tf.shape(x))


def _per_axis(x: tf.Tensor, features: FeatureConfig) -> tf.Tensor:
    """Windows (B, T, F) as (B, T, sensors, bins, 3 axes, re/im)."""
    shape = tf.shape(x)
    return tf.reshape(x, [shape[0], shape[1], len(features.sensors), features.n_points, 3, 2])


def rotation_augmenter(features: FeatureConfig, max_degrees: float, yaw_degrees: float = 0.0):
    """A tf.data map function (x, y) -> (rotated x, y) for batches of windows: a turn of up
    to `yaw_degrees` about each window's gravity direction, then a tilt of up to
    `max_degrees` about a random axis.

    Raises:
        ValueError: sensors that are not 3-axis (a rotation needs x, y, z), or a yaw without
            an "acc" sensor to find gravity in.
    """
    if features.n_axes != 3:
        raise ValueError("train.rotate_degrees needs 3-axis sensors. Received: "
                         f"features.n_axes={features.n_axes}; set train.rotate_degrees=0")
    if yaw_degrees and "acc" not in features.sensors:
        raise ValueError("train.yaw_degrees needs an 'acc' sensor to find gravity in. "
                         f"Received: sensors={list(features.sensors)}; set train.yaw_degrees=0")

    def augment(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        rotations = random_rotations(tf.shape(x)[0], max_degrees)
        if yaw_degrees:
            rotations = rotations @ rotations_about(gravity_axes(x, features), yaw_degrees)
        return rotate_windows(x, rotations, features), y

    return augment
