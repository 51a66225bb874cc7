"""Small bundles: NumPy weights alone by default, float16 / int8 weight storage, strict reading."""

import io
import json
import shutil

import numpy as np
import pytest

from deepsense.cli import main
from edge.bundle import BundleError, read_bundle, sha256_bytes
from edge.runtime import load_bundle

pytestmark = pytest.mark.slow  # the bundles come from tiny trained runs


@pytest.fixture(scope="module")
def stored(runs, edge_work):
    """Thinned-run bundles with weights stored as float32, float16 and int8 (NumPy only)."""
    from deepsense.export import export_bundle

    return {dtype: export_bundle(runs["thinned"], edge_work / "formats" / dtype, weights=dtype)
            for dtype in ("float32", "float16", "int8")}


def test_numpy_weights_alone_are_the_default(stored):
    manifest = json.loads((stored["float32"] / "manifest.json").read_text())
    assert set(manifest["files"]) == {"weights.npz"}
    assert manifest["weights_storage"] == {"dtype": "float32"}
    assert "no model.tflite" in manifest["checks"]["litert"]["skipped"]
    with pytest.raises(BundleError, match="has no model.tflite"):
        load_bundle(stored["float32"], backend="litert")


@pytest.mark.parametrize("dtype", ["float16", "int8"])
def test_smaller_weights_expand_to_float32_and_record_their_accuracy_change(
        dtype, stored, edge_data):
    manifest = json.loads((stored[dtype] / "manifest.json").read_text())
    reference = json.loads((stored["float32"] / "manifest.json").read_text())
    assert manifest["weights_storage"]["dtype"] == dtype
    checks = manifest["checks"]
    assert checks["weights_accuracy_change"] == pytest.approx(
        checks["numpy"]["accuracy"] - checks["keras"]["accuracy"], abs=1e-9)
    assert reference["weights_storage"] == {"dtype": "float32"}
    with np.load(stored[dtype] / "weights.npz", allow_pickle=False) as npz:
        kernels = {name: npz[name] for name in manifest["weights"] if name.endswith("kernel")}
    assert {k.dtype for k in kernels.values()} == {np.dtype(dtype)}
    # The kernels hold nearly all parameters: 2 or 1 bytes each instead of 4 (the tiny
    # test model's .npz is dominated by per-array headers, the HHAR-size one is not).
    assert sum(k.nbytes for k in kernels.values()) == sum(
        int(np.prod(manifest["weights"][n])) * np.dtype(dtype).itemsize for n in kernels)
    weights = read_bundle(stored[dtype]).weights
    assert all(w.dtype == np.float32 for w in weights.values())
    x = edge_data.x[:32]
    full = load_bundle(stored["float32"]).predict(x)
    np.testing.assert_allclose(load_bundle(stored[dtype]).predict(x), full,
                               atol=2e-3 if dtype == "float16" else 3e-2)


def _craft(bundle, tmp_path, change_manifest=None, change_arrays=None):
    """A copy of `bundle` with its manifest and/or weights altered and re-sealed (checksums
    match), so only the field checks can refuse it."""
    out = shutil.copytree(bundle, tmp_path / "crafted")
    if change_arrays:
        with np.load(out / "weights.npz", allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        change_arrays(arrays)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        (out / "weights.npz").write_bytes(buffer.getvalue())
    manifest = json.loads((out / "manifest.json").read_text())
    if change_manifest:
        change_manifest(manifest)
    manifest["files"]["weights.npz"]["sha256"] = sha256_bytes((out / "weights.npz").read_bytes())
    (out / "manifest.json").write_text(json.dumps(manifest))
    return out


def _first_kernel(manifest_or_arrays) -> str:
    return next(n for n in sorted(manifest_or_arrays) if n.endswith("conv1.kernel"))


@pytest.mark.parametrize("change, message", [
    (lambda m: m["weights_storage"].update(dtype="int4"),
     r"weights_storage.dtype expected one of \('float32', 'float16', 'int8'\). Received: 'int4'"),
    (lambda m: m["weights_storage"].update(bits=4), r"weights_storage expected an object"),
    (lambda m: m["weights_storage"]["int8"].append("nope.kernel"),
     r"weights_storage.int8 names 'nope.kernel'"),
    (lambda m: m["weights_storage"].update(int8="logits.kernel"),
     r"weights_storage.int8 expected a list of distinct weight names"),
    (lambda m: m["weights_storage"].update(dtype="float16"),
     r"weights_storage.int8 lists weights but dtype is 'float16'"),
])
def test_a_crafted_weights_storage_is_refused(change, message, stored, tmp_path):
    with pytest.raises(BundleError, match=r"crafted/manifest.json: " + message):
        read_bundle(_craft(stored["int8"], tmp_path, change))


def test_int8_weights_with_a_bad_scale_or_dtype_are_refused(stored, tmp_path):
    manifest = json.loads((stored["int8"] / "manifest.json").read_text())
    name = _first_kernel(manifest["weights_storage"]["int8"])

    def negative(arrays):
        arrays[name + ".scale"] = -arrays[name + ".scale"]

    with pytest.raises(BundleError, match=rf"weights.npz: {name}.scale expected float32 .* > 0"):
        read_bundle(_craft(stored["int8"], tmp_path / "a", change_arrays=negative))

    def widened(arrays):
        arrays[name] = arrays[name].astype(np.int16)

    with pytest.raises(BundleError, match=rf"weights.npz: {name} expected int8"):
        read_bundle(_craft(stored["int8"], tmp_path / "b", change_arrays=widened))

    def dropped(arrays):
        del arrays[name + ".scale"]

    with pytest.raises(BundleError, match=r"weights.npz: arrays .* differ from the manifest's"):
        read_bundle(_craft(stored["int8"], tmp_path / "c", change_arrays=dropped))


def test_export_command_formats_and_weights(runs, tmp_path, capsys):
    run = str(runs["thinned"])
    assert main(["export", "--model", run, "--out", str(tmp_path / "b"), "--quantize",
                 "dynamic"]) == 2
    assert "--formats numpy,tflite" in capsys.readouterr().err
    assert main(["export", "--model", run, "--out", str(tmp_path / "b"), "--formats",
                 "tflite"]) == 2
    assert main(["export", "--model", run, "--out", str(tmp_path / "b"), "--formats",
                 "numpy,tflite", "--weights", "int8"]) == 0
    assert "weights int8, tflite none" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text())
    assert set(manifest["files"]) == {"weights.npz", "model.tflite"}
    assert "weights_accuracy_change" in manifest["checks"]
