"""The DeepSense op set in NumPy: what an exported bundle runs on a device without TensorFlow.

Shapes: n windows, T intervals, P positions, S sensors, C channels, u GRU units. Every op
matches its Keras counterpart in float32 (the parity tests hold them to 1e-4).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def interval_mask(x: np.ndarray) -> np.ndarray:
    """(..., F) -> (...) bool: an interval is valid when any feature is non-zero."""
    return np.any(x != 0.0, axis=-1)


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


def dense_matrix(layer, in_shape: tuple[int, ...], kernel: np.ndarray) -> np.ndarray:
    """The linear map of a convolution as one (D_in, D_out) float32 matrix (bias excluded).

    Each interval's convolution is linear in the interval's flattened input, so applying
    `layer` (`conv_positions` or `conv_sensor_positions`, any extra arguments bound) to the
    D_in unit vectors gives its exact matrix: one matmul per layer at run time, no gathers
    or padding, and no products with 'same' padding zeros.

    Args:
        layer: f(x (n, 1, *in_shape), kernel, bias) -> (n, 1, *out_shape).
        in_shape: one interval's input shape, e.g. (P, C_in) or (S, P, C_in).

    Returns:
        (prod(in_shape), prod(out_shape)), rows and columns in row-major (C) order.
    """
    d_in = int(np.prod(in_shape))
    basis = np.eye(d_in, dtype=np.float32).reshape(d_in, 1, *in_shape)
    out = layer(basis, kernel, np.zeros(kernel.shape[-1], np.float32))
    return np.ascontiguousarray(out.reshape(d_in, -1), dtype=np.float32)


def gru_weights(kernel: np.ndarray, recurrent_kernel: np.ndarray, bias: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keras GRU weights (kernel (F_in, 3u), recurrent (u, 3u), bias (2, 3u)) prepared for
    `gru`: (kernel (F_in, 3u), input bias (3u,), recurrent kernel (u + 1, 3u)).

    Folded in: the recurrent z and r biases into the input bias; the recurrent candidate
    bias as the recurrent kernel's last row (the state carries a constant 1); and a factor
    0.5 into every z, r and recurrent-candidate column, so that a step computes
    sigmoid(a) = (tanh(a / 2) + 1) / 2 and r * (W h + b) with fewer operations.
    """
    u = recurrent_kernel.shape[0]
    kernel = kernel.astype(np.float32)  # a copy: scaled below
    input_bias = bias[0].astype(np.float32)
    input_bias[:2 * u] += bias[1, :2 * u]
    kernel[:, :2 * u] *= 0.5
    input_bias[:2 * u] *= 0.5
    recurrent = np.zeros((u + 1, 3 * u), np.float32)
    recurrent[:u] = recurrent_kernel
    recurrent[u, 2 * u:] = bias[1, 2 * u:]
    recurrent *= 0.5
    return kernel, input_bias, recurrent


def gru(x: np.ndarray, mask: np.ndarray, kernel: np.ndarray, input_bias: np.ndarray,
        recurrent_kernel: np.ndarray) -> np.ndarray:
    """Keras GRU (reset_after=True, gates z, r, h), time-major, returning every step's state.

    Args:
        x: (T, n, F_in) time-major. mask: (T, n) bool; a masked step keeps the previous state.
        kernel, input_bias, recurrent_kernel: from `gru_weights`.

    Returns:
        (T, n, u) states (a view; masked steps repeat the last valid state and the masked
        mean ignores them). One matmul for all steps' inputs, then one per step.
    """
    steps, n, f_in = x.shape
    u = recurrent_kernel.shape[1] // 3
    inputs = (x.reshape(steps * n, f_in) @ kernel + input_bias).reshape(steps, n, 3 * u)
    states = np.zeros((steps + 1, n, u + 1), np.float32)  # [h, 1]; states[0] is h_0 = 0
    states[:, :, u] = 1.0
    any_valid, all_valid = mask.any(axis=1).tolist(), mask.all(axis=1).tolist()
    for t in range(steps):
        h, new = states[t], states[t + 1, :, :u]
        if not any_valid[t]:  # a step no window has changes nothing
            new[...] = h[:, :u]
            continue
        step = inputs[t]
        recurrent = h @ recurrent_kernel  # halved: [z, r, W_h h + b_h] / 2
        gates = recurrent[:, :2 * u]
        gates += step[:, :2 * u]
        np.tanh(gates, out=gates)
        gates += 1.0  # 2 sigmoid(z), 2 sigmoid(r)
        candidate = recurrent[:, 2 * u:]
        candidate *= gates[:, u:]  # r (W_h h + b_h)
        candidate += step[:, 2 * u:]
        np.tanh(candidate, out=candidate)
        np.subtract(h[:, :u], candidate, out=new)
        new *= gates[:, :u]
        new *= 0.5
        new += candidate  # z h + (1 - z) candidate
        if not all_valid[t]:
            np.copyto(new, h[:, :u], where=~mask[t, :, None])
    return states[1:, :, :u]


def masked_mean(x: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(T, n, u), (T, n) -> (n, u) mean over valid steps (time-major); zeros for a window
    with none."""
    weights = mask.astype(x.dtype)
    total = np.einsum("tnu,tn->nu", x, weights)
    return total / np.maximum(weights.sum(axis=0), 1.0)[:, None]


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def gaussian(raw: np.ndarray, min_variance: float, max_variance: float,
             variance_scale: float = 1.0) -> np.ndarray:
    """(n, 2k) [mean, raw] -> [mean, scale * (min + clip(softplus(raw), 0, max - min))]."""
    k = raw.shape[-1] // 2
    variance = variance_scale * (min_variance + np.clip(np.logaddexp(0.0, raw[:, k:]), 0.0,
                                                        max_variance - min_variance))
    return np.concatenate([raw[:, :k], variance.astype(raw.dtype)], axis=-1)
