"""Random rigid rotations of feature windows while training (TensorFlow).

A phone sits a little differently on every user: its axes are rotated against the body's.
Rotating a window's 3-axis signals by one random rotation (the same for every sensor: the
phone is a rigid body) shows the model orientations its training users did not. The FFT is
linear per axis, so rotating the signal is rotating each frequency bin's (x, y, z)
coefficients: the rotation is applied to the features directly, padded (all-zero)
intervals stay zero, and nothing is stored.

Feature layout (deepsense.data.features): per interval, per sensor, per bin, (x re, x im,
y re, y im, z re, z im), i.e. (T, n_sensors * n_points * 3 * 2) -> (T, S, P, 3, 2).
"""

from __future__ import annotations

import math

import tensorflow as tf

from deepsense.data.features import FeatureConfig


def random_rotations(n: tf.Tensor, max_degrees: float) -> tf.Tensor:
    """(n, 3, 3) rotation matrices: a uniform random axis, an angle uniform in [0, max_degrees].

    Rodrigues: R = I + sin(a) K + (1 - cos(a)) K^2, K the cross-product matrix of the axis.
    """
    axis = tf.math.l2_normalize(tf.random.normal([n, 3]), axis=-1)
    angle = tf.random.uniform([n, 1, 1], 0.0, max_degrees * math.pi / 180.0)
    x, y, z = axis[:, 0], axis[:, 1], axis[:, 2]
    zero = tf.zeros_like(x)
    k = tf.reshape(tf.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1), [n, 3, 3])
    return tf.eye(3, batch_shape=[n]) + tf.sin(angle) * k + (1.0 - tf.cos(angle)) * (k @ k)


def rotate_windows(x: tf.Tensor, rotations: tf.Tensor, features: FeatureConfig) -> tf.Tensor:
    """Rotate every sensor of each window of `x` (B, T, F) by that window's (B, 3, 3) matrix."""
    shape = tf.shape(x)
    parts = tf.reshape(x, [shape[0], shape[1], len(features.sensors), features.n_points, 3, 2])
    turned = tf.einsum("bij,btspjc->btspic", rotations, parts)
    return tf.reshape(turned, shape)


def rotation_augmenter(features: FeatureConfig, max_degrees: float):
    """A tf.data map function (x, y) -> (rotated x, y) for batches of windows.

    Raises:
        ValueError: sensors that are not 3-axis (a rotation needs x, y, z).
    """
    if features.n_axes != 3:
        raise ValueError("train.rotate_degrees needs 3-axis sensors. Received: "
                         f"features.n_axes={features.n_axes}; set train.rotate_degrees=0")

    def augment(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        return rotate_windows(x, random_rotations(tf.shape(x)[0], max_degrees), features), y

    return augment
