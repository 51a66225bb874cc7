import json

import numpy as np

from deepsense.cli import main


def test_train_regression_with_the_rdeepsense_head_then_evaluate(small_data_dir, tiny_settings,
                                                                 tmp_path, capsys):
    run = tmp_path / "run"
    settings = [arg for s in tiny_settings for arg in ("--set", s)]
    assert main(["train", "--data", str(small_data_dir), "--out", str(run), "--task",
                 "regression", "--split", "random:0.3", "--head", "rdeepsense",
                 "--scoring-weight", "0.75", *settings]) == 0
    info = json.loads((run / "run.json").read_text())
    assert info["head"] == "rdeepsense" and info["config"]["train"]["scoring_weight"] == 0.75
    assert info["outputs"] == {"layout": "gaussian_mean_variance", "width": 2, "mean": [0, 1],
                               "variance": [1, 2]}
    assert main(["evaluate", "--model", str(run)]) == 0
    assert "coverage of the 50/90/95% intervals" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["head"] == "rdeepsense"
    assert np.isfinite(metrics["nll"]) and metrics["mean_std"] > 0
    assert 0 <= metrics["coverage_50"] <= metrics["coverage_90"] <= metrics["coverage_95"] <= 1


def test_bad_scoring_weight_exits_2(small_data_dir, tmp_path, capsys):
    assert main(["train", "--data", str(small_data_dir), "--out", str(tmp_path),
                 "--head", "rdeepsense", "--scoring-weight", "2"]) == 2
    assert "train.scoring_weight" in capsys.readouterr().err
