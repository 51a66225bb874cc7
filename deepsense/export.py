"""`deepsense export`: a run directory -> an edge bundle (see `edge.bundle` for the format).

What goes in:

- ``weights.npz`` (always; compressed): weights by ``<layer>.<part>``, BatchNorm folded into
  the convs: per-sensor conv kernels (k, C_in, C_out), merge conv kernels (kh, kw, C_in,
  C_out), GRU ``kernel`` (F_in, 3u) / ``recurrent_kernel`` (u, 3u) / ``bias`` (2, 3u), dense
  (F, out). ``weights`` "float32", "float16", or "int8" (kernels symmetric per output
  channel with a float32 ``<name>.scale``; biases float32), with the accuracy change of the
  NumPy runtime on the run's test windows in the manifest's ``checks``.
- ``model.tflite`` (``formats`` with "tflite"): the same model rebuilt with batch 1, converted with builtin ops only; ``quantize`` "dynamic" (int8 weights) or "int8" (weights and activations,
  calibrated on training windows) makes it smaller, with its accuracy change measured on the
  run's test windows and written into the manifest.
- ``manifest.json``: the model, preprocessing, graph, weight shapes, metrics, parity checks
  and a sha256 per file.

Works for plain, RDeepSense (uncertainty head) and DeepIoT-thinned runs alike.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import tempfile
import zipfile
from pathlib import Path

import keras
import numpy as np

from deepsense import __version__
from deepsense.data.features import FeatureConfig
from deepsense.model import read_topology
from deepsense.run import RunInfo, load_run, resolve_dataset, split_rows
from edge.bundle import (FORMAT, MANIFEST, SCALE, SCHEMA_VERSION, TFLITE, WEIGHT_DTYPES,
                         WEIGHTS, read_bundle, sha256_bytes)
from edge.runtime import EdgeModel

QUANTIZE = ("none", "dynamic", "int8")
#: What a bundle may carry besides its manifest: NumPy weights (always) and a LiteRT model.
FORMATS = ("numpy", "tflite")
#: Layers a bundle can express; anything else in a model is refused by name.
EXPORTABLE_LAYERS = {"InputLayer", "IntervalMask", "SensorSlice", "Conv2D", "Conv3D",
                     "BatchNormalization", "ReLU", "SpatialDropout2D", "SpatialDropout3D",
                     "Dropout", "Reshape", "Concatenate", "GRU", "MaskedTemporalMean", "Dense",
                     "Softmax", "GaussianHead"}
#: Test windows used for the parity and quantization checks (LiteRT runs one at a time).
CHECK_WINDOWS = 512
#: Training windows that calibrate full-integer quantization.
CALIBRATION_WINDOWS = 200


def _fold_batchnorm(model: keras.Model, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Kernel and bias of conv `name` with its ``<name>_bn`` BatchNorm (inference) folded in."""
    conv, bn = model.get_layer(name), model.get_layer(f"{name}_bn")
    kernel = conv.kernel.numpy().astype(np.float64)
    bias = conv.bias.numpy().astype(np.float64) if conv.use_bias else np.zeros(kernel.shape[-1])
    gamma = bn.gamma.numpy() if bn.scale else 1.0
    beta = bn.beta.numpy() if bn.center else 0.0
    scale = gamma / np.sqrt(bn.moving_variance.numpy().astype(np.float64) + bn.epsilon)
    folded_bias = (bias - bn.moving_mean.numpy()) * scale + beta
    return (kernel * scale).astype(np.float32), folded_bias.astype(np.float32)


