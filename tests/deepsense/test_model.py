import keras
import numpy as np
import pytest

from deepsense.config import ModelConfig
from deepsense.data.features import FeatureConfig
from deepsense.layers import IntervalMask, MaskedTemporalMean, SensorSlice
from deepsense.model import LOGITS_NAME, build_deepsense, count_parameters, read_topology


def test_default_model_matches_the_released_hhar_code_size():
    model = build_deepsense(FeatureConfig(), 6)
    # released kernels (2,8),(2,6),(2,4): 516,726 trainable (see README for the paper's 472.5K)
    assert count_parameters(model)["trainable"] == 516_726
    paper_like = build_deepsense(FeatureConfig(), 6, config=ModelConfig(
        merge_kernel_sizes=((2, 8), (1, 6), (1, 4))))
    assert count_parameters(paper_like)["trainable"] == 475_766


@pytest.mark.parametrize("sensors, task, n_outputs", [(("acc", "gyro"), "activity", 6),
                                                      (("acc",), "user", 9),
                                                      (("acc", "gyro", "mag"), "regression", 1)])
def test_model_shapes_for_any_sensor_set(sensors, task, n_outputs, rng, tiny_model_config):
    features = FeatureConfig(sensors=sensors)
    model = build_deepsense(features, n_outputs, task, tiny_model_config)
    x = rng.normal(size=(3, 20, features.n_features)).astype("float32")
    y = model.predict(x, verbose=0)
    assert y.shape == (3, n_outputs)
    if task != "regression":
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-5)
    names = {layer.name for layer in model.layers}
    assert {f"{s}_conv1" for s in sensors} <= names
    assert {"merge_conv1", "gru1", "gru2", "logits"} <= names


def test_padded_intervals_change_nothing(rng, tiny_model_config):
    """Masked GRU + masked mean: moving padding around the valid intervals is invisible."""
    model = build_deepsense(FeatureConfig(), 6, config=tiny_model_config)
    valid = rng.normal(size=(8, 120)).astype("float32")
    front = np.zeros((1, 20, 120), "float32")
    front[0, :8] = valid
    spread = np.zeros((1, 20, 120), "float32")
    spread[0, [0, 3, 4, 9, 10, 11, 15, 19]] = valid
    np.testing.assert_allclose(model(front, training=False), model(spread, training=False),
                               atol=1e-6)
    other = front.copy()
    other[0, 2] += 1.0
    assert not np.allclose(model(front, training=False), model(other, training=False))


def test_model_saves_and_loads_without_custom_objects(tmp_path, rng, tiny_model_config):
    model = build_deepsense(FeatureConfig(), 4, config=tiny_model_config)
    x = rng.normal(size=(2, 20, 120)).astype("float32")
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("layer, inputs", [
    (IntervalMask(), (np.array([[[0.0, 0.0], [0.0, 1.0]]], "float32"),)),
    (SensorSlice(2, 3), (np.arange(10, dtype="float32").reshape(1, 2, 5),)),
    (MaskedTemporalMean(), (np.array([[[1.0], [3.0], [100.0]]], "float32"),
                            np.array([[True, True, False]]))),
])
def test_layer_config_round_trip_and_values(layer, inputs):
    clone = type(layer).from_config(layer.get_config())
    out = np.asarray(clone(*inputs))
    np.testing.assert_array_equal(out, np.asarray(layer(*inputs)))
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"].startswith("deepsense>")
    if isinstance(layer, MaskedTemporalMean):
        np.testing.assert_allclose(out, [[2.0]])  # (1 + 3) / 2: the padded 100 is ignored
    if isinstance(layer, IntervalMask):
        assert out.tolist() == [[False, True]]
    if isinstance(layer, SensorSlice):
        assert out.shape == (1, 2, 3, 1)


def test_masked_mean_of_an_empty_window_is_zero_not_nan():
    out = MaskedTemporalMean()(np.ones((1, 3, 2), "float32"), np.zeros((1, 3), bool))
    np.testing.assert_array_equal(np.asarray(out), [[0.0, 0.0]])


def test_build_rejects_too_few_features_for_the_convs():
    with pytest.raises(ValueError):
        build_deepsense(FeatureConfig(n_points=2), 6)


def test_read_topology_names_every_layer_group(tiny_model_config):
    features = FeatureConfig(sensors=("acc", "gyro"))
    model = build_deepsense(features, 6, "activity", tiny_model_config)
    topology = read_topology(model)
    assert topology.sensors == ("acc", "gyro")
    assert topology.convs_of("gyro") == ("gyro_conv1", "gyro_conv2", "gyro_conv3")
    assert topology.merge_convs == ("merge_conv1", "merge_conv2", "merge_conv3")
    assert topology.grus == ("gru1", "gru2")
    assert topology.gru_dropouts == ("gru1_dropout", "gru2_dropout")
    assert (topology.logits, topology.output) == (LOGITS_NAME, "probabilities")
    assert read_topology(build_deepsense(features, 1, "regression", tiny_model_config)).output \
        == LOGITS_NAME


def test_read_topology_rejects_other_models():
    inputs = keras.Input((4,))
    with pytest.raises(ValueError, match="no per-sensor conv"):
        read_topology(keras.Model(inputs, keras.layers.Dense(2)(inputs)))
