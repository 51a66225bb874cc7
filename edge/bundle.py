"""Edge bundles on disk: read, verify and describe them (NumPy only, nothing unpickled).

A bundle is a directory, or a .zip of one, holding::

    manifest.json   schema version, model, preprocessing, input/output meaning, graph,
                    weight shapes, metrics, and the sha256 and size of every other file
    weights.npz     weights, BatchNorm folded into the convs (allow_pickle=False): float32,
                    or as ``weights_storage`` says float16, or int8 kernels with a float32
                    scale per output channel (``<name>.scale``); expanded to float32 at load
    model.tflite    LiteRT flatbuffer, batch 1, fixed T, builtin ops only (optional)

`read_bundle` refuses a bundle with an unknown schema version, a missing or extra file, a
wrong checksum, or weights whose names or shapes differ from the manifest.

Crafted bundles: nothing is decompressed or allocated before its size is checked. Zip
entries are checked by their declared and actual sizes (`MAX_UNPACKED_BYTES`), the manifest's
weight table by its total parameter count (`MAX_PARAMETERS`), each array's .npy header
against the manifest before its data is read, and the graph by walking its shapes: every
weight must fit the layer before it, strides are positive integers, and `graph_peak_floats`
gives the largest intermediate a window needs, so a caller can bound a batch's memory before
running it. Every such problem is a `BundleError` naming the bundle and the field.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from deepsense.data.features import FeatureConfig

SCHEMA_VERSION = 1
FORMAT = "deepsense-edge-bundle"
MANIFEST = "manifest.json"
WEIGHTS = "weights.npz"
TFLITE = "model.tflite"
#: Output layouts a bundle may declare (as run.json ``outputs.layout``).
LAYOUTS = ("probabilities", "gaussian_mean_variance", "values")
#: Most bytes all files of a bundle may take once unpacked (a DeepSense bundle is < 20 MB).
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
#: Most files in a bundle zip.
MAX_FILES = 16
#: Most weights (float32 numbers) a bundle may declare (full DeepSense: ~0.3 M).
MAX_PARAMETERS = 20_000_000
#: Head activations the runtime knows.
ACTIVATIONS = ("softmax", "gaussian", "linear")
#: How weights.npz stores the weights (manifest ``weights_storage.dtype``; absent: float32).
WEIGHT_DTYPES = ("float32", "float16", "int8")
#: Suffix of the per-output-channel scale of an int8 weight.
SCALE = ".scale"


class BundleError(ValueError):
    """A bundle that cannot be used: the message names the bundle, the file and the problem."""


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A verified bundle held in memory.

    Attributes:
        source: where it was read from (directory or .zip).
        manifest: the parsed manifest.json.
        weights: name -> float32 array, as the manifest's ``weights`` table says.
        tflite: the flatbuffer bytes, or None when the bundle has none.
        sha256: sha256 of manifest.json, which pins every other file's checksum: the model's
            identity in predictions and status messages.
    """

    source: Path
    manifest: dict
    weights: dict[str, np.ndarray]
    tflite: bytes | None
    sha256: str

    @property
    def features(self) -> FeatureConfig:
        return FeatureConfig.from_dict(self.manifest["preprocessing"]["features"])


#: What reading a crafted or damaged zip (a bundle, or its weights.npz) can raise:
#: a bad archive, an unsupported or oversized member, a truncated or corrupt deflate
#: stream (zlib.error), bad npy data (ValueError).
ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError,
              OSError, ValueError, zlib.error)


