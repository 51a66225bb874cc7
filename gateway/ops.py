"""The DeepSense op set in NumPy: what an exported bundle runs on a device without TensorFlow.

Shapes: n windows, T intervals, P positions, S sensors, C channels, u GRU units. Every op
matches its Keras counterpart in float32 (the parity tests hold them to 1e-4).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def interval_mask(x: np.ndarray) -> np.ndarray:
    """(n, T, F) -> (n, T) bool: an interval is valid when any feature is non-zero."""
    return np.any(x != 0.0, axis=-1)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def conv_positions(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                   stride: int) -> np.ndarray:
    """'valid' convolution along positions, per interval (Keras Conv2D with a (1, k) kernel).

    Args:
        x: (n, T, P, C_in). kernel: (k, C_in, C_out). bias: (C_out,). stride: step in P.

    Returns:
        (n, T, P_out, C_out), P_out = (P - k) // stride + 1.
    """
    k, c_in, c_out = kernel.shape
    patches = sliding_window_view(x, k, axis=2)[:, :, ::stride]  # (n, T, P_out, C_in, k)
    n, t, p = patches.shape[:3]
    flat = patches.transpose(0, 1, 2, 4, 3).reshape(n * t * p, k * c_in)
    return (flat @ kernel.reshape(k * c_in, c_out) + bias).reshape(n, t, p, c_out)


def conv_sensor_positions(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' convolution over (sensor, position), per interval (Keras Conv3D, (1, kh, kw)).

    Args:
        x: (n, T, S, P, C_in). kernel: (kh, kw, C_in, C_out). bias: (C_out,).

    Returns:
        (n, T, S, P, C_out). Padding as TensorFlow's 'SAME': (k - 1) // 2 before, rest after.
    """
    kh, kw, c_in, c_out = kernel.shape
    pad = [(0, 0), (0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)]
    patches = sliding_window_view(np.pad(x, pad), (kh, kw), axis=(2, 3))  # (n,T,S,P,C,kh,kw)
    n, t, s, p = patches.shape[:4]
    flat = patches.transpose(0, 1, 2, 3, 5, 6, 4).reshape(n * t * s * p, kh * kw * c_in)
    return (flat @ kernel.reshape(kh * kw * c_in, c_out) + bias).reshape(n, t, s, p, c_out)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # no overflow for large |x|


def gru(x: np.ndarray, mask: np.ndarray, kernel: np.ndarray, recurrent_kernel: np.ndarray,
        bias: np.ndarray) -> np.ndarray:
    """Keras GRU (reset_after=True, gates z, r, h), returning every step's state.

    Args:
        x: (n, T, F_in). mask: (n, T) bool; a masked step keeps the previous state.
        kernel: (F_in, 3u). recurrent_kernel: (u, 3u). bias: (2, 3u), input and recurrent.

    Returns:
        (n, T, u) states (masked steps repeat the last valid state; the masked mean
        ignores them).
    """
    n, steps, _ = x.shape
    u = recurrent_kernel.shape[0]
    inputs = x @ kernel + bias[0]  # (n, T, 3u), all steps at once
    h = np.zeros((n, u), dtype=x.dtype)
    states = np.empty((n, steps, u), dtype=x.dtype)
    for t in range(steps):
        recurrent = h @ recurrent_kernel + bias[1]
        z = sigmoid(inputs[:, t, :u] + recurrent[:, :u])
        r = sigmoid(inputs[:, t, u:2 * u] + recurrent[:, u:2 * u])
        candidate = np.tanh(inputs[:, t, 2 * u:] + r * recurrent[:, 2 * u:])
        new = z * h + (1.0 - z) * candidate
        h = np.where(mask[:, t, None], new, h)
        states[:, t] = h
    return states


def masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(n, T, u), (n, T) -> (n, u) mean over valid steps; zeros for a window with none."""
    weights = mask[..., None].astype(x.dtype)
    return (x * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1.0)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def gaussian(raw: np.ndarray, min_variance: float, max_variance: float) -> np.ndarray:
    """(n, 2k) [mean, raw] -> [mean, min + clip(softplus(raw), 0, max - min)]."""
    k = raw.shape[-1] // 2
    variance = min_variance + np.clip(np.logaddexp(0.0, raw[:, k:]), 0.0,
                                      max_variance - min_variance)
    return np.concatenate([raw[:, :k], variance.astype(raw.dtype)], axis=-1)
