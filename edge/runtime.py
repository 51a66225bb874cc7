"""The edge runtime: load a bundle, predict on feature windows (NumPy; LiteRT if installed).

```python
model = load_bundle("bundle.zip")            # verified: schema, checksums, shapes
x = np.zeros((1, *model.input_shape), np.float32)  # (n, T, F) from deepsense.data.features
outputs = model.predict(x)                   # (n, C) probabilities or (n, 2k) [mean, variance]
model.summarize(outputs)                     # [{"label": ..., "probs": ..., "entropy": ...}]
```

The NumPy backend runs the manifest's graph with `edge.ops`; the LiteRT backend runs the
bundle's flatbuffer one window at a time (it was exported with batch 1).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from deepsense.data.features import FeatureConfig
from deepsense.errors import require
from edge import ops
from edge.bundle import Bundle, BundleError, read_bundle
from edge.predictions import summarize

BACKENDS = ("numpy", "litert")


class Backend(Protocol):
    def __call__(self, x: np.ndarray) -> np.ndarray: ...


class NumpyGraph:
    """The manifest's DeepSense graph over the bundle's folded weights.

    Graph fields: ``sensors`` [{name, start, size, convs: [{name, stride}]}],
    ``merge_convs`` [names], ``grus`` [names], ``head`` {name, activation: softmax |
    gaussian | linear, min_variance, max_variance}.
    """

    def __init__(self, bundle: Bundle):
        self.graph = bundle.manifest["graph"]
        self.w = bundle.weights
        needed = [f"{conv['name']}.{part}" for sensor in self.graph["sensors"]
                  for conv in sensor["convs"] for part in ("kernel", "bias")]
        needed += [f"{name}.{part}" for name in self.graph["merge_convs"]
                   for part in ("kernel", "bias")]
        needed += [f"{name}.{part}" for name in self.graph["grus"]
                   for part in ("kernel", "recurrent_kernel", "bias")]
        needed += [f"{self.graph['head']['name']}.{part}" for part in ("kernel", "bias")]
        if missing := sorted(set(needed) - set(self.w)):
            raise BundleError(f"{bundle.source}: the graph needs weights the bundle lacks: "
                              f"{missing}")
        if self.graph["head"]["activation"] not in ("softmax", "gaussian", "linear"):
            raise BundleError(f"{bundle.source}: graph.head.activation expected softmax, "
                              f"gaussian or linear. Received: {self.graph['head']['activation']!r}")

    def __call__(self, x: np.ndarray) -> np.ndarray:
        w = self.w
        mask = ops.interval_mask(x)
        stacked = []
        for sensor in self.graph["sensors"]:
            h = x[:, :, sensor["start"]:sensor["start"] + sensor["size"], None]
            for conv in sensor["convs"]:
                h = ops.relu(ops.conv_positions(h, w[f"{conv['name']}.kernel"],
                                                w[f"{conv['name']}.bias"], conv["stride"]))
            stacked.append(h)
        h = np.stack(stacked, axis=2)  # (n, T, S, P, C)
        for name in self.graph["merge_convs"]:
            h = ops.relu(ops.conv_sensor_positions(h, w[f"{name}.kernel"], w[f"{name}.bias"]))
        h = h.reshape(h.shape[0], h.shape[1], -1)
        for name in self.graph["grus"]:
            h = ops.gru(h, mask, w[f"{name}.kernel"], w[f"{name}.recurrent_kernel"],
                        w[f"{name}.bias"])
        head = self.graph["head"]
        out = ops.masked_mean(h, mask) @ w[f"{head['name']}.kernel"] + w[f"{head['name']}.bias"]
        if head["activation"] == "softmax":
            return ops.softmax(out)
        if head["activation"] == "gaussian":
            return ops.gaussian(out, head["min_variance"], head["max_variance"])
        return out


class LiteRTGraph:
    """The bundle's flatbuffer in the LiteRT interpreter, one window per invoke.

    Raises:
        MissingExtraError: ai-edge-litert is not installed (an ImportError).
        BundleError: the bundle has no model.tflite.
    """

    def __init__(self, bundle: Bundle, num_threads: int = 1):
        if bundle.tflite is None:
            raise BundleError(f"{bundle.source}: the bundle has no model.tflite; "
                              "use the numpy backend")
        # MissingExtraError (an ImportError) without LiteRT: no wheels for 32-bit x86 or
        # some ARM boards; the numpy backend runs everywhere.
        litert = require("ai_edge_litert.interpreter", "edge")
        self.interpreter = litert.Interpreter(model_content=bundle.tflite,
                                              num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]

    def __call__(self, x: np.ndarray) -> np.ndarray:
        rows = []
        for window in x:
            self.interpreter.set_tensor(self.input_index, window[None])
            self.interpreter.invoke()
            rows.append(self.interpreter.get_tensor(self.output_index)[0].copy())
        return np.stack(rows)


class EdgeModel:
    """A loaded bundle and one backend.

    Attributes:
        manifest: the bundle's manifest. features: its FeatureConfig. task, class_names,
        layout: what the outputs mean. bundle_sha256: the model's identity. backend_name.
    """

    def __init__(self, bundle: Bundle, backend: str = "numpy"):
        if backend not in BACKENDS:
            raise ValueError(f"backend expected one of {BACKENDS}. Received: {backend!r}")
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.features: FeatureConfig = bundle.features
        self.task: str = self.manifest["model"]["task"]
        self.class_names: list[str] = list(self.manifest["outputs"]["names"])
        self.layout: str = self.manifest["outputs"]["layout"]
        self.bundle_sha256 = bundle.sha256
        self.backend_name = backend
        self._run: Backend = NumpyGraph(bundle) if backend == "numpy" else LiteRTGraph(bundle)

    @property
    def name(self) -> str:
        return self.manifest["model"]["name"]

    @property
    def version(self) -> str:
        return self.manifest["model"]["version"]

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.features.n_intervals, self.features.n_features)

    def predict(self, x: np.ndarray) -> np.ndarray:
        """(n, T, F) or (T, F) float32 features -> (n, width) float32 outputs.

        Raises:
            ValueError: a shape other than the manifest's input shape, or NaN/Inf values.
        """
        x = np.asarray(x)
        if x.ndim == 2:
            x = x[None]
        if x.ndim != 3 or x.shape[1:] != self.input_shape:
            raise ValueError(f"features expected shape (n, {self.input_shape[0]}, "
                             f"{self.input_shape[1]}). Received: {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError("features hold NaN or Inf; refusing to predict")
        return self._run(x.astype(np.float32, copy=False)).astype(np.float32, copy=False)

    def summarize(self, outputs: np.ndarray) -> list[dict]:
        """One dict per window: label and probabilities, or mean/std/95% interval."""
        return summarize(outputs, self.task, self.class_names)


def load_bundle(path: str | Path, backend: str = "numpy") -> EdgeModel:
    """Read, verify and load a bundle directory or .zip (see `edge.bundle`)."""
    return EdgeModel(read_bundle(path), backend)