def graph_and_weights(model: keras.Model, features: FeatureConfig
                      ) -> tuple[dict, dict[str, np.ndarray]]:
    """The bundle graph of a DeepSense-family model and its folded float32 weights.

    Raises:
        ValueError: a layer the bundle cannot express, or a GRU/conv configured differently
            from what the edge runtime implements.
    """
    unknown = [f"{layer.name} ({type(layer).__name__})" for layer in model.layers
               if type(layer).__name__ not in EXPORTABLE_LAYERS]
    if unknown:
        raise ValueError(f"cannot export layers {unknown}; a bundle holds DeepSense models "
                         "(per-sensor convs, merge convs, GRUs, masked mean, dense head)")
    weights: dict[str, np.ndarray] = {}
    topology = read_topology(model)
    sensors = []
    for sensor in features.sensors:
        piece = model.get_layer(f"{sensor}_slice")
        convs = []
        for name in topology.convs_of(sensor):
            kernel, bias = _fold_batchnorm(model, name)
            weights[f"{name}.kernel"], weights[f"{name}.bias"] = kernel[0], bias  # (k, Ci, Co)
            convs.append({"name": name, "stride": int(model.get_layer(name).strides[1])})
        sensors.append({"name": sensor, "start": int(piece.start), "size": int(piece.size),
                        "convs": convs})
    for name in topology.merge_convs:
        if model.get_layer(name).padding != "same":
            raise ValueError(f"{name}: the edge runtime implements 'same' merge convs")
        kernel, bias = _fold_batchnorm(model, name)
        weights[f"{name}.kernel"], weights[f"{name}.bias"] = kernel[0], bias  # (kh, kw, Ci, Co)
    for name in topology.grus:
        cell = model.get_layer(name).cell
        if not (cell.reset_after and cell.use_bias and cell.activation is keras.activations.tanh
                and cell.recurrent_activation is keras.activations.sigmoid):
            raise ValueError(f"{name}: the edge runtime implements GRUs with reset_after=True, "
                             "a bias, tanh and sigmoid (the Keras defaults)")
        weights[f"{name}.kernel"] = cell.kernel.numpy()
        weights[f"{name}.recurrent_kernel"] = cell.recurrent_kernel.numpy()
        weights[f"{name}.bias"] = cell.bias.numpy()
    logits = topology.logits
    dense = model.get_layer(logits)
    weights[f"{logits}.kernel"], weights[f"{logits}.bias"] = dense.kernel.numpy(), dense.bias.numpy()
    last = model.get_layer(topology.output)
    head = {"name": logits, "activation": {"Softmax": "softmax", "GaussianHead": "gaussian",
                                             "Dense": "linear"}[type(last).__name__]}
    if head["activation"] == "gaussian":
        head.update(min_variance=last.min_variance, max_variance=last.max_variance,
                    variance_scale=last.variance_scale)
    graph = {"sensors": sensors, "merge_convs": list(topology.merge_convs),
             "grus": list(topology.grus), "head": head}
    return graph, {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in weights.items()}


def edge_keras_model(model: keras.Model, unroll: bool = False) -> keras.Model:
    """The same model with batch size 1 (static shapes convert with builtin ops only; the
    GRUs become a WHILE loop), and with unrolled GRUs if `unroll`."""
    config = model.get_config()
    for layer in config["layers"]:
        if layer["class_name"] == "InputLayer":
            layer["config"]["batch_shape"] = [1, *layer["config"]["batch_shape"][1:]]
        elif layer["class_name"] == "GRU":
            layer["config"]["unroll"] = unroll
    edge = keras.Model.from_config(config)
    edge.set_weights(model.get_weights())
    return edge


