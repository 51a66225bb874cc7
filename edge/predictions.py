"""What one prediction carries: the payload the MQTT gateway publishes (NumPy only).

Model output layouts (recorded in run.json as ``outputs.layout``):

- ``probabilities``: (n, C) class probabilities (softmax and rdeepsense classification).
- ``gaussian_mean_variance``: (n, 2k) concatenated [mean (k), variance (k)] per window, the
  rdeepsense regression head; variance in target units squared.
- ``values``: (n, k) point estimates (plain regression, no uncertainty).

```python
summarize(np.array([[0.7, 0.2, 0.1]]), "activity", ["walk", "sit", "bike"])
# [{"label": "walk", "label_index": 0, "probs": {"walk": 0.7, ...}, "max_prob": 0.7,
#   "entropy": 0.8018}]
```
"""

from __future__ import annotations

import numpy as np

from edge.stats import entropy, normal_quantile

#: z of the central 95% interval of a Gaussian.
Z_95 = normal_quantile(0.975)


def summarize(outputs: np.ndarray, task: str, class_names: list[str]) -> list[dict]:
    """One dict per window.

    Args:
        outputs: model outputs, (n, C) probabilities for "activity"/"user"; (n, 2k)
            [mean, variance] or (n, k) values for "regression".
        task: "activity", "user" or "regression".
        class_names: the C class names, or the k regression target names.

    Returns:
        Classification: ``label``, ``label_index``, ``probs`` {class: p}, ``max_prob``,
        ``entropy`` (nats, 0..log C). Regression: ``mean``, ``std`` and ``interval_95``
        ([low, high]) per target name; ``std`` and ``interval_95`` are None for plain values.

    Raises:
        ValueError: outputs whose width does not match the task and names, or non-finite.
    """
    out = np.asarray(outputs, dtype=np.float64)
    names = list(class_names)
    if out.ndim != 2 or not np.all(np.isfinite(out)):
        raise ValueError(f"outputs expected a finite (n, width) array. Received: shape {out.shape}")
    if task == "regression":
        return _summarize_regression(out, names)
    if out.shape[1] != len(names):
        raise ValueError(f"outputs expected {len(names)} class probabilities per window. "
                         f"Received: width {out.shape[1]}")
    index = out.argmax(axis=1)
    spread = entropy(out)
    return [{"label": names[i], "label_index": int(i),
             "probs": {name: float(p) for name, p in zip(names, row)},
             "max_prob": float(row[i]), "entropy": float(h)}
            for row, i, h in zip(out, index, spread)]


def _summarize_regression(out: np.ndarray, names: list[str]) -> list[dict]:
    k = len(names)
    if out.shape[1] == k:
        return [{"mean": dict(zip(names, map(float, row))), "std": None, "interval_95": None}
                for row in out]
    if out.shape[1] != 2 * k:
        raise ValueError(f"regression outputs expected {k} values or {2 * k} (mean, variance) "
                         f"per window. Received: width {out.shape[1]}")
    mean, variance = out[:, :k], out[:, k:]
    if np.any(variance <= 0):
        raise ValueError("regression variance expected > 0. Received: a value <= 0")
    std = np.sqrt(variance)
    return [{"mean": dict(zip(names, map(float, m))), "std": dict(zip(names, map(float, s))),
             "interval_95": {n: [float(a - Z_95 * b), float(a + Z_95 * b)]
                             for n, a, b in zip(names, m, s)}}
            for m, s in zip(mean, std)]
