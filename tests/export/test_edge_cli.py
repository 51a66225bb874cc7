"""`deepsense export` and `deepsense predict` from the command line."""

import json

import pytest

from deepsense.cli import main

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("kind", ["plain", "thinned"])
def test_evaluate_export_predict_agree(kind, runs, tmp_path, capsys):
    """compress -> evaluate -> export -> predict: the edge metrics equal Keras's."""
    assert main(["evaluate", "--model", str(runs[kind]), "--out", str(tmp_path / "eval")]) == 0
    assert main(["export", "--model", str(runs[kind]), "--out", str(tmp_path / "bundle")]) == 0
    assert "numpy" in capsys.readouterr().out
    assert main(["predict", "--bundle", str(tmp_path / "bundle.zip"), "--data",
                 str(runs[kind].parent / "data"), "--out", str(tmp_path / "pred")]) == 0
    keras_metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    edge_metrics = json.loads((tmp_path / "pred" / "metrics.json").read_text())
    assert edge_metrics["split"] == keras_metrics["split"] == "loso:b"
    assert edge_metrics["n_windows"] == keras_metrics["n_windows"]
    assert edge_metrics["accuracy"] == pytest.approx(keras_metrics["accuracy"], abs=1e-9)
    assert edge_metrics["nll"] == pytest.approx(keras_metrics["nll"], abs=1e-3)
    lines = (tmp_path / "pred" / "predictions.jsonl").read_text().splitlines()
    assert len(lines) == edge_metrics["n_windows"]
    assert {"label", "probs", "entropy", "true_label"} <= set(json.loads(lines[0]))


def test_predict_on_a_raw_recording_file(bundles, tmp_path, capsys):
    from deepsense.data.csv_format import write_sensor_csv
    from deepsense.data.synthetic import SyntheticSpec, make_recordings

    recordings = make_recordings(SyntheticSpec(n_users=1, devices=("nexus4_1",),
                                               seconds_per_activity=8.0, seed=3))
    path = write_sensor_csv(recordings, tmp_path / "user.csv")
    assert main(["predict", "--bundle", str(bundles["plain"]), "--data", str(path),
                 "--source", "csv", "--split", "all", "--out", str(tmp_path / "pred")]) == 0
    metrics = json.loads((tmp_path / "pred" / "metrics.json").read_text())
    assert metrics["n_windows"] > 0 and metrics["split"] == "all"


def test_bad_bundles_and_options_exit_with_one_line(bundles, tmp_path, capsys):
    assert main(["predict", "--bundle", str(tmp_path / "none"), "--data", str(tmp_path)]) == 1
    assert "no such bundle" in capsys.readouterr().err
    # A folder that is not a prepared dataset is read as raw HHAR (--source auto).
    assert main(["predict", "--bundle", str(bundles["plain"]), "--data", str(tmp_path)]) == 1
    assert "expected at least one accelerometer" in capsys.readouterr().err
    assert main(["predict", "--bundle", str(bundles["plain"]), "--data", str(tmp_path),
                 "--source", "ts"]) == 2
    assert "sample rate" in capsys.readouterr().err
    assert main(["export", "--model", str(tmp_path), "--out", str(tmp_path / "b"),
                 "--quantize", "float16"]) == 2


def test_demo_runs_the_whole_chain(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--users", "3", "--seconds", "10", "--epochs",
                 "1", "--target-params", "0.5", "--fine-tune-epochs", "1", "--keras-verbose",
                 "0", "--set", "model.conv_filters=4", "--set", "model.merge_filters=4",
                 "--set", "model.gru_units=[6, 6]"]) == 0
    printed = capsys.readouterr().out
    assert "[6/6] live" in printed and "windows predicted live" in printed
    live = printed.split("windows predicted live")[0].split()[-1]
    predicted, windows = map(int, live.split("/"))
    assert predicted == windows > 0
    accuracies = printed.split("live accuracy ")[1].split(" on the same")[0]
    live_accuracy, offline_accuracy = accuracies.split(" = offline ")
    assert live_accuracy == offline_accuracy
    eces = printed.split("live ECE ")[1].split(" on the same")[0]
    live_ece, offline_ece = eces.split(", offline ECE ")
    assert live_ece == offline_ece
    assert (tmp_path / "bundle.zip").exists() and (tmp_path / "thin" / "run.json").exists()
    thin = json.loads((tmp_path / "thin" / "run.json").read_text())
    assert (thin["kind"], thin["head"]) == ("deepiot", "rdeepsense")
