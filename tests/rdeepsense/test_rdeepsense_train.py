import json
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from deepsense.config import load_config
from deepsense.errors import ConfigError
from deepsense.evaluate import evaluate_run
from deepsense.train import fit
from rdeepsense.losses import ClassificationScoringLoss
from rdeepsense.train import fit_rdeepsense


@pytest.fixture(scope="module")
def rdeepsense_run(small_dataset, small_data_dir, tiny_settings, tmp_path_factory):
    keras.utils.set_random_seed(0)
    config = load_config(None, [*tiny_settings, 'train.head="rdeepsense"',
                                "train.scoring_weight=0.25", 'train.split="loso:c"'])
    return fit_rdeepsense(small_dataset, config, tmp_path_factory.mktemp("run"),
                          data_path=small_data_dir, verbose=0)


def test_run_json_records_the_head_and_the_output_layout(rdeepsense_run):
    info = json.loads((rdeepsense_run.run_dir / "run.json").read_text())
    assert info["kind"] == "rdeepsense" and info["head"] == "rdeepsense"
    assert info["outputs"] == {"layout": "probabilities", "width": 6}
    assert info["config"]["train"]["scoring_weight"] == 0.25


def test_trained_model_loads_without_custom_objects(rdeepsense_run, small_dataset):
    loaded = keras.saving.load_model(rdeepsense_run.run_dir / "model.keras")
    assert isinstance(loaded.loss, ClassificationScoringLoss) and loaded.loss.weight == 0.25
    x = small_dataset.x[:4]
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               rdeepsense_run.model.predict(x, verbose=0), atol=1e-6)


def test_a_fresh_process_loads_the_run_without_custom_objects(rdeepsense_run):
    """load_run imports the modules run.json names; nothing is passed to load_model."""
    code = ("import sys; from deepsense.run import load_run; model, _ = load_run(sys.argv[1]); "
            "print(type(model.loss).__name__, model.loss.weight, model.output_shape)")
    out = subprocess.run([sys.executable, "-c", code, str(rdeepsense_run.run_dir)], check=True,
                         capture_output=True, text=True, cwd=Path(__file__).parents[2]).stdout
    assert out.split("\n")[-2] == "ClassificationScoringLoss 0.25 (None, 6)"


def test_evaluate_reports_calibration_and_a_reliability_diagram(rdeepsense_run, tmp_path):
    metrics = evaluate_run(rdeepsense_run.run_dir, out_dir=tmp_path)
    assert metrics["head"] == "rdeepsense"
    assert metrics["nll"] > 0 and 0 <= metrics["ece"] <= 1 and 0 <= metrics["brier"] <= 2
    assert (tmp_path / "reliability_diagram.png").read_bytes()[:4] == b"\x89PNG"


def test_plain_softmax_runs_get_calibration_metrics_too(small_dataset, small_data_dir,
                                                         tiny_settings, tmp_path):
    config = load_config(None, [*tiny_settings, 'train.split="loso:c"'])
    fit(small_dataset, config, tmp_path, data_path=small_data_dir, verbose=0)
    metrics = evaluate_run(tmp_path)
    assert metrics["head"] == "softmax" and {"nll", "ece", "brier"} <= set(metrics)


def test_plain_fit_refuses_the_rdeepsense_head(small_dataset, tiny_settings, tmp_path):
    config = load_config(None, [*tiny_settings, 'train.head="rdeepsense"'])
    with pytest.raises(ConfigError, match="fit_rdeepsense"):
        fit(small_dataset, config, tmp_path, verbose=0)
    with pytest.raises(ConfigError, match="train.head"):
        fit_rdeepsense(small_dataset, load_config(None, list(tiny_settings)), tmp_path, verbose=0)


@pytest.mark.parametrize("override, message", [
    ('train.head="bayes"', "train.head expected one of"),
    ("train.scoring_weight=1.5", "train.scoring_weight expected a weight in"),
    ("train.scoring_weight=-0.1", "train.scoring_weight expected a weight in"),
])
def test_config_validates_the_head_settings(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(None, [override])


def test_config_refuses_mse_only_regression():
    with pytest.raises(ConfigError, match="regression"):
        load_config(None, ['train.task="regression"', "train.scoring_weight=0"])
