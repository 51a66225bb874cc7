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


class ConvLayer:
    """Convolutions of one depth as dense blocks over (intervals, features) rows, then ReLU.

    Args:
        blocks: (input columns, output columns, matrix (D_in, D_out)) per sensor, or one
            block over all columns for a merge conv.
        bias: (D_out total,) float32, the conv bias repeated per output position.
    """

    def __init__(self, blocks: list[tuple[slice, slice, np.ndarray]], bias: np.ndarray):
        self.blocks = blocks
        self.bias = bias.astype(np.float32)

    def __call__(self, h: np.ndarray) -> np.ndarray:
        """(rows, D_in) float32 -> (rows, D_out) float32."""
        if len(self.blocks) == 1:
            out = h[:, self.blocks[0][0]] @ self.blocks[0][2]
        else:
            out = np.empty((h.shape[0], self.bias.shape[0]), np.float32)
            for rows, columns, matrix in self.blocks:
                np.matmul(h[:, rows], matrix, out=out[:, columns])
        out += self.bias
        return np.maximum(out, 0.0, out=out)


class NumpyGraph:
    """The manifest's DeepSense graph over the bundle's folded weights, compiled at load.

    Graph fields: ``sensors`` [{name, start, size, convs: [{name, stride}]}],
    ``merge_convs`` [names], ``grus`` [names], ``head`` {name, activation: softmax |
    gaussian | linear, min_variance, max_variance, variance_scale (optional, default 1:
    bundles exported before it have none)}.

    Every convolution acts on one interval at a time and is linear, so it is compiled into
    one dense matrix (`ops.dense_matrix`). A batch then costs one matmul per sensor and conv
    depth and one per merge conv over all n * T intervals at once, plus the GRUs (one matmul
    for all steps' inputs, one per step), all in float32 and time-major (T, n, ...) so each
    step reads contiguous rows.
    """

    def __init__(self, bundle: Bundle):
        self.graph = bundle.manifest["graph"]
        w = bundle.weights
        needed = [f"{conv['name']}.{part}" for sensor in self.graph["sensors"]
                  for conv in sensor["convs"] for part in ("kernel", "bias")]
        needed += [f"{name}.{part}" for name in self.graph["merge_convs"]
                   for part in ("kernel", "bias")]
        needed += [f"{name}.{part}" for name in self.graph["grus"]
                   for part in ("kernel", "recurrent_kernel", "bias")]
        needed += [f"{self.graph['head']['name']}.{part}" for part in ("kernel", "bias")]
        if missing := sorted(set(needed) - set(w)):
            raise BundleError(f"{bundle.source}: the graph needs weights the bundle lacks: "
                              f"{missing}")
        if self.graph["head"]["activation"] not in ("softmax", "gaussian", "linear"):
            raise BundleError(f"{bundle.source}: graph.head.activation expected softmax, "
                              f"gaussian or linear. Received: {self.graph['head']['activation']!r}")
        try:
            self.layers = self._compile_convs(w)
        except ValueError as exc:  # shapes that do not chain: a malformed graph
            raise BundleError(f"{bundle.source}: the graph's convolutions do not fit "
                              f"together ({exc})") from None
        self.grus = [ops.gru_weights(w[f"{name}.kernel"], w[f"{name}.recurrent_kernel"],
                                     w[f"{name}.bias"]) for name in self.graph["grus"]]
        head = self.graph["head"]["name"]
        self.head = (w[f"{head}.kernel"], w[f"{head}.bias"])

    def _compile_convs(self, w: dict[str, np.ndarray]) -> list[ConvLayer]:
        """One `ConvLayer` per conv depth (the sensors side by side) and per merge conv."""
        depths = {len(sensor["convs"]) for sensor in self.graph["sensors"]}
        if len(depths) != 1:
            raise ValueError(f"sensors with different numbers of convs {sorted(depths)}")
        inputs = [(slice(s["start"], s["start"] + s["size"]), (s["size"], 1))
                  for s in self.graph["sensors"]]
        layers = []
        for depth in range(depths.pop()):
            blocks, biases, outputs, column = [], [], [], 0
            for sensor, (rows, shape) in zip(self.graph["sensors"], inputs):
                conv = sensor["convs"][depth]
                kernel, bias = w[f"{conv['name']}.kernel"], w[f"{conv['name']}.bias"]
                matrix = ops.dense_matrix(
                    lambda x, k, b, s=conv["stride"]: ops.conv_positions(x, k, b, s),
                    shape, kernel)
                shape = ((shape[0] - kernel.shape[0]) // conv["stride"] + 1, kernel.shape[-1])
                columns = slice(column, column + matrix.shape[1])
                blocks.append((rows, columns, matrix))
                biases.append(np.tile(bias, shape[0]))
                outputs.append((columns, shape))
                column = columns.stop
            layers.append(ConvLayer(blocks, np.concatenate(biases)))
            inputs = outputs
        shapes = {shape for _, shape in inputs}
        if len(shapes) != 1:
            raise ValueError(f"sensor outputs of different shapes {sorted(shapes)}")
        (positions, channels), = shapes
        shape = (len(inputs), positions, channels)
        for name in self.graph["merge_convs"]:
            kernel, bias = w[f"{name}.kernel"], w[f"{name}.bias"]
            matrix = ops.dense_matrix(ops.conv_sensor_positions, shape, kernel)
            layers.append(ConvLayer([(slice(None), slice(None), matrix)],
                                    np.tile(bias, shape[0] * shape[1])))
            shape = (*shape[:2], kernel.shape[-1])
        return layers

    def __call__(self, x: np.ndarray) -> np.ndarray:
        n, steps, n_features = x.shape
        h = np.ascontiguousarray(x.transpose(1, 0, 2)).reshape(steps * n, n_features)
        mask = ops.interval_mask(h).reshape(steps, n)
        for layer in self.layers:
            h = layer(h)
        h = h.reshape(steps, n, -1)
        for weights in self.grus:
            h = ops.gru(h, mask, *weights)
        head = self.graph["head"]
        out = ops.masked_mean(h, mask) @ self.head[0] + self.head[1]
        if head["activation"] == "softmax":
            return ops.softmax(out)
        if head["activation"] == "gaussian":
            return ops.gaussian(out, head["min_variance"], head["max_variance"],
                                head.get("variance_scale", 1.0))
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
