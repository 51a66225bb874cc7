"""The edge runtime refuses bad bundles and bad feature tensors with clear messages."""

import io
import json
import shutil
import struct
import zipfile

import numpy as np
import pytest

from edge.bundle import BundleError, read_bundle, sha256_bytes
from edge.runtime import load_bundle

pytestmark = pytest.mark.slow  # the bundles come from tiny trained runs


@pytest.fixture
def bundle_copy(bundles, tmp_path):
    return shutil.copytree(bundles["plain"], tmp_path / "bundle")


def _rewrite_manifest(bundle, change):
    manifest = json.loads((bundle / "manifest.json").read_text())
    change(manifest)
    (bundle / "manifest.json").write_text(json.dumps(manifest))


def _reseal(bundle, name):
    """Update the manifest checksum of `name` (a tampering that passes checksums)."""
    _rewrite_manifest(bundle, lambda m: m["files"][name].update(
        sha256=sha256_bytes((bundle / name).read_bytes())))


def test_a_modified_file_fails_its_checksum(bundle_copy):
    data = bytearray((bundle_copy / "model.tflite").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (bundle_copy / "model.tflite").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"model.tflite: sha256 mismatch"):
        read_bundle(bundle_copy)


def test_unknown_schema_version_is_refused(bundle_copy):
    _rewrite_manifest(bundle_copy, lambda m: m.update(schema_version=99))
    with pytest.raises(BundleError, match="schema_version 99"):
        read_bundle(bundle_copy)


def test_missing_and_unlisted_files_are_refused(bundle_copy):
    (bundle_copy / "notes.txt").write_text("hello")
    with pytest.raises(BundleError, match=r"not listed in the manifest: \['notes.txt'\]"):
        read_bundle(bundle_copy)
    (bundle_copy / "notes.txt").unlink()
    (bundle_copy / "weights.npz").unlink()
    with pytest.raises(BundleError, match=r"missing: \['weights.npz'\]"):
        read_bundle(bundle_copy)


def test_missing_manifest_and_non_bundles_are_refused(bundle_copy, tmp_path):
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        read_bundle(bundle_copy)
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    with pytest.raises(BundleError, match="not a bundle directory or a valid .zip"):
        read_bundle(tmp_path / "x.zip")
    with pytest.raises(BundleError, match="no such bundle"):
        read_bundle(tmp_path / "nowhere")


def test_a_zip_with_a_broken_deflate_stream_is_refused(tmp_path):
    """A corrupt compressed member raises zlib.error inside zipfile (not BadZipFile): still
    a BundleError naming the file (a flipped byte in an OTA update once escaped as
    zlib.error)."""
    path = tmp_path / "broken.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("manifest.json", json.dumps({"x": list(range(200))}))
    raw = bytearray(path.read_bytes())
    raw[30 + len("manifest.json")] = 0x07  # first deflate block: final, reserved type 3
    path.write_bytes(bytes(raw))
    with pytest.raises(BundleError, match=r"broken.zip: not a bundle directory or a valid "
                                          r"\.zip \(error: .*invalid block type"):
        read_bundle(path)


def test_weights_of_the_wrong_shape_are_refused(bundle_copy):
    with np.load(bundle_copy / "weights.npz") as npz:
        weights = {k: npz[k] for k in npz.files}
    weights["logits.bias"] = np.zeros(7, np.float32)
    np.savez(bundle_copy / "weights.npz", **weights)
    _reseal(bundle_copy, "weights.npz")
    with pytest.raises(BundleError, match=r"logits.bias expected float32 \[6\]"):
        read_bundle(bundle_copy)


def test_weights_with_a_broken_deflate_stream_are_refused(bundle_copy):
    with np.load(bundle_copy / "weights.npz") as npz:
        weights = {k: npz[k] for k in npz.files}
    np.savez_compressed(bundle_copy / "weights.npz", **weights)
    raw = bytearray((bundle_copy / "weights.npz").read_bytes())
    with zipfile.ZipFile(bundle_copy / "weights.npz") as archive:
        first = archive.infolist()[0]
    at = first.header_offset  # local header: name and extra lengths at bytes 26-29
    name_len, extra_len = struct.unpack("<HH", bytes(raw[at + 26:at + 30]))
    raw[at + 30 + name_len + extra_len] = 0x07  # first deflate block: final, reserved type 3
    (bundle_copy / "weights.npz").write_bytes(bytes(raw))
    _reseal(bundle_copy, "weights.npz")
    with pytest.raises(BundleError, match=r"weights.npz: not a plain .npz of arrays"):
        read_bundle(bundle_copy)


def test_pickled_weights_are_never_loaded(bundle_copy):
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    with zipfile.ZipFile(bundle_copy / "weights.npz", "a") as archive:
        archive.writestr("payload.npy", buffer.getvalue())
    _rewrite_manifest(bundle_copy, lambda m: m["weights"].update(payload=[1]))
    _reseal(bundle_copy, "weights.npz")
    with pytest.raises(BundleError, match=r"payload expected float32 \[1\]. Received: object"):
        read_bundle(bundle_copy)  # refused by its .npy header, before any array is read


def test_input_shape_that_contradicts_the_preprocessing_is_refused(bundle_copy):
    _rewrite_manifest(bundle_copy, lambda m: m["input"].update(shape=[20, 99]))
    with pytest.raises(BundleError, match=r"input.shape \[20, 99\] does not match"):
        read_bundle(bundle_copy)


@pytest.mark.parametrize("scale", [-1, float("nan"), "x", 0])
def test_a_bad_variance_scale_is_refused(scale, bundles, tmp_path):
    bundle = shutil.copytree(bundles["regression"], tmp_path / "bundle")
    _rewrite_manifest(bundle, lambda m: m["graph"]["head"].update(variance_scale=scale))
    with pytest.raises(BundleError, match=r"head.variance_scale expected a finite number > 0"):
        read_bundle(bundle)


def test_feature_tensors_are_checked_before_inference(bundles):
    model = load_bundle(bundles["plain"])
    with pytest.raises(ValueError, match=r"expected shape \(n, 20, 120\). Received: \(1, 20, 60\)"):
        model.predict(np.zeros((1, 20, 60), np.float32))
    x = np.zeros((2, 20, 120), np.float32)
    x[1, 3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN or Inf"):
        model.predict(x)
    assert model.predict(x[0]).shape == (1, 6)  # one (T, F) window is accepted


def test_summaries_carry_label_and_uncertainty(bundles, edge_data):
    model = load_bundle(bundles["rdeepsense"])
    summary = model.summarize(model.predict(edge_data.x[:3]))
    assert summary[0]["label"] in model.class_names and 0 <= summary[0]["entropy"]
    regression = load_bundle(bundles["regression"])
    summary = regression.summarize(regression.predict(edge_data.x[:3]))
    assert summary[0]["std"][regression.class_names[0]] > 0
