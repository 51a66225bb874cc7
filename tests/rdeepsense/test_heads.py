import keras
import numpy as np
import pytest

from deepsense.config import ModelConfig
from deepsense.data.features import FeatureConfig
from deepsense.model import build_deepsense
from rdeepsense.heads import GaussianHead, add_uncertainty_head

TINY = ModelConfig(conv_filters=4, merge_filters=4, gru_units=(6, 6))


def test_gaussian_head_variance_stays_positive_and_finite_for_extreme_inputs():
    head = GaussianHead(min_variance=1e-6, max_variance=1e6)
    raw = np.array([-np.inf, -3.4e38, -1e4, -50.0, 0.0, 50.0, 1e4, 3.4e38, np.inf], np.float32)
    inputs = np.stack([np.zeros_like(raw), raw], axis=1)
    variance = keras.ops.convert_to_numpy(head(inputs))[:, 1]
    assert np.all(np.isfinite(variance))
    assert np.all(variance >= 1e-6) and np.all(variance <= 1e6)
    assert variance[0] == pytest.approx(1e-6) and variance[-1] == pytest.approx(1e6)
    assert np.all(np.diff(variance) >= 0), "monotone in the raw value"


def test_gaussian_head_rejects_bad_bounds():
    with pytest.raises(ValueError, match="min_variance"):
        GaussianHead(min_variance=0.0)


@pytest.mark.parametrize("task, n_outputs, width, last", [("activity", 6, 6, "probabilities"),
                                                          ("regression", 1, 2, "mean_variance")])
def test_head_keeps_the_body_and_adds_named_layers(task, n_outputs, width, last):
    base = build_deepsense(FeatureConfig(), n_outputs, task, TINY)
    model = add_uncertainty_head(base, task, n_outputs)
    assert model.output_shape == (None, width)
    names = [layer.name for layer in model.layers]
    assert names[-4:] == ["temporal_mean", "head_dropout", "logits", last]
    assert model.get_layer("gru2") is base.get_layer("gru2"), "the body is shared, unchanged"
    x = np.random.default_rng(0).normal(size=(3, 20, 120)).astype(np.float32) * 1e3
    out = model.predict(x, verbose=0)
    if task == "regression":
        assert np.all(np.isfinite(out)) and np.all(out[:, 1] > 0)
    else:
        np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-5)


def test_head_needs_a_deepsense_body():
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="temporal_mean"):
        add_uncertainty_head(keras.Model(inputs, keras.layers.Dense(2)(inputs)), "activity", 2)


def test_gaussian_head_saves_and_loads_without_custom_objects(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, GaussianHead(min_variance=1e-3, name="mean_variance")(inputs))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.get_layer("mean_variance").min_variance == 1e-3
    x = np.array([[1.0, 2.0, -30.0, 3.0]], np.float32)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_variance_scale_multiplies_the_bounded_variance_and_is_saved(tmp_path):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, GaussianHead(variance_scale=2.5, name="mean_variance")(inputs))
    x = np.array([[1.0, 2.0, -30.0, 3.0]], np.float32)
    plain = keras.Model(inputs, GaussianHead(name="plain")(inputs)).predict(x, verbose=0)
    out = model.predict(x, verbose=0)
    np.testing.assert_allclose(out[:, :2], plain[:, :2])
    np.testing.assert_allclose(out[:, 2:], 2.5 * plain[:, 2:], rtol=1e-6)
    model.save(tmp_path / "m.keras")
    assert keras.saving.load_model(tmp_path / "m.keras").get_layer(
        "mean_variance").variance_scale == 2.5


def test_a_saved_head_without_variance_scale_loads_with_1():
    config = GaussianHead(name="old").get_config()
    del config["variance_scale"]
    assert GaussianHead.from_config(config).variance_scale == 1.0


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_gaussian_head_rejects_a_bad_variance_scale(scale):
    with pytest.raises(ValueError, match="variance_scale expected a finite number > 0"):
        GaussianHead(variance_scale=scale)
