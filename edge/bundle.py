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
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
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


def read_files(path: str | Path) -> dict[str, bytes]:
    """The files of a bundle directory or .zip, by name (no subdirectories)."""
    source = Path(path)
    if source.is_dir():
        return {p.name: p.read_bytes() for p in sorted(source.iterdir()) if p.is_file()}
    if not source.exists():
        raise BundleError(f"{source}: no such bundle (expected a directory or a .zip)")
    try:
        with zipfile.ZipFile(source) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            return {Path(n).name: archive.read(n) for n in names}
    except zipfile.BadZipFile as exc:
        raise BundleError(f"{source}: not a bundle directory or a valid .zip ({exc})") from None


def read_bundle(path: str | Path) -> Bundle:
    """Read and verify a bundle.

    Raises:
        BundleError: unknown schema, missing or unlisted files, checksum or size mismatch,
            weights that are not plain float32 arrays of the declared shapes.
    """
    source = Path(path)
    files = read_files(source)
    if MANIFEST not in files:
        raise BundleError(f"{source}: {MANIFEST} is missing; is this a bundle made by "
                          "`deepsense export`?")
    try:
        manifest = json.loads(files[MANIFEST])
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{source}/{MANIFEST}: not valid JSON ({exc})") from None
    check_manifest(manifest, source)
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


def check_manifest(manifest: object, source: Path) -> None:
    """The fields every reader relies on, with the values it understands."""
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
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            stored = {name: npz[name] for name in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile) as exc:
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
