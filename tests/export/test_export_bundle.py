"""Bundles of plain, RDeepSense, regression and DeepIoT-thinned runs: contents and parity."""

import json
import zipfile

import numpy as np
import pytest

from deepsense.data.splits import split_indices
from deepsense.run import load_run
from edge.bundle import read_bundle
from edge.runtime import load_bundle

KINDS = ("plain", "rdeepsense", "regression", "thinned", "thinned-rdeepsense",
         "thinned-regression")


def _test_windows(ds, n=64):
    _, rows = split_indices(ds, "loso:b")
    x = ds.x[rows[:n]].copy()
    x[0, 5:] = 0.0  # a window padded after 5 intervals
    x[1] = 0.0      # a window with no valid interval at all
    return x


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("backend", ["numpy", "litert"])
def test_edge_runtimes_match_keras(kind, backend, runs, bundles, edge_data):
    model, info = load_run(runs[kind])
    x = _test_windows(edge_data)
    expected = model.predict(x, verbose=0)
    edge = load_bundle(bundles[kind], backend=backend)
    outputs = edge.predict(x)
    assert outputs.shape == expected.shape and outputs.dtype == np.float32
    np.testing.assert_allclose(outputs, expected, atol=1e-4, rtol=0)
    if info.task != "regression":
        assert np.array_equal(outputs.argmax(axis=1), expected.argmax(axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_manifest_describes_the_model(kind, runs, bundles):
    _, info = load_run(runs[kind])
    manifest = json.loads((bundles[kind] / "manifest.json").read_text())
    assert manifest["model"]["task"] == info.task
    assert manifest["preprocessing"]["features"] == info.features
    assert manifest["input"]["shape"] == [20, 120]
    layout = manifest["outputs"]["layout"]
    regression = kind.endswith("regression")
    assert layout == ("gaussian_mean_variance" if regression else "probabilities")
    assert manifest["outputs"]["width"] == (2 if regression else 6)
    # BatchNorm is folded into the convs: its 4 vectors per conv are gone.
    assert 0 < manifest["parameters"]["exported"] < manifest["parameters"]["trained"]["total"]
    assert not any("_bn" in name for name in manifest["weights"])
    assert set(manifest["files"]) == {"weights.npz", "model.tflite"}
    checks = manifest["checks"]
    assert checks["numpy"]["max_abs_diff"] <= 1e-4 and checks["litert"]["max_abs_diff"] <= 1e-4
    if kind.startswith("thinned"):
        assert "compression" in manifest["metrics"]


@pytest.mark.slow
def test_thinned_bundle_is_smaller_and_counts_match(runs, bundles):
    plain = json.loads((bundles["plain"] / "manifest.json").read_text())
    thinned = json.loads((bundles["thinned"] / "manifest.json").read_text())
    assert thinned["parameters"]["exported"] < plain["parameters"]["exported"]
    assert thinned["files"]["weights.npz"]["bytes"] < plain["files"]["weights.npz"]["bytes"]
    weights = read_bundle(bundles["thinned"]).weights
    assert sum(w.size for w in weights.values()) == thinned["parameters"]["exported"]


@pytest.mark.slow
def test_weights_load_without_pickle_and_zip_matches_directory(bundles):
    directory = bundles["plain"]
    with np.load(directory / "weights.npz", allow_pickle=False) as npz:
        assert all(npz[name].dtype == np.float32 for name in npz.files)
    with zipfile.ZipFile(directory.with_suffix(".zip")) as archive:
        assert sorted(archive.namelist()) == ["manifest.json", "model.tflite", "weights.npz"]
    assert read_bundle(directory.with_suffix(".zip")).sha256 == read_bundle(directory).sha256


@pytest.mark.slow
@pytest.mark.parametrize("quantize", ["dynamic", "int8"])
def test_quantized_bundles_record_their_accuracy_change(quantize, runs, edge_work, edge_data):
    from deepsense.export import export_bundle

    out = export_bundle(runs["plain"], edge_work / f"q-{quantize}", quantize=quantize,
                        formats=("numpy", "tflite"))
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["quantization"]["tflite"] == quantize
    checks = manifest["checks"]
    assert checks["quantization_accuracy_change"] == pytest.approx(
        checks["litert"]["accuracy"] - checks["keras"]["accuracy"], abs=1e-4)
    edge = load_bundle(out, backend="litert")
    model, _ = load_run(runs["plain"])
    x = _test_windows(edge_data)
    outputs, expected = edge.predict(x), model.predict(x, verbose=0)
    assert np.all(np.isfinite(outputs)) and np.allclose(outputs.sum(axis=1), 1.0, atol=1e-2)
    # Quantization perturbs the outputs a little, not wildly (tiny model: loose bound).
    assert np.max(np.abs(outputs - expected)) < 0.2


@pytest.mark.slow
def test_quantize_without_data_is_refused(runs, tmp_path):
    import shutil

    from deepsense.export import export_bundle

    run = shutil.copytree(runs["plain"], tmp_path / "run")
    info = json.loads((run / "run.json").read_text())
    info["data_path"] = str(tmp_path / "gone")
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="give --data"):
        export_bundle(run, tmp_path / "bundle", quantize="dynamic", formats=("numpy", "tflite"))


@pytest.mark.slow
def test_a_failing_numpy_runtime_check_fails_the_export(runs, tmp_path, monkeypatch):
    from deepsense.export import export_bundle
    from edge import ops

    def broken(x):
        raise ValueError("the edge softmax is broken")

    monkeypatch.setattr(ops, "softmax", broken)
    with pytest.raises(ValueError, match="the edge softmax is broken"):
        export_bundle(runs["plain"], tmp_path / "bundle")


@pytest.mark.slow
def test_export_without_litert_records_its_check_as_skipped(runs, tmp_path, monkeypatch):
    import sys

    from deepsense.export import export_bundle

    monkeypatch.setitem(sys.modules, "ai_edge_litert.interpreter", None)  # import fails
    out = export_bundle(runs["plain"], tmp_path / "bundle", formats=("numpy", "tflite"))
    checks = json.loads((out / "manifest.json").read_text())["checks"]
    assert "ai_edge_litert" in checks["litert"]["skipped"]
    assert checks["numpy"]["max_abs_diff"] <= 1e-4


@pytest.fixture(scope="module")
def scaled_regression(runs, edge_work):
    """(run, bundle) of the regression run with its GaussianHead's variance_scale set to 2.5,
    as `rdeepsense.calibrate` leaves a run fitted with validation users."""
    import shutil

    from deepsense.export import export_bundle
    from deepsense.run import MODEL_FILE

    run = shutil.copytree(runs["regression"], edge_work / "scaled-regression")
    model, _ = load_run(run)
    model.get_layer("mean_variance").variance_scale = 2.5
    model.save(run / MODEL_FILE)
    return run, export_bundle(run, edge_work / "bundles" / "scaled-regression",
                              formats=("numpy", "tflite"))


@pytest.mark.slow
def test_a_variance_scale_reaches_every_runtime(scaled_regression, runs, edge_data):
    run, bundle = scaled_regression
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["graph"]["head"]["variance_scale"] == 2.5
    model, _ = load_run(run)
    x = _test_windows(edge_data)
    expected = model.predict(x, verbose=0)
    unscaled = load_run(runs["regression"])[0].predict(x, verbose=0)
    np.testing.assert_allclose(expected[:, 1], 2.5 * unscaled[:, 1], rtol=1e-5)
    for backend in ("numpy", "litert"):  # LiteRT: the scale is inside the flatbuffer
        outputs = load_bundle(bundle, backend=backend).predict(x)
        np.testing.assert_allclose(outputs, expected, atol=1e-4, rtol=0, err_msg=backend)


@pytest.mark.slow
def test_a_manifest_without_variance_scale_uses_1(scaled_regression, runs, edge_data, tmp_path):
    import shutil

    bundle = shutil.copytree(scaled_regression[1], tmp_path / "old")
    manifest = json.loads((bundle / "manifest.json").read_text())
    del manifest["graph"]["head"]["variance_scale"]  # a bundle exported before the field
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    x = _test_windows(edge_data)
    np.testing.assert_allclose(load_bundle(bundle).predict(x),
                               load_run(runs["regression"])[0].predict(x, verbose=0),
                               atol=1e-4, rtol=0)
