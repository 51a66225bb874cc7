import json

import numpy as np
import pytest

from deepsense.data.features import FeatureConfig
from deepsense.data.prepared import load_prepared, prepare_recordings, save_prepared
from deepsense.data.recording import Recording, SensorStream
from deepsense.errors import DataFormatError


def test_save_load_round_trip(tiny_dataset, tmp_path):
    save_prepared(tiny_dataset, tmp_path)
    loaded = load_prepared(tmp_path)
    np.testing.assert_array_equal(loaded.x, tiny_dataset.x)
    np.testing.assert_array_equal(loaded.window_id, tiny_dataset.window_id)
    assert loaded.features == tiny_dataset.features
    assert loaded.user_names == tiny_dataset.user_names


def test_augmented_copies_share_window_ids_and_differ_in_values(tiny_dataset):
    ds = tiny_dataset
    originals, copies = ds.copy == 0, ds.copy == 1
    assert set(ds.window_id[copies]) <= set(ds.window_id[originals])
    row = np.flatnonzero(copies)[0]
    twin = np.flatnonzero(originals & (ds.window_id == ds.window_id[row]))[0]
    assert ds.start_s[row] == ds.start_s[twin]
    assert not np.allclose(ds.x[row], ds.x[twin])


def test_unknown_label_is_refused_when_classes_are_fixed(rng):
    t = np.arange(0, 10, 0.01)
    stream = SensorStream(t, rng.normal(size=(t.size, 3)))
    rec = Recording("d", {"acc": stream, "gyro": stream}, label="jog", source="x.csv")
    with pytest.raises(DataFormatError, match="unknown label 'jog'"):
        prepare_recordings([rec], FeatureConfig(), activity_names=["walk", "sit"])


def test_missing_sensor_is_refused(rng):
    t = np.arange(0, 10, 0.01)
    rec = Recording("d", {"acc": SensorStream(t, rng.normal(size=(t.size, 3)))}, source="x.csv")
    with pytest.raises(DataFormatError, match=r"no samples for sensor\(s\) \['gyro'\]"):
        prepare_recordings([rec], FeatureConfig())


def test_load_refuses_damaged_directories(tiny_dataset, tmp_path):
    with pytest.raises(DataFormatError, match="dataset.json is missing"):
        load_prepared(tmp_path)
    save_prepared(tiny_dataset, tmp_path)
    meta = json.loads((tmp_path / "dataset.json").read_text())
    meta["features"]["n_points"] = 8
    (tmp_path / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(DataFormatError, match="window shape"):
        load_prepared(tmp_path)
    (tmp_path / "dataset.json").write_text("{")
    with pytest.raises(DataFormatError, match="invalid JSON"):
        load_prepared(tmp_path)


def test_windows_prepared_differently_from_the_model_are_refused(tiny_dataset):
    names = tiny_dataset.class_names("activity")
    tiny_dataset.check_prepared_as(tiny_dataset.features, "activity", names, owner="model")
    other = FeatureConfig(interval_s=0.5, stride_s=1.0)
    with pytest.raises(DataFormatError, match="different feature settings than the bundle"):
        tiny_dataset.check_prepared_as(other, "activity", names, owner="bundle")
    with pytest.raises(DataFormatError, match="class names differ: model"):
        tiny_dataset.check_prepared_as(tiny_dataset.features, "activity", names[::-1],
                                       owner="model")
    tiny_dataset.check_prepared_as(tiny_dataset.features, "regression", [], owner="model")
