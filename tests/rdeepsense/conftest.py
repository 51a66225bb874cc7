"""Fixtures for rdeepsense tests: a tiny synthetic dataset and tiny model settings."""

from __future__ import annotations

import pytest

from deepsense.data.features import FeatureConfig
from deepsense.data.prepared import prepare_recordings, save_prepared
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings

_TINY_SETTINGS = ("model.conv_filters=4", "model.merge_filters=4", "model.gru_units=[6, 6]",
                  "train.epochs=1", "train.learning_rate=0.003")


@pytest.fixture(autouse=True)
def _seed():
    import keras

    keras.utils.set_random_seed(0)


@pytest.fixture(scope="session")
def small_dataset():
    """~150 windows: 3 users x 1 device x 6 activities x 10 s, a window every second."""
    spec = SyntheticSpec(n_users=3, devices=("nexus4_1",), seconds_per_activity=10.0, n_gaps=1,
                         max_gap_s=1.0, seed=0)
    return prepare_recordings(make_recordings(spec), FeatureConfig(stride_s=1.0),
                              activity_names=list(ACTIVITIES))


@pytest.fixture(scope="session")
def small_data_dir(small_dataset, tmp_path_factory):
    return save_prepared(small_dataset, tmp_path_factory.mktemp("rdeepsense-data"))


@pytest.fixture(scope="session")
def tiny_settings() -> tuple[str, ...]:
    """--set overrides for a DeepSense of ~2K parameters that trains one epoch in seconds."""
    return _TINY_SETTINGS