def read_files(path: str | Path, max_bytes: int = MAX_UNPACKED_BYTES) -> dict[str, bytes]:
    """The files of a bundle directory or .zip, by name (no subdirectories).

    Args:
        max_bytes: most bytes all files may take together, checked before reading (zip:
            the declared sizes first, then the bytes actually decompressed).
    """
    source = Path(path)
    if source.is_dir():
        paths = [p for p in sorted(source.iterdir()) if p.is_file()]
        _check_sizes(source, [(p.name, p.stat().st_size) for p in paths], max_bytes)
        return {p.name: p.read_bytes() for p in paths}
    if not source.exists():
        raise BundleError(f"{source}: no such bundle (expected a directory or a .zip)")
    try:
        with zipfile.ZipFile(source) as archive:
            infos = [i for i in archive.infolist() if not i.is_dir()]
            _check_sizes(source, [(i.filename, i.file_size) for i in infos], max_bytes)
            files = {}
            for info in infos:
                with archive.open(info) as member:
                    data = member.read(info.file_size + 1)
                if len(data) != info.file_size:
                    raise BundleError(f"{source}/{info.filename}: {len(data)} bytes unpacked, "
                                      f"the zip declares {info.file_size}")
                files[Path(info.filename).name] = data
            return files
    except ZIP_ERRORS as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{source}: not a bundle directory or a valid .zip "
                          f"({type(exc).__name__}: {exc})") from None


def _check_sizes(source: Path, sizes: list[tuple[str, int]], max_bytes: int) -> None:
    if len(sizes) > MAX_FILES:
        raise BundleError(f"{source}: {len(sizes)} files; a bundle has at most {MAX_FILES}")
    total = sum(size for _, size in sizes)
    if total > max_bytes:
        raise BundleError(f"{source}: files take {total} bytes unpacked; at most {max_bytes} "
                          "allowed")


def read_bundle(path: str | Path, max_bytes: int = MAX_UNPACKED_BYTES,
                max_parameters: int = MAX_PARAMETERS) -> Bundle:
    """Read and verify a bundle.

    Args:
        max_bytes: most bytes its files may take unpacked.
        max_parameters: most float32 weights its manifest may declare.

    Raises:
        BundleError: unknown schema, missing or unlisted files, checksum or size mismatch,
            weights that are not plain float32 arrays of the declared shapes.
    """
    source = Path(path)
    files = read_files(source, max_bytes)
    if MANIFEST not in files:
        raise BundleError(f"{source}: {MANIFEST} is missing; is this a bundle made by "
                          "`deepsense export`?")
    try:
        manifest = json.loads(files[MANIFEST])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{source}/{MANIFEST}: not valid JSON ({exc})") from None
    check_manifest(manifest, source, max_parameters)
    listed = manifest["files"]
    present = set(files) - {MANIFEST}
    if missing := sorted(set(listed) - present):
        raise BundleError(f"{source}: files listed in the manifest are missing: {missing}")
    if extra := sorted(present - set(listed)):
        raise BundleError(f"{source}: files not listed in the manifest: {extra}")
    for name, entry in listed.items():
        digest = sha256_bytes(files[name])
        if digest != entry["sha256"]:
            raise BundleError(f"{source}/{name}: sha256 mismatch (manifest {entry['sha256']}, "
                              f"file {digest}); the bundle is corrupt or was modified")
    weights = load_weights(files[WEIGHTS], manifest["weights"], f"{source}/{WEIGHTS}",
                           manifest.get("weights_storage"))
    return Bundle(source, manifest, weights, files.get(TFLITE),
                  sha256_bytes(files[MANIFEST]))


