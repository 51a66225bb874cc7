import numpy as np
import pytest

from deepsense.data.features import (FeatureConfig, interval_spectra, make_windows,
                                     window_features, window_starts)
from deepsense.data.recording import Recording, SensorStream

ONE_AXIS = FeatureConfig(sensors=("acc",), n_axes=1, interval_s=1.0, n_intervals=2, n_points=4,
                         min_valid_intervals=1, min_samples_per_interval=2)


def test_interval_spectra_matches_hand_computed_fft():
    stream = SensorStream([0.25, 0.75, 1.5], [1.0, 3.0, 7.0])
    spectra, valid = interval_spectra(stream, np.array([0.0, 1.0]), ONE_AXIS)
    # interval [0, 1): points at 0, 1/3, 2/3, 1 -> 1 (held), 4/3, 8/3, 3 (held)
    # DFT: X0 = 8, X1 = -5/3 + 5/3 i, X2 = -2/3, X3 = -5/3 - 5/3 i
    expected = [8, 0, -5 / 3, 5 / 3, -2 / 3, 0, -5 / 3, -5 / 3]
    np.testing.assert_allclose(spectra[0], expected, atol=1e-12)
    # interval [1, 2) holds a single sample: invalid, all zeros
    assert valid.tolist() == [True, False]
    assert not spectra[1].any()


def test_interval_layout_is_bin_major_then_axis_then_re_im():
    config = FeatureConfig(sensors=("acc",), interval_s=1.0, n_intervals=1, n_points=4,
                           min_valid_intervals=1)
    t = np.linspace(0, 0.9, 10)
    stream = SensorStream(t, np.tile([1.0, 2.0, 3.0], (10, 1)))
    spectra, _ = interval_spectra(stream, np.array([0.0]), config)
    expected = np.zeros(24)
    expected[[0, 2, 4]] = [4.0, 8.0, 12.0]  # bin 0 re of x, y, z; constant signal
    np.testing.assert_allclose(spectra[0], expected, atol=1e-12)


def _recording(rng, seconds=12.0, gap=(4.0, 6.0)):
    streams = {}
    for name, rate in (("acc", 100.0), ("gyro", 80.0)):
        t = np.cumsum(rng.uniform(0.8, 1.2, int(seconds * rate)) / rate)
        t = t[(t < gap[0]) | (t > gap[1])]
        streams[name] = SensorStream(t, rng.normal(size=(t.size, 3)))
    return Recording("dev1", streams, user="u", label="walk")


def test_make_windows_masks_gaps_and_zero_pads(rng):
    config = FeatureConfig(stride_s=1.0)
    windows = make_windows(_recording(rng), config)
    assert windows.x.shape[1:] == (20, 120)
    assert windows.x.dtype == np.float32
    # padded intervals are exactly zero, valid ones are not: the model's mask convention
    np.testing.assert_array_equal(windows.mask, np.any(windows.x != 0, axis=-1))
    assert (~windows.mask).any(), "the 2 s gap must leave masked intervals"
    assert (windows.mask.sum(axis=1) >= config.min_valid_intervals).all()


def test_make_windows_drops_windows_with_too_few_valid_intervals(rng):
    config = FeatureConfig(stride_s=1.0, min_valid_intervals=20)
    windows = make_windows(_recording(rng), config)
    assert windows.n_dropped > 0
    assert windows.mask.all()


def test_live_prefix_gives_the_same_tensor_as_the_file(rng):
    """What the gateway sees (samples up to the window's end) equals the offline tensor."""
    config = FeatureConfig(stride_s=1.25)
    recording = _recording(rng)
    offline = make_windows(recording, config)
    for k, start in enumerate(offline.start_s):
        end = start + config.window_s
        live = {name: SensorStream(s.t_s[s.t_s < end], s.values[s.t_s < end])
                for name, s in recording.streams.items()}
        x, mask = window_features(live, start, config)
        np.testing.assert_array_equal(x, offline.x[k])
        np.testing.assert_array_equal(mask, offline.mask[k])


def test_window_starts_only_complete_windows():
    config = FeatureConfig(interval_s=0.5, n_intervals=4, stride_s=1.0, min_valid_intervals=2)
    np.testing.assert_allclose(window_starts(10.0, 14.0, config), [10.0, 11.0, 12.0])
    assert window_starts(10.0, 11.0, config).size == 0


@pytest.mark.parametrize("kwargs", [{"n_points": 1}, {"interval_s": 0}, {"sensors": ()},
                                    {"min_valid_intervals": 30}, {"stride_s": -1.0},
                                    {"sensors": ("acc", "acc")}])
def test_feature_config_rejects_bad_values(kwargs):
    with pytest.raises(ValueError):
        FeatureConfig(**kwargs)


def test_feature_config_dict_round_trip():
    config = FeatureConfig(sensors=("acc",), stride_s=2.0)
    assert FeatureConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown feature settings"):
        FeatureConfig.from_dict({**config.to_dict(), "tau": 1})
