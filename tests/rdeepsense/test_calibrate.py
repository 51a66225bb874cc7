import json

import keras
import numpy as np
import pytest

from deepsense.config import load_config
from edge.calibration import gaussian_nll
from deepsense.run import load_run, split_rows
from rdeepsense.calibrate import (BOUNDS, SCALE_BOUNDS, calibrate_on_validation_users,
                                  fold_temperature, match_variance_scale, scale_variance)
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


def _regression_config(tiny_settings, split: str = "loso:c+val:b"):
    return load_config(None, [*tiny_settings, 'train.head="rdeepsense"',
                              'train.task="regression"', f'train.split="{split}"'])


def test_regression_variance_is_scaled_by_the_validation_fit(small_dataset, tiny_settings):
    from rdeepsense.train import build_compiled_rdeepsense

    config = _regression_config(tiny_settings)
    model = build_compiled_rdeepsense(small_dataset, config, 1)
    x = small_dataset.x
    before = model.predict(x, verbose=0)  # also caches Keras's compiled predict function
    calibration = calibrate_on_validation_users(model, small_dataset, config.train)
    after = model.predict(x, verbose=0)
    scale = calibration["variance_scale"]
    assert calibration["fitted_on"] == "validation users b"
    assert model.get_layer("mean_variance").variance_scale == pytest.approx(scale, rel=1e-6)
    np.testing.assert_allclose(after[:, 0], before[:, 0])
    np.testing.assert_allclose(after[:, 1], scale * before[:, 1], rtol=1e-5)
    rows = split_rows(small_dataset, config.train).validation
    y = small_dataset.labels("regression")[rows].reshape(-1)
    mean, variance = before[rows, 0], before[rows, 1]
    z2 = np.mean((y - mean) ** 2 / variance)
    assert scale == pytest.approx(np.clip(z2, *SCALE_BOUNDS), rel=1e-5)
    nll_before, nll_after = gaussian_nll(y, mean, variance), gaussian_nll(y, mean, scale * variance)
    assert nll_after <= nll_before + 1e-9
    assert calibration["validation_nll_before"] == pytest.approx(nll_before, rel=1e-5)
    assert calibration["validation_nll_after"] == pytest.approx(nll_after, rel=1e-5)
    assert {"validation_coverage_50_before", "validation_coverage_95_after"} <= set(calibration)
    # A refit multiplies the scale already there; the calibrated model refits to ~1.
    again = calibrate_on_validation_users(model, small_dataset, config.train)
    assert again["variance_scale"] == pytest.approx(1.0, rel=1e-4)
    assert model.get_layer("mean_variance").variance_scale == pytest.approx(scale, rel=1e-4)


def test_a_regression_run_with_validation_users_stores_its_scale(small_dataset, small_data_dir,
                                                                 tiny_settings, tmp_path):
    result = fit_rdeepsense(small_dataset, _regression_config(tiny_settings), tmp_path,
                            data_path=small_data_dir, verbose=0)
    calibration = json.loads((result.run_dir / "run.json").read_text())["calibration"]
    model, _ = load_run(result.run_dir)
    assert model.get_layer("mean_variance").variance_scale == pytest.approx(
        calibration["variance_scale"], rel=1e-6)
    assert calibration["validation_nll_after"] <= calibration["validation_nll_before"] + 1e-6


def test_a_regression_split_without_validation_users_keeps_the_model(small_dataset,
                                                                     tiny_settings):
    from rdeepsense.train import build_compiled_rdeepsense

    config = _regression_config(tiny_settings, "loso:c")
    model = build_compiled_rdeepsense(small_dataset, config, 1)
    assert calibrate_on_validation_users(model, small_dataset, config.train) is None
    assert model.get_layer("mean_variance").variance_scale == 1.0


def test_validation_users_only_widen_the_intervals():
    """Like T >= 1: one validation user the model fits well must not narrow every user's
    intervals (synthetic, user e fitted, user f tested: NLL -0.02 -> 0.90 when it could)."""
    assert SCALE_BOUNDS[0] == 1.0


def test_matching_the_original_undoes_a_wider_copy(small_dataset, tiny_settings):
    from rdeepsense.train import build_compiled_rdeepsense

    config = _regression_config(tiny_settings)
    original = build_compiled_rdeepsense(small_dataset, config, 1)
    copy = keras.models.clone_model(original)
    copy.set_weights(original.get_weights())
    scale_variance(copy, 2.5)
    x = small_dataset.x[:40]
    assert match_variance_scale(copy, original, x) == pytest.approx(1 / 2.5, rel=1e-4)
    np.testing.assert_allclose(copy.predict(x, verbose=0), original.predict(x, verbose=0),
                               rtol=1e-4)
    # KL-optimal with different means: mean((var_o + (mean_o - mean_c)^2) / var_c).
    out_o = original.predict(x, verbose=0)
    dense = copy.get_layer("logits")
    dense.bias.assign(dense.bias + np.array([0.3, 0.0], np.float32))
    copy.predict_function = None
    out_c = copy.predict(x, verbose=0)
    expected = np.mean((out_o[:, 1] + (out_o[:, 0] - out_c[:, 0]) ** 2) / out_c[:, 1])
    assert match_variance_scale(copy, original, x) == pytest.approx(expected, rel=1e-4)