def check_manifest(manifest: object, source: Path, max_parameters: int = MAX_PARAMETERS) -> None:
    """The fields every reader relies on, with the values it understands, and the graph's
    shapes (see `graph_peak_floats`)."""
    where = f"{source}/{MANIFEST}"
    if not isinstance(manifest, dict):
        raise BundleError(f"{where}: expected a JSON object")
    version = manifest.get("schema_version")
    if manifest.get("format") != FORMAT or version != SCHEMA_VERSION:
        raise BundleError(f"{where}: unsupported bundle (format {manifest.get('format')!r}, "
                          f"schema_version {version!r}); this runtime reads {FORMAT!r} "
                          f"schema {SCHEMA_VERSION}")
    for key in ("model", "preprocessing", "input", "outputs", "graph", "weights", "files"):
        if not isinstance(manifest.get(key), dict):
            raise BundleError(f"{where}: field {key!r} is missing or not an object")
    if WEIGHTS not in manifest["files"]:
        raise BundleError(f"{where}: field 'files' must list {WEIGHTS}")
    for name, entry in manifest["files"].items():
        if (not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str)
                or "/" in name or name == MANIFEST):
            raise BundleError(f"{where}: files[{name!r}] expected {{'sha256': hex, 'bytes': n}}")
    layout = manifest["outputs"].get("layout")
    if layout not in LAYOUTS:
        raise BundleError(f"{where}: outputs.layout expected one of {LAYOUTS}. "
                          f"Received: {layout!r}")
    try:
        features = FeatureConfig.from_dict(manifest["preprocessing"].get("features"))
    except (TypeError, ValueError) as exc:
        raise BundleError(f"{where}: preprocessing.features is invalid ({exc})") from None
    check_weights_storage(manifest, where)
    shape = manifest["input"].get("shape")
    if shape != [features.n_intervals, features.n_features]:
        raise BundleError(f"{where}: input.shape {shape} does not match the preprocessing "
                          f"({features.n_intervals} intervals x {features.n_features} features)")
    for key in ("name", "version", "task"):
        if not isinstance(manifest["model"].get(key), str):
            raise BundleError(f"{where}: model.{key} expected a string. "
                              f"Received: {manifest['model'].get(key)!r:.60}")
    names = manifest["outputs"].get("names")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise BundleError(f"{where}: outputs.names expected a non-empty list of strings")
    n_parameters = 0
    for name, dims in manifest["weights"].items():
        if (not isinstance(dims, list) or len(dims) > 8
                or not all(_is_int(d) and 0 <= d <= max_parameters for d in dims)):
            raise BundleError(f"{where}: weights[{name!r}] expected a shape (a list of at most 8 "
                              f"integers in [0, {max_parameters}])")
        n_parameters += int(np.prod(dims, dtype=np.float64))
    if n_parameters > max_parameters:
        raise BundleError(f"{where}: weights declare {n_parameters} parameters; at most "
                          f"{max_parameters} allowed")
    graph_peak_floats(manifest, where)


def _is_int(value: object) -> bool:
    return type(value) is int


