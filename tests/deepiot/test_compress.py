import numpy as np
import pytest

from deepsense.batchnorm import recalibrate_batch_norm
from deepiot.compress import (STOP_EXTENDED, STOP_FLOOR, STOP_TARGET, CompressSettings,
                              compress)
from deepiot.compressor import build_compressor, group_matrix
from deepiot.cost import parameter_fraction
from deepiot.masks import check_masks, kept_widths
from deepiot.schedule import ThresholdSchedule
from deepiot.structure import read_structure


@pytest.fixture
def tiny_data(rng, features):
    x = rng.normal(size=(40, features.n_intervals, features.n_features)).astype(np.float32)
    return x, rng.integers(0, 6, 40)


def test_compressor_emits_one_probability_per_unit(tiny_model):
    structure = read_structure(tiny_model)
    compressor = build_compressor(tiny_model, structure, hidden_units=8, seed=0)
    matrices = [group_matrix(tiny_model, structure, g.name) for g in structure.groups]
    assert tuple(matrices[-1].shape) == (3 * (7 + 4 + 2), 4)  # gru2: 7 inputs, 4 units
    probs = compressor(matrices)
    assert [int(p.shape[0]) for p in probs] == [g.n_units for g in structure.groups]
    assert all(0 < float(v) < 1 for p in probs for v in np.asarray(p))


def test_compress_reaches_the_target_and_leaves_the_model_alone(tiny_model, tiny_data):
    x, y = tiny_data
    before = [w.copy() for w in tiny_model.get_weights()]
    result = compress(tiny_model, x, y, x[:12], y[:12],
                      schedule=ThresholdSchedule(final=0.8, n_steps=3, step_interval=2),
                      settings=CompressSettings(target_params=0.4, batch_size=8, hidden_units=8))
    structure = read_structure(result.critic)
    check_masks(structure, result.masks)
    assert result.stop_reason in (STOP_TARGET, STOP_EXTENDED)
    assert parameter_fraction(structure, kept_widths(result.masks)) <= 0.4
    assert result.history and result.history[-1]["iteration"] == result.iterations
    assert all(np.array_equal(a, b) for a, b in zip(before, tiny_model.get_weights()))


def test_accuracy_floor_restores_the_last_state_above_it(tiny_model, tiny_data):
    x, y = tiny_data
    result = compress(tiny_model, x, y, x[:12], y[:12],
                      schedule=ThresholdSchedule(final=0.8, n_steps=3, step_interval=2),
                      settings=CompressSettings(target_params=0.05, min_accuracy=1.0,
                                                batch_size=8, hidden_units=8))
    assert result.stop_reason == STOP_FLOOR
    assert all(np.all(m == 1.0) for m in result.masks.values())  # nothing was ever accepted


def test_recalibrated_statistics_are_those_of_the_data(tiny_model, windows):
    import keras

    recalibrate_batch_norm(tiny_model, windows)
    conv = keras.Model(tiny_model.inputs, tiny_model.get_layer("acc_conv1").output)
    outputs = np.asarray(conv(windows)).reshape(-1, 6)
    layer = tiny_model.get_layer("acc_conv1_bn")
    np.testing.assert_allclose(layer.moving_mean.numpy(), outputs.mean(axis=0), atol=1e-5)
    np.testing.assert_allclose(layer.moving_variance.numpy(), outputs.var(axis=0), rtol=1e-4)


def test_threshold_keeps_rising_past_the_schedule_in_steps(tiny_model, tiny_data):
    x, y = tiny_data
    schedule = ThresholdSchedule(final=0.2, n_steps=2, step_interval=2)
    result = compress(tiny_model, x, y, x[:12], y[:12], schedule=schedule,
                      settings=CompressSettings(target_params=1e-4, batch_size=8, hidden_units=8,
                                                patience_steps=1, extend_steps=3,
                                                extend_threshold=False))
    assert result.stop_reason == "schedule ended above target"  # 1e-4 cannot be met
    thresholds = [record["threshold"] for record in result.history]
    np.testing.assert_allclose(thresholds, [0.0, 0.1, 0.2, 0.3, 0.4, 0.5], atol=1e-4)
    assert result.iterations == 12


@pytest.mark.parametrize("bad", [{"compressor_learning_rate": 0.0},
                                 {"critic_learning_rate": -1e-4}, {"extend_steps": -1}])
def test_compress_settings_reject_bad_values(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        CompressSettings(**bad)
