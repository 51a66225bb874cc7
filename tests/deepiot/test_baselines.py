import numpy as np

from deepiot.baselines import l1_norm_masks, magnitude_masks, magnitude_prune
from deepiot.cost import parameter_fraction
from deepiot.finetune import FineTuneSettings
from deepiot.masks import kept_widths
from deepiot.structure import read_structure
from deepsense.model import count_parameters


def test_l1_masks_keep_the_largest_units_within_budget(tiny_model):
    structure = read_structure(tiny_model)
    masks = l1_norm_masks(tiny_model, structure, 0.3)
    assert parameter_fraction(structure, kept_widths(masks)) <= 0.3
    assert set(np.unique(np.concatenate(list(masks.values())))) <= {0.0, 1.0}
    kernel = tiny_model.get_layer("merge_conv2").kernel.numpy()
    norms = np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
    kept = masks["merge_conv2"] > 0
    assert norms[kept].min() >= norms[~kept].max()


def test_magnitude_masks_keep_the_largest_relative_weights():
    weights = [np.array([[1.0, -3.0], [0.5, 2.0]]), np.array([[0.01, -0.02]])]
    masks = magnitude_masks(weights, 3)
    assert sum(int(m.sum()) for m in masks) == 3
    assert masks[1].tolist() == [[0.0, 1.0]]  # large relative to its own kernel's RMS


def test_magnitude_pruning_keeps_the_budget_and_the_shapes(tiny_model, rng, features):
    x = rng.normal(size=(24, features.n_intervals, features.n_features)).astype(np.float32)
    y = rng.integers(0, 6, 24)
    budget = count_parameters(tiny_model)["trainable"] // 3
    result = magnitude_prune(tiny_model, x, y, x[:8], y[:8], budget,
                             FineTuneSettings(epochs=2, batch_size=8), update_every=1)
    assert result.nonzero_parameters <= budget
    assert [w.shape for w in result.model.weights] == [w.shape for w in tiny_model.weights]
    assert result.sparse_bytes < result.dense_bytes
    assert len(result.history) == 2