def convert_litert(model: keras.Model, quantize: str = "none",
                   calibration: np.ndarray | None = None) -> bytes:
    """LiteRT flatbuffer of `model` (batch 1, builtin ops only), optionally quantized.

    The GRUs stay a loop (a 3.5x smaller flatbuffer than unrolled) except for "int8", where
    the converter only handles unrolled GRUs.
    """
    import tensorflow as tf

    if quantize not in QUANTIZE:
        raise ValueError(f"quantize expected one of {QUANTIZE}. Received: {quantize!r}")
    edge = edge_keras_model(model, unroll=quantize == "int8")
    options: dict = {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    if quantize != "none":
        options["optimizations"] = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        if calibration is None or len(calibration) == 0:
            raise ValueError("int8 quantization needs calibration windows (training data)")

        def representative():
            for window in calibration:
                yield [window[None].astype(np.float32)]

        options["representative_dataset"] = representative
        options["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
                                                    tf.lite.OpsSet.TFLITE_BUILTINS]}
    shape = [1, *edge.input_shape[1:]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.tflite"
        edge.export(str(path), format="litert", verbose=False,
                    input_signature=[tf.TensorSpec(shape, tf.float32)], **options)
        return path.read_bytes()


def store_weights(weights: dict[str, np.ndarray], dtype: str
                  ) -> tuple[dict[str, np.ndarray], dict]:
    """The arrays to write into weights.npz and the manifest's ``weights_storage``.

    int8 stores every kernel (``*.kernel``, ``*.recurrent_kernel``) as round(w / scale) with
    one float32 scale per output channel (last axis), scale = max |w| / 127 over the
    channel's other axes; biases stay float32.
    """
    if dtype not in WEIGHT_DTYPES:
        raise ValueError(f"weights expected one of {WEIGHT_DTYPES}. Received: {dtype!r}")
    if dtype != "int8":
        return {k: v.astype(dtype) for k, v in weights.items()}, {"dtype": dtype}
    stored, quantized = {}, []
    for name, array in weights.items():
        if not name.endswith("kernel"):
            stored[name] = array.astype(np.float32)
            continue
        peak = np.abs(array).reshape(-1, array.shape[-1]).max(axis=0)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        stored[name] = np.clip(np.round(array / scale), -127, 127).astype(np.int8)
        stored[name + SCALE] = scale
        quantized.append(name)
    return stored, {"dtype": "int8", "int8": quantized}


def _check_data(info: RunInfo, data_dir: str | Path | None):
    """(train windows, test windows, test labels) of the run's split, or None without data."""
    path = data_dir or info.data_path
    if path is None or not Path(path).exists():
        return None
    ds, _ = resolve_dataset(info, path)
    rows = split_rows(ds, info.run_config.train)
    test_rows = rows.test[:CHECK_WINDOWS]
    return ds.x[rows.fit[:CALIBRATION_WINDOWS]], ds.x[test_rows], ds.labels(info.task)[test_rows]


def _score(outputs: np.ndarray, labels: np.ndarray, task: str) -> dict:
    if task == "regression":
        return {"mae": round(float(np.mean(np.abs(outputs[:, 0] - labels))), 5)}
    return {"accuracy": round(float(np.mean(outputs.argmax(axis=1) == labels)), 5)}


def _run_metrics(run: Path, info: RunInfo) -> dict:
    """The training, evaluation and compression numbers a user wants to see in the bundle."""
    metrics = {"training": {"split": info.split, "n_train_windows": info.n_train_windows,
                            "epochs_run": info.epochs_run, "train_seconds": info.train_seconds,
                            "seed": info.run_config.train.seed}}
    for key, filename in (("evaluation", "metrics.json"),
                          ("compression", "compression_report.json")):
        if (run / filename).exists():
            values = json.loads((run / filename).read_text())
            metrics[key] = {k: v for k, v in values.items()
                            if not isinstance(v, (list, dict)) or k in ("kept_units", "kept",
                                                                       "parameters")}
    return metrics


def _outputs_meaning(info: RunInfo) -> dict:
    layout = info.outputs["layout"]
    description = {
        "probabilities": "class probabilities, one per name, summing to 1",
        "gaussian_mean_variance": "[mean per target, variance per target (target units^2)]",
        "values": "point estimates, one per target",
    }[layout]
    width = int(info.outputs["width"])
    n_names = width // 2 if layout == "gaussian_mean_variance" else width
    names = info.class_names or [f"target{i}" for i in range(n_names)]
    return {"layout": layout, "width": width, "names": list(names), "description": description}


def export_bundle(run_dir: str | Path, out_dir: str | Path, *, quantize: str = "none",
                  formats: tuple[str, ...] = ("numpy",), weights: str = "float32",
                  data_dir: str | Path | None = None, name: str | None = None,
                  version: str = "1", make_zip: bool = True) -> Path:
    """Write the bundle of a run directory into `out_dir` (and `out_dir`.zip).

    Args:
        run_dir: a run made by `train` or `compress`.
        out_dir: bundle directory (replaced if it exists).
        quantize: "none", "dynamic" or "int8" for model.tflite; "dynamic"/"int8" need the
            run's data (or `data_dir`) to measure the accuracy change.
        formats: "numpy" (weights.npz, always) and optionally "tflite" (model.tflite, for
            LiteRT). The NumPy weights alone suit a NumPy-only device and are the default.
        weights: how weights.npz stores them: "float32", "float16" or "int8" (see
            `store_weights`); the runtime expands them to float32 at load.
        data_dir: prepared dataset for the checks (default: the run's).
        name, version: model name (default: the run directory's name) and version.
        make_zip: also write ``<out_dir>.zip``.

    Returns:
        The bundle directory. The manifest's ``checks`` hold the max abs difference of the
        NumPy runtime and of LiteRT from Keras on the run's test windows.
    """
    if unknown := sorted(set(formats) - set(FORMATS)):
        raise ValueError(f"formats expected a subset of {FORMATS}. Received: {unknown}")
    if "numpy" not in formats:
        raise ValueError("formats must include 'numpy': weights.npz is the reference every "
                         "bundle carries")
    if quantize != "none" and "tflite" not in formats:
        raise ValueError(f"quantize {quantize!r} applies to model.tflite; add 'tflite' to "
                         "the formats (--formats numpy,tflite)")
    if weights not in WEIGHT_DTYPES:
        raise ValueError(f"weights expected one of {WEIGHT_DTYPES}. Received: {weights!r}")
    run = Path(run_dir)
    model, info = load_run(run)
    features = FeatureConfig.from_dict(info.features)
    graph, arrays = graph_and_weights(model, features)
    data = _check_data(info, data_dir)
    for what, value in (("--quantize", quantize), ("--weights", weights)):
        if value not in ("none", "float32") and data is None:
            raise ValueError(f"{what} {value} measures the accuracy change on test data: "
                             f"{run} does not record an existing data path; give --data")
    calibration = data[0] if data else None
    tflite = convert_litert(model, quantize, calibration) if "tflite" in formats else None
    stored, storage = store_weights(arrays, weights)

    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    np.savez_compressed(out / WEIGHTS, **stored)
    if tflite is not None:
        (out / TFLITE).write_bytes(tflite)
    manifest = {
        "schema_version": SCHEMA_VERSION,
        "format": FORMAT,
        "model": {"name": name or run.resolve().name, "version": str(version),
                  "task": info.task, "kind": info.kind, "head": info.head,
                  "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                  "exported_by": f"deepsense {__version__}"},
        "preprocessing": {
            "features": features.to_dict(),
            "sensor_axes": {s: ["x", "y", "z"][:features.n_axes] for s in features.sensors},
            "fft_points": features.n_points,
            "normalisation": "none: FFT (re, im) of the raw samples, linearly interpolated to "
                             "fft_points per interval",
            "layout": "per interval, per sensor: for each FFT bin, per axis (re, im)",
            "padding": "an interval without enough samples is all zeros",
        },
        "input": {"name": "features", "shape": [features.n_intervals, features.n_features],
                  "dtype": "float32", "tflite_shape": [1, features.n_intervals,
                                                       features.n_features]},
        "outputs": _outputs_meaning(info),
        "graph": graph,
        "weights": {k: list(v.shape) for k, v in arrays.items()},
        "weights_storage": storage,
        "parameters": {"trained": info.parameters,
                       "exported": int(sum(v.size for v in arrays.values()))},
        "quantization": {"tflite": quantize if tflite is not None else None},
        "metrics": _run_metrics(run, info),
    }
    _write_manifest(out, manifest)
    if data is not None:
        manifest["checks"] = _parity_checks(model, out, data, info.task, quantize, weights)
        _write_manifest(out, manifest)
    if make_zip:
        write_zip(out)
    return out


def _write_manifest(out: Path, manifest: dict) -> None:
    files = {p.name: p for p in sorted(out.iterdir()) if p.name != MANIFEST}
    manifest["files"] = {n: {"sha256": sha256_bytes(p.read_bytes()), "bytes": p.stat().st_size}
                         for n, p in files.items()}
    manifest["size_bytes"] = sum(entry["bytes"] for entry in manifest["files"].values())
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")


def _parity_checks(model: keras.Model, out: Path, data: tuple, task: str,
                   quantize: str, weights: str) -> dict:
    """Keras vs the NumPy runtime vs LiteRT on up to CHECK_WINDOWS test windows.

    A bundle without model.tflite, or a missing LiteRT interpreter, is recorded as
    ``skipped``; any other error of a runtime fails the export. Stored weights other than
    float32 record ``weights_accuracy_change`` (or ``weights_mae_change``): the NumPy
    runtime on the stored weights against Keras, in accuracy (fraction) or MAE.
    """
    _, x, labels = data
    reference = model.predict(x, batch_size=256, verbose=0)
    bundle = read_bundle(out)
    checks = {"windows": int(len(x)), "keras": _score(reference, labels, task)}
    for backend in ("numpy", "litert"):
        if backend == "litert" and bundle.tflite is None:
            checks[backend] = {"skipped": "no model.tflite (exported without 'tflite')"}
            continue
        try:
            outputs = EdgeModel(bundle, backend).predict(x)
        except ImportError as exc:  # no LiteRT interpreter installed (MissingExtraError)
            checks[backend] = {"skipped": str(exc)}
            continue
        checks[backend] = {**_score(outputs, labels, task),
                           "max_abs_diff": float(np.max(np.abs(outputs - reference)))}
        if task != "regression":
            checks[backend]["argmax_agreement"] = round(float(np.mean(
                outputs.argmax(axis=1) == reference.argmax(axis=1))), 5)
    if weights != "float32":
        metric = "mae" if task == "regression" else "accuracy"
        checks[f"weights_{metric}_change"] = round(
            checks["numpy"][metric] - checks["keras"][metric], 5)
    if quantize != "none" and "accuracy" in checks["litert"]:
        checks["quantization_accuracy_change"] = round(
            checks["litert"]["accuracy"] - checks["keras"]["accuracy"], 5)
    elif quantize != "none" and "mae" in checks["litert"]:
        checks["quantization_mae_change"] = round(
            checks["litert"]["mae"] - checks["keras"]["mae"], 5)
    return checks


def write_zip(bundle_dir: Path) -> Path:
    """``<bundle_dir>.zip`` with the bundle's files at its root."""
    target = bundle_dir.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(bundle_dir.iterdir()):
            archive.write(path, path.name)
    return target
