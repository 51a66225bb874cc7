"""Automatic augmentation: small datasets get noisy copies, large ones none."""

from deepsense.data.augment import MAX_AUGMENT_COPIES, auto_augment_copies
from deepsense.data.features import FeatureConfig
from deepsense.data.synthetic import SyntheticSpec, make_recordings


def test_auto_augmentation_grows_small_datasets_only():
    features = FeatureConfig()
    small = make_recordings(SyntheticSpec(n_users=1, devices=("nexus4_1",),
                                          seconds_per_activity=10.0))
    large = make_recordings(SyntheticSpec(n_users=6, seconds_per_activity=60.0))
    assert auto_augment_copies(small, features) == MAX_AUGMENT_COPIES
    assert auto_augment_copies(large, FeatureConfig(stride_s=1.0)) == 0  # ~6,000 windows
    assert auto_augment_copies([], features) == 0
