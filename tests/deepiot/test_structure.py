import keras
import pytest

from deepiot.structure import NotPrunableError, PrunableStructure, read_structure
from deepsense.data.features import FeatureConfig
from deepsense.model import build_deepsense


def test_structure_groups_tie_the_stacked_convs(tiny_model):
    structure = read_structure(tiny_model)
    names = [g.name for g in structure.groups]
    assert names == ["acc_conv1", "gyro_conv1", "acc_conv2", "gyro_conv2", "acc_gyro_conv3",
                     "merge_conv1", "merge_conv2", "merge_conv3", "gru1", "gru2"]
    assert structure.group("acc_gyro_conv3").layers == ("acc_conv3", "gyro_conv3")
    assert structure.n_units == 5 * 6 + 3 * 5 + 7 + 4
    gru1 = structure.layer("gru1")
    # the merge output (2 sensors x 4 positions x 5 channels) is flattened into gru1
    assert (gru1.input_group, gru1.input_repeat) == ("merge_conv3", 2 * 4)
    assert structure.layer("logits").group is None
    assert structure.layer("merge_conv1").input_group == "acc_gyro_conv3"
    assert PrunableStructure.from_dict(structure.to_dict()) == structure


def test_one_sensor_model_has_an_untied_last_conv(tiny_config):
    model = build_deepsense(FeatureConfig(sensors=("acc",)), 3, config=tiny_config)
    structure = read_structure(model)
    assert structure.group("acc_conv3").layers == ("acc_conv3",)
    assert structure.layer("gru1").input_repeat == 4


def test_a_model_that_is_not_deepsense_is_refused():
    inputs = keras.Input((20, 120))
    model = keras.Model(inputs, keras.layers.Dense(3, name="logits")(inputs))
    with pytest.raises(NotPrunableError, match="no per-sensor conv"):
        read_structure(model)