def graph_peak_floats(manifest: dict, where: str = MANIFEST) -> int:
    """Walk the graph's shapes; return the largest intermediate one window needs (floats).

    Checks that every layer's weights are listed with shapes that fit the layer before it,
    that strides are positive integers and kernels fit their inputs, so the runtime cannot
    fail on a shape, and that the head's width matches ``outputs.names``.

    Raises:
        BundleError: naming the field of the graph that is wrong.
    """
    graph, shapes = manifest["graph"], manifest["weights"]
    features = FeatureConfig.from_dict(manifest["preprocessing"]["features"])
    n_steps, n_features = features.n_intervals, features.n_features

    def fail(field: str, expected: str) -> BundleError:
        return BundleError(f"{where}: graph.{field} expected {expected}")

    def weight(name: object, part: str, ndim: int) -> list[int]:
        dims = shapes.get(f"{name}.{part}") if isinstance(name, str) else None
        if dims is None or len(dims) != ndim or not all(d > 0 for d in dims):
            raise BundleError(f"{where}: weights[{name!r}.{part}] expected a listed "
                              f"{ndim}-d shape of positive sizes")
        return dims

    sensors = graph.get("sensors")
    if not isinstance(sensors, list) or not sensors:
        raise fail("sensors", "a non-empty list")
    peak, outs = n_steps * n_features, []
    for i, sensor in enumerate(sensors):
        if not isinstance(sensor, dict) or not isinstance(sensor.get("convs"), list):
            raise fail(f"sensors[{i}]", "an object with 'convs' (a list)")
        start, size = sensor.get("start"), sensor.get("size")
        if not (_is_int(start) and _is_int(size) and start >= 0 and size >= 1
                and start + size <= n_features):
            raise fail(f"sensors[{i}].start/size", f"integers within the {n_features} features")
        positions, channels = size, 1
        for j, conv in enumerate(sensor["convs"]):
            stride = conv.get("stride") if isinstance(conv, dict) else None
            if not (_is_int(stride) and stride >= 1):
                raise fail(f"sensors[{i}].convs[{j}].stride", "a positive integer")
            k, c_in, c_out = weight(conv.get("name"), "kernel", 3)
            if c_in != channels or k > positions or weight(conv["name"], "bias", 1) != [c_out]:
                raise fail(f"sensors[{i}].convs[{j}]", f"a kernel (<= {positions}, {channels}, "
                           "C) and a bias (C,)")
            peak = max(peak, n_steps * ((positions - k) // stride + 1) * k * channels)
            positions, channels = (positions - k) // stride + 1, c_out
        outs.append((positions, channels))
    if len(set(outs)) != 1:
        raise fail("sensors", f"convs that end in the same shape. Received: {outs}")
    (positions, channels), n_sensors = outs[0], len(sensors)
    merges = graph.get("merge_convs")
    if not isinstance(merges, list):
        raise fail("merge_convs", "a list of names")
    for name in merges:
        kh, kw, c_in, c_out = weight(name, "kernel", 4)
        if c_in != channels or weight(name, "bias", 1) != [c_out]:
            raise fail(f"merge_convs[{name!r}]", f"a kernel (kh, kw, {channels}, C), bias (C,)")
        peak = max(peak, n_steps * n_sensors * positions * kh * kw * channels)
        channels = c_out
    width = n_sensors * positions * channels
    grus = graph.get("grus")
    if not isinstance(grus, list):
        raise fail("grus", "a list of names")
    for name in grus:
        f_in, gates = weight(name, "kernel", 2)
        units = weight(name, "recurrent_kernel", 2)[0]
        if (f_in != width or gates != 3 * units
                or weight(name, "recurrent_kernel", 2) != [units, 3 * units]
                or weight(name, "bias", 2) != [2, 3 * units]):
            raise fail(f"grus[{name!r}]", f"kernel ({width}, 3u), recurrent_kernel (u, 3u), "
                       "bias (2, 3u)")
        peak = max(peak, n_steps * gates)
        width = units
    head = graph.get("head")
    if not isinstance(head, dict) or head.get("activation") not in ACTIVATIONS:
        raise fail("head", f"an object with 'activation' one of {ACTIVATIONS}")
    f_in, n_out = weight(head.get("name"), "kernel", 2)
    if f_in != width or weight(head["name"], "bias", 1) != [n_out]:
        raise fail("head", f"a kernel ({width}, n) and a bias (n,)")
    if head["activation"] == "gaussian":
        low, high = head.get("min_variance"), head.get("max_variance")
        if not all(type(v) in (int, float) and np.isfinite(v) for v in (low, high)) \
                or not 0 <= low < high:
            raise fail("head.min_variance/max_variance", "finite numbers, 0 <= min < max")
        scale = head.get("variance_scale", 1.0)  # absent from bundles exported before it
        if not (type(scale) in (int, float) and np.isfinite(scale) and scale > 0):
            raise fail("head.variance_scale", f"a finite number > 0. Received: {scale!r}")
    n_names = len(manifest["outputs"]["names"])
    expected = 2 * n_names if manifest["outputs"]["layout"] == "gaussian_mean_variance" else n_names
    if n_out != expected:
        raise fail("head", f"{expected} outputs (outputs.names). Received: {n_out}")
    return int(peak)


def check_weights_storage(manifest: dict, where: str) -> None:
    """``weights_storage`` (optional): {"dtype": float32 | float16 | int8, "int8": [names]}.

    ``int8`` lists the weights stored as int8 with a scale; each must be a weight of the
    manifest with at least 2 dimensions. Nothing else is allowed in the object.
    """
    storage = manifest.get("weights_storage")
    if storage is None:
        return
    if not isinstance(storage, dict) or set(storage) - {"dtype", "int8"}:
        raise BundleError(f"{where}: weights_storage expected an object with 'dtype' and, for "
                          f"int8, 'int8' (names). Received: {storage!r}")
    dtype = storage.get("dtype")
    if dtype not in WEIGHT_DTYPES:
        raise BundleError(f"{where}: weights_storage.dtype expected one of {WEIGHT_DTYPES}. "
                          f"Received: {dtype!r}")
    names = storage.get("int8", [])
    if dtype != "int8" and names:
        raise BundleError(f"{where}: weights_storage.int8 lists weights but dtype is {dtype!r}")
    if (not isinstance(names, list) or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)):
        raise BundleError(f"{where}: weights_storage.int8 expected a list of distinct weight "
                          f"names. Received: {names!r}")
    shapes = manifest["weights"]
    for name in names:
        if name not in shapes or not isinstance(shapes[name], list) or len(shapes[name]) < 2:
            raise BundleError(f"{where}: weights_storage.int8 names {name!r}, which is not a "
                              "weight of 2 or more dimensions in the manifest's 'weights'")


def load_weights(data: bytes, shapes: Mapping[str, list[int]], where: str,
                 storage: Mapping | None = None) -> dict[str, np.ndarray]:
    """float32 arrays from an .npz, checked against the manifest's name -> shape table.

    Args:
        storage: the manifest's ``weights_storage`` (checked by `check_weights_storage`);
            None means plain float32. float16 arrays and int8 arrays times their
            per-output-channel ``<name>.scale`` (float32, (C_out,), > 0) become float32.
    """
    dtype = (storage or {}).get("dtype", "float32")
    quantized = set((storage or {}).get("int8", []))
    layout = {name: ("int8" if name in quantized else "float32" if dtype == "int8" else dtype,
                     list(shape)) for name, shape in shapes.items()}
    layout.update({name + SCALE: ("float32", [shapes[name][-1]]) for name in quantized})
    _check_npy_headers(data, layout, where)
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            stored = {name: npz[name] for name in npz.files}
    except ZIP_ERRORS as exc:
        raise BundleError(f"{where}: not a plain .npz of arrays ({exc})") from None
    expected = set(shapes) | {name + SCALE for name in quantized}
    if set(stored) != expected:
        raise BundleError(f"{where}: arrays {sorted(stored)} differ from the manifest's "
                          f"{sorted(expected)}")
    weights = {}
    for name, shape in shapes.items():
        array = stored[name]
        want = "int8" if name in quantized else "float32" if dtype == "int8" else dtype
        if array.dtype != np.dtype(want) or list(array.shape) != list(shape):
            raise BundleError(f"{where}: {name} expected {want} {list(shape)}. "
                              f"Received: {array.dtype} {list(array.shape)}")
        if name in quantized:
            scale = stored[name + SCALE]
            if (scale.dtype != np.float32 or scale.shape != (shape[-1],)
                    or not np.all(np.isfinite(scale)) or not np.all(scale > 0)):
                raise BundleError(f"{where}: {name}{SCALE} expected float32 [{shape[-1]}] "
                                  f"finite and > 0. Received: {scale.dtype} "
                                  f"{list(scale.shape)}")
            array = array.astype(np.float32) * scale
        array = array.astype(np.float32, copy=False)
        if not np.all(np.isfinite(array)):
            raise BundleError(f"{where}: {name} holds NaN or Inf")
        weights[name] = array
    return weights


def _check_npy_headers(data: bytes, layout: Mapping[str, tuple[str, list[int]]],
                       where: str) -> None:
    """Each array's .npy header against `layout` (name -> (dtype name, shape), from the
    manifest), before any data is read: a header declaring a shape of 2**40 must not
    allocate it."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as npz:
            infos = npz.infolist()
            if len(infos) > len(layout) + 1:
                raise BundleError(f"{where}: {len(infos)} arrays; the manifest lists "
                                  f"{len(layout)}")
            for info in infos:
                name = info.filename.removesuffix(".npy")
                if name not in layout:
                    continue                  # reported below, with the names
                want_dtype, want_shape = layout[name]
                with npz.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(member)
                if dtype != np.dtype(want_dtype) or list(shape) != want_shape:
                    raise BundleError(f"{where}: {name} expected {want_dtype} {want_shape}. "
                                      f"Received: {dtype} {list(shape)}")
                if info.file_size > dtype.itemsize * int(np.prod(shape)) + 10_000:
                    raise BundleError(f"{where}: {name} holds {info.file_size} bytes, more "
                                      "than its shape needs")
    except ZIP_ERRORS as exc:
        if isinstance(exc, BundleError):
            raise
        raise BundleError(f"{where}: not a plain .npz of arrays ({exc})") from None
