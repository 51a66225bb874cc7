import keras
import numpy as np
import pytest

from deepiot.cost import model_cost
from deepiot.masked import MaskedNetwork
from deepiot.masks import full_masks, kept_widths
from deepiot.structure import read_structure
from deepiot.thin import thin_model
from deepsense.data.features import FeatureConfig
from deepsense.model import build_deepsense, count_parameters

from conftest import randomize_batch_norm


def random_masks(structure, rng, keep=0.5):
    """Scales in [0.2, 1.5) with about `keep` of the units kept (at least one per group)."""
    masks = {}
    for group in structure.groups:
        scales = rng.uniform(0.2, 1.5, group.n_units).astype(np.float32)
        scales[rng.random(group.n_units) > keep] = 0.0
        scales[rng.integers(group.n_units)] = 1.0
        masks[group.name] = scales
    return masks


@pytest.mark.parametrize("keep", [0.3, 0.7])
def test_thinned_model_equals_the_masked_model(tiny_model, features, tiny_config, windows,
                                               rng, keep):
    structure = read_structure(tiny_model)
    masks = random_masks(structure, rng, keep)
    network = MaskedNetwork(tiny_model, structure)
    thinned = thin_model(tiny_model, masks, features=features, config=tiny_config,
                         task="activity")
    expected = network.predict(windows, masks)
    got = np.asarray(thinned(windows, training=False))
    assert np.max(np.abs(got - expected)) <= 1e-5
    # the parameter count is the one DeepIoT reports, and smaller than the original's
    assert count_parameters(thinned) == {
        k: model_cost(structure, kept_widths(masks))[k]
        for k in ("trainable", "non_trainable", "total")}
    assert count_parameters(thinned)["trainable"] < count_parameters(tiny_model)["trainable"]
    assert [layer.name for layer in thinned.layers] == [layer.name for layer in tiny_model.layers]


def test_masked_model_with_all_units_is_the_original(tiny_model, windows):
    structure = read_structure(tiny_model)
    network = MaskedNetwork(tiny_model, structure)
    # the critic trains the model's own weights, with the model's own L2 terms
    assert sorted(v.path for v in network.model.trainable_variables) == sorted(
        v.path for v in tiny_model.trainable_variables)
    assert len(network.model.losses) == len(tiny_model.losses)
    np.testing.assert_allclose(network.predict(windows, full_masks(structure)),
                               np.asarray(tiny_model(windows, training=False)), atol=1e-6)


def test_one_sensor_thinning_and_saving(tmp_path, tiny_config, rng):
    features = FeatureConfig(sensors=("acc",))
    model = build_deepsense(features, 4, config=tiny_config)
    randomize_batch_norm(model, rng)
    structure = read_structure(model)
    masks = random_masks(structure, rng)
    thinned = thin_model(model, masks, features=features, config=tiny_config, task="user")
    x = rng.normal(size=(3, 20, features.n_features)).astype(np.float32)
    expected = MaskedNetwork(model, structure).predict(x, masks)
    thinned.save(tmp_path / "thin.keras")
    loaded = keras.saving.load_model(tmp_path / "thin.keras")
    assert np.max(np.abs(loaded.predict(x, verbose=0) - expected)) <= 1e-5


def test_masks_that_remove_a_whole_group_are_refused(tiny_model, features, tiny_config):
    masks = full_masks(read_structure(tiny_model))
    masks["gru2"][:] = 0.0
    with pytest.raises(ValueError, match="removes every unit"):
        thin_model(tiny_model, masks, features=features, config=tiny_config, task="activity")


@pytest.mark.parametrize("task, n_outputs", [("activity", 6), ("regression", 1)])
def test_thinned_rdeepsense_model_keeps_its_head(features, tiny_config, windows, rng, task,
                                                 n_outputs):
    from rdeepsense.heads import add_uncertainty_head

    base = build_deepsense(features, n_outputs, task, tiny_config)
    model = add_uncertainty_head(base, task, n_outputs, dropout=0.3)
    if task == "regression":
        model.get_layer("mean_variance").variance_scale = 2.5  # a calibrated head is kept
    randomize_batch_norm(model, rng)
    structure = read_structure(model)
    masks = random_masks(structure, rng, 0.5)
    thinned = thin_model(model, masks, features=features, config=tiny_config, task=task)
    expected = MaskedNetwork(model, structure).predict(windows, masks)
    got = np.asarray(thinned(windows, training=False))
    assert got.shape == (len(windows), 6 if task == "activity" else 2)
    assert np.max(np.abs(got - expected)) <= 1e-5
    assert [layer.name for layer in thinned.layers] == [layer.name for layer in model.layers]
    assert thinned.get_layer("head_dropout").rate == 0.3
