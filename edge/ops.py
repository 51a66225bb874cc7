"""The DeepSense op set in NumPy: what an exported bundle runs on a device without TensorFlow.

Shapes: n windows, T intervals, P positions, S sensors, C channels, u GRU units. Every op
matches its Keras counterpart in float32 (the parity tests hold them to 1e-4).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def interval_mask(x: np.ndarray) -> np.ndarray:
    """(n, T, F) -> (n, T) bool: an interval is valid when any feature is non-zero."""
    return np.any(x != 0.0, axis=-1)


def relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


@lru_cache(maxsize=64)
def _position_windows(n_positions: int, k: int, stride: int) -> np.ndarray:
    """(P_out, k) indices of the positions each output position reads."""
    n_out = (n_positions - k) // stride + 1
    return np.arange(n_out)[:, None] * stride + np.arange(k)


def conv_positions(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray,
                   stride: int) -> np.ndarray:
    """'valid' convolution along positions, per interval (Keras Conv2D with a (1, k) kernel).

    Args:
        x: (n, T, P, C_in). kernel: (k, C_in, C_out). bias: (C_out,). stride: step in P.

    Returns:
        (n, T, P_out, C_out), P_out = (P - k) // stride + 1.
    """
    k, c_in, c_out = kernel.shape
    n, t, p, _ = x.shape
    patches = x[:, :, _position_windows(p, k, stride)]  # (n, T, P_out, k, C_in): one gather
    p_out = patches.shape[2]
    return (patches.reshape(n * t * p_out, k * c_in) @ kernel.reshape(k * c_in, c_out)
            + bias).reshape(n, t, p_out, c_out)


@lru_cache(maxsize=64)
def _grid_windows(n_sensors: int, n_positions: int, kh: int, kw: int
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Indices (S, P, kh, kw) into the padded (sensor, position) grid, 'same' convolution."""
    rows = np.arange(n_sensors)[:, None, None, None] + np.arange(kh)[None, None, :, None]
    cols = np.arange(n_positions)[None, :, None, None] + np.arange(kw)[None, None, None, :]
    return np.broadcast_arrays(rows, cols)


def conv_sensor_positions(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """'same' convolution over (sensor, position), per interval (Keras Conv3D, (1, kh, kw)).

    Args:
        x: (n, T, S, P, C_in). kernel: (kh, kw, C_in, C_out). bias: (C_out,).

    Returns:
        (n, T, S, P, C_out). Padding as TensorFlow's 'SAME': (k - 1) // 2 before, rest after.
    """
    kh, kw, c_in, c_out = kernel.shape
    n, t, s, p, _ = x.shape
    pad = [(0, 0), (0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)]
    rows, cols = _grid_windows(s, p, kh, kw)
    patches = np.pad(x, pad)[:, :, rows, cols]  # (n, T, S, P, kh, kw, C_in): one gather
    return (patches.reshape(n * t * s * p, kh * kw * c_in)
            @ kernel.reshape(kh * kw * c_in, c_out) + bias).reshape(n, t, s, p, c_out)


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
    any_valid, all_valid = mask.any(axis=0).tolist(), mask.all(axis=0).tolist()
    for t in range(steps):
        if any_valid[t]:  # a step no window has changes nothing
            recurrent = h @ recurrent_kernel + bias[1]
            gates = sigmoid(inputs[:, t, :2 * u] + recurrent[:, :2 * u])  # z and r at once
            candidate = np.tanh(inputs[:, t, 2 * u:] + gates[:, u:] * recurrent[:, 2 * u:])
            new = candidate + gates[:, :u] * (h - candidate)  # z h + (1 - z) candidate
            h = new if all_valid[t] else np.where(mask[:, t, None], new, h)
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
