import numpy as np
import pytest

from deepiot.cost import parameter_fraction
from deepiot.masks import check_masks, keep_mask, kept_widths, threshold_for_budget
from deepiot.structure import read_structure


def test_keep_mask_scales_kept_units_and_keeps_one_per_group():
    probs = {"a": np.array([0.9, 0.2, 0.6], np.float32), "b": np.array([0.1, 0.3], np.float32)}
    masks = keep_mask(probs, 0.5)
    np.testing.assert_allclose(masks["a"], [0.9, 0.0, 0.6])
    np.testing.assert_allclose(masks["b"], [0.0, 0.3])  # the likeliest unit survives
    assert keep_mask(probs, 0.5, scale_by_probability=False)["a"].tolist() == [1.0, 0.0, 1.0]
    assert kept_widths(masks) == {"a": 2, "b": 1}


def test_threshold_for_budget_is_the_least_that_meets_the_target(tiny_model, rng):
    structure = read_structure(tiny_model)
    probs = {g.name: rng.uniform(0, 1, g.n_units).astype(np.float32) for g in structure.groups}

    def fraction(t):
        return parameter_fraction(structure, kept_widths(keep_mask(probs, t)))

    threshold = threshold_for_budget(structure, probs, 0.3, 0.9)
    assert fraction(threshold) <= 0.3
    below = max(p for v in probs.values() for p in v if p < threshold)
    assert fraction(float(below)) > 0.3
    assert threshold_for_budget(structure, probs, 1e-6, 0.9) is None


def test_check_masks_names_the_problem(tiny_model):
    structure = read_structure(tiny_model)
    masks = {g.name: np.ones(g.n_units, np.float32) for g in structure.groups}
    check_masks(structure, masks)
    with pytest.raises(ValueError, match="one vector per unit group"):
        check_masks(structure, {"gru1": masks["gru1"]})
    masks["gru1"] = np.ones(3, np.float32)
    with pytest.raises(ValueError, match="expected shape"):
        check_masks(structure, masks)
