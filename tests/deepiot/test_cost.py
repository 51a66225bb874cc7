import numpy as np
import pytest

from deepiot.cost import model_cost, parameter_fraction
from deepiot.structure import read_structure
from deepsense.config import ModelConfig
from deepsense.data.features import FeatureConfig
from deepsense.model import build_deepsense, count_parameters


def test_cost_of_the_full_hhar_model_matches_keras():
    model = build_deepsense(FeatureConfig(), 6)
    cost = model_cost(read_structure(model))
    assert cost["trainable"] == count_parameters(model)["trainable"] == 516_726
    assert cost["total"] == count_parameters(model)["total"]
    assert cost["bytes"] == 4 * cost["total"]
    # gru1 (512 inputs, 120 units) over 20 intervals: 2 * 20 * 3 * 120 * (512 + 120)
    assert cost["layers"]["gru1"]["flops"] == 2 * 20 * 3 * 120 * 632


def test_cost_at_any_widths_matches_the_built_model(rng, tiny_config, features):
    structure = read_structure(build_deepsense(features, 5, config=tiny_config))
    for _ in range(3):
        widths = {g.name: int(rng.integers(1, g.n_units + 1)) for g in structure.groups}
        model = build_deepsense(features, 5, config=tiny_config,
                                widths=structure.layer_widths(widths))
        cost = model_cost(structure, widths)
        assert cost["trainable"] == count_parameters(model)["trainable"]
        assert cost["non_trainable"] == count_parameters(model)["non_trainable"]
        assert 0 < parameter_fraction(structure, widths) <= 1


def test_widths_are_checked(features):
    with pytest.raises(ValueError, match="unknown layer"):
        build_deepsense(features, 6, widths={"conv9": 3})
    with pytest.raises(ValueError, match="equal widths"):
        build_deepsense(features, 6, widths={"acc_conv3": 3, "gyro_conv3": 4})
    with pytest.raises(ValueError, match="positive integers"):
        build_deepsense(features, 6, widths={"gru1": 0})
    model = build_deepsense(features, 6, config=ModelConfig(conv_filters=4, merge_filters=4,
                                                            gru_units=(5, 5)),
                            widths={"gru2": np.int64(2)})
    assert model.get_layer("gru2").units == 2
