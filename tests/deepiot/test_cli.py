import json

import numpy as np
import pytest

from deepiot.cost import model_cost
from deepiot.structure import read_structure
from deepsense.cli import main
from deepsense.config import load_config
from deepsense.data.features import FeatureConfig
from deepsense.data.prepared import prepare_recordings, save_prepared
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings
from deepsense.run import load_run

TINY_MODEL = ["--set", "model.conv_filters=4", "--set", "model.merge_filters=4",
              "--set", "model.gru_units=[6, 6]"]


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A tiny activity model trained for one epoch on ~400 synthetic windows."""
    spec = SyntheticSpec(n_users=3, devices=("nexus4_1",), seconds_per_activity=12.0, n_gaps=1,
                         max_gap_s=1.0, seed=0)
    dataset = prepare_recordings(make_recordings(spec), FeatureConfig(stride_s=1.0),
                                 activity_names=list(ACTIVITIES), augment_copies=1)
    work = tmp_path_factory.mktemp("deepiot-cli")
    data = save_prepared(dataset, work / "data")
    assert main(["train", "--data", str(data), "--out", str(work / "run"), "--epochs", "1",
                 "--split", "loso:b", *TINY_MODEL]) == 0
    return work / "run"


def test_compress_then_evaluate_from_the_command_line(trained_run, tmp_path, capsys):
    out = tmp_path / "thin"
    assert main(["compress", "--model", str(trained_run), "--out", str(out),
                 "--target-params", "0.5", "--step-interval", "1",
                 "--fine-tune-epochs", "1"]) == 0
    printed = capsys.readouterr().out
    assert "tau" in printed and "parameters left" in printed and "acc_gyro_conv3" in printed
    info = json.loads((out / "run.json").read_text())
    source = json.loads((trained_run / "run.json").read_text())
    assert info["kind"] == "deepiot"
    assert set(source) <= set(info)  # every field `train` writes
    model, _ = load_run(out)
    structure = read_structure(load_run(trained_run)[0])
    widths = {g.name: info["compression"]["widths"][g.layers[0]] for g in structure.groups}
    assert info["parameters"]["trainable"] == model_cost(structure, widths)["trainable"]
    assert info["compression"]["parameter_fraction"] <= 0.5
    report = json.loads((out / "compression_report.json").read_text())
    assert set(report["models"]) == {"original", "compressed, before fine-tuning", "compressed"}
    assert (out / "tradeoff.png").stat().st_size > 0
    resolved = load_config(out / "config.resolved.toml")
    assert (resolved.compress.step_interval, resolved.compress.fine_tune_epochs) == (1, 1)
    assert resolved.model == load_run(trained_run)[1].run_config.model
    assert main(["evaluate", "--model", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "loso:b"
    assert np.isclose(metrics["accuracy"], report["models"]["compressed"]["accuracy"], atol=1e-4)


@pytest.mark.parametrize("flag, value", [("--target-params", "1.5"), ("--distill", "-1"),
                                         ("--step-interval", "0"),
                                         ("--set", "compress.n_steps=0"),
                                         ("--set", "compress.n_step=3"),
                                         ("--set", "compress.seed=1.5"),
                                         ("--set", "train.epochs=3")])
def test_compress_rejects_bad_settings_with_exit_2(trained_run, tmp_path, capsys, flag, value):
    assert main(["compress", "--model", str(trained_run), "--out", str(tmp_path),
                 flag, value]) == 2
    assert capsys.readouterr().err.startswith("error: compress:")


def test_compress_of_a_missing_run_exits_1(tmp_path, capsys):
    assert main(["compress", "--model", str(tmp_path / "none"), "--out", str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err


@pytest.mark.parametrize("task", ["activity", "regression"])
def test_compress_takes_rdeepsense_runs_and_keeps_the_head(trained_run, tmp_path, task):
    data = load_run(trained_run)[1].data_path
    source, out = tmp_path / "run", tmp_path / "thin"
    assert main(["train", "--data", data, "--out", str(source), "--epochs", "1",
                 "--split", "loso:b", "--head", "rdeepsense", "--task", task, *TINY_MODEL]) == 0
    assert main(["compress", "--model", str(source), "--out", str(out),
                 "--target-params", "0.5", "--step-interval", "1",
                 "--fine-tune-epochs", "1"]) == 0
    info = json.loads((out / "run.json").read_text())
    assert (info["kind"], info["head"]) == ("deepiot", "rdeepsense")
    assert info["outputs"] == json.loads((source / "run.json").read_text())["outputs"]
    report = json.loads((out / "compression_report.json").read_text())
    keys = ({"mae", "nll", "coverage_50", "coverage_90", "coverage_95"} if task == "regression"
            else {"accuracy", "nll", "ece", "brier"})
    for name in ("original", "compressed"):
        assert keys <= set(report["models"][name])
    history = report["history"][-1]
    assert ("validation_mae" if task == "regression" else "validation_accuracy") in history
    model, _ = load_run(out)
    assert model.layers[-1].name == ("mean_variance" if task == "regression" else "probabilities")
    assert main(["evaluate", "--model", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert np.isclose(metrics["nll"], report["models"]["compressed"]["nll"], atol=1e-3)
    assert metrics["before_compression"] == report["models"]["original"]


def _train_and_compress(trained_run, tmp_path, *train_args: str):
    """An RDeepSense run validated on user c (1 epoch) and its compression to half its
    parameters: (data path, source run, compressed run, the source's calibration)."""
    data = load_run(trained_run)[1].data_path
    source, out = tmp_path / "run", tmp_path / "thin"
    assert main(["train", "--data", data, "--out", str(source), "--epochs", "1",
                 "--split", "loso:b+val:c", "--head", "rdeepsense", *train_args,
                 *TINY_MODEL]) == 0
    calibration = json.loads((source / "run.json").read_text())["calibration"]
    assert main(["compress", "--model", str(source), "--out", str(out),
                 "--target-params", "0.5", "--step-interval", "1",
                 "--fine-tune-epochs", "1"]) == 0
    return data, source, out, calibration


def test_compress_refits_the_temperature_on_the_validation_users(trained_run, tmp_path):
    data, _, out, original = _train_and_compress(trained_run, tmp_path)
    assert original["temperature"] > 0
    calibration = json.loads((out / "run.json").read_text())["calibration"]
    assert calibration["fitted_on"] == "validation users c"
    model, info = load_run(out)
    from deepsense.data.prepared import load_prepared
    from deepsense.run import split_rows
    from rdeepsense.calibrate import BOUNDS
    from rdeepsense.predictors import make_logits
    from rdeepsense.temperature import fit_temperature

    ds = load_prepared(data)
    rows = split_rows(ds, info.run_config.train).validation
    refit = fit_temperature(make_logits(model)(ds.x[rows]), ds.activity[rows], BOUNDS)
    assert calibration["validation_nll_after"] <= calibration["validation_nll_before"] + 1e-6
    if calibration["temperature"] < 0.999 * BOUNDS[1]:  # an optimum inside the bounds
        assert refit == pytest.approx(1.0, rel=1e-3)
    else:  # a tiny 1-epoch model worse than uniform on user c: softened to the bound
        assert refit >= 1.0


def test_compress_refits_the_variance_scale_on_the_validation_users(trained_run, tmp_path):
    data, source, out, trained = _train_and_compress(trained_run, tmp_path,
                                                     "--task", "regression")
    original = trained["variance_scale"]
    calibration = json.loads((out / "run.json").read_text())["calibration"]
    assert calibration["fitted_on"] == "validation users c"
    model, info = load_run(out)
    head = model.get_layer("mean_variance").variance_scale
    assert head == pytest.approx(original * calibration["matched_to_original"]
                                 * calibration["variance_scale"], rel=1e-5)
    assert head == pytest.approx(calibration["head_variance_scale"], rel=1e-6)
    from deepsense.data.prepared import load_prepared
    from deepsense.run import split_rows
    from rdeepsense.calibrate import fit_variance_scale, match_variance_scale

    ds = load_prepared(data)
    rows = split_rows(ds, info.run_config.train).validation
    pred = model.predict(ds.x[rows], verbose=0)
    assert fit_variance_scale(ds.target[rows, None], pred[:, :1], pred[:, 1:]) == pytest.approx(
        1.0, rel=1e-4)
    # First matched to the original's predictive distribution, then widened (if at all).
    assert match_variance_scale(model, load_run(source)[0], ds.x[rows]) == pytest.approx(
        1 / calibration["variance_scale"], rel=1e-3)
