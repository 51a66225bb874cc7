"""Fixtures for model and training tests: tiny models, tiny synthetic datasets."""

from __future__ import annotations

import pytest

from deepsense.config import ModelConfig
from deepsense.data.features import FeatureConfig
from deepsense.data.prepared import prepare_recordings, save_prepared
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings

TINY_MODEL = ModelConfig(conv_filters=4, merge_filters=4, gru_units=(6, 6))
TINY_MODEL_SETTINGS = ["model.conv_filters=4", "model.merge_filters=4", "model.gru_units=[6, 6]"]


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def tiny_dataset():
    """~200 windows: 3 users x 1 device x 6 activities x 12 s, windows every 1 s."""
    spec = SyntheticSpec(n_users=3, devices=("nexus4_1",), seconds_per_activity=12.0, n_gaps=1,
                         max_gap_s=1.0, seed=0)
    features = FeatureConfig(stride_s=1.0)
    return prepare_recordings(make_recordings(spec), features, activity_names=list(ACTIVITIES),
                              augment_copies=1)


@pytest.fixture(scope="session")
def tiny_data_dir(tiny_dataset, tmp_path_factory):
    return save_prepared(tiny_dataset, tmp_path_factory.mktemp("prepared"))


@pytest.fixture
def tiny_model_config() -> ModelConfig:
    return TINY_MODEL


@pytest.fixture
def tiny_model_settings() -> list[str]:
    """--set overrides that make the CLI build a tiny model."""
    return list(TINY_MODEL_SETTINGS)
