import json

import keras
import numpy as np
import pytest

from deepsense.config import load_config
from deepsense.run import load_run, split_rows
from rdeepsense.calibrate import BOUNDS, fold_temperature
from rdeepsense.predictors import make_logits
from rdeepsense.temperature import fit_temperature
from rdeepsense.train import fit_rdeepsense


def test_fold_temperature_divides_the_logits(small_dataset):
    from rdeepsense.train import build_compiled_rdeepsense

    config = load_config(None, ["model.conv_filters=4", "model.merge_filters=4",
                                "model.gru_units=[6, 6]", 'train.head="rdeepsense"'])
    model = build_compiled_rdeepsense(small_dataset, config, 6)
    x = small_dataset.x[:5]
    before = make_logits(model)(x)
    fold_temperature(model, 2.5)
    np.testing.assert_allclose(make_logits(model)(x), before / 2.5, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="temperature expected > 0"):
        fold_temperature(model, 0.0)


@pytest.fixture(scope="module")
def validation_user_run(small_dataset, small_data_dir, tiny_settings, tmp_path_factory):
    keras.utils.set_random_seed(0)
    config = load_config(None, [*tiny_settings, 'train.head="rdeepsense"',
                                'train.split="loso:c+val:b"'])
    return fit_rdeepsense(small_dataset, config, tmp_path_factory.mktemp("run"),
                          data_path=small_data_dir, verbose=0)


def test_a_split_with_validation_users_fits_and_folds_a_temperature(validation_user_run,
                                                                     small_dataset):
    info = json.loads((validation_user_run.run_dir / "run.json").read_text())
    calibration = info["calibration"]
    assert calibration["fitted_on"] == "validation users b"
    model, run_info = load_run(validation_user_run.run_dir)
    rows = split_rows(small_dataset, run_info.run_config.train).validation
    logits = make_logits(model)(small_dataset.x[rows])
    refit = fit_temperature(logits, small_dataset.activity[rows], BOUNDS)
    assert refit == pytest.approx(1.0, rel=1e-3), "the saved model is already calibrated there"
    assert calibration["validation_nll_after"] <= calibration["validation_nll_before"] + 1e-6


def test_without_validation_users_no_temperature_is_fitted(small_dataset, tiny_settings,
                                                           tmp_path):
    config = load_config(None, [*tiny_settings, 'train.head="rdeepsense"',
                                'train.split="loso:c"'])
    result = fit_rdeepsense(small_dataset, config, tmp_path, verbose=0)
    assert json.loads((result.run_dir / "run.json").read_text())["calibration"] is None
