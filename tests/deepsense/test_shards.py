"""Sharded prepared datasets: same windows as in memory, read on demand, streamed to training."""

import json

import numpy as np
import pytest

from deepsense.data.features import FeatureConfig
from deepsense.data.prepared import load_prepared, prepare_recordings, prepare_to_shards
from deepsense.data.shards import ShardedWindows
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings
from deepsense.errors import DataFormatError

SPEC = SyntheticSpec(n_users=2, devices=("nexus4_1",), seconds_per_activity=10.0, n_gaps=1,
                     max_gap_s=1.0, seed=4)
FEATURES = FeatureConfig(stride_s=1.0)


@pytest.fixture(scope="module")
def in_memory():
    return prepare_recordings(make_recordings(SPEC), FEATURES, activity_names=list(ACTIVITIES),
                              augment_copies=1, seed=2)


@pytest.fixture(scope="module")
def sharded_dir(tmp_path_factory):
    return prepare_to_shards(iter(make_recordings(SPEC)), FEATURES,
                             tmp_path_factory.mktemp("sharded"), shard_windows=37,
                             activity_names=list(ACTIVITIES), augment_copies=1, seed=2)


def test_shards_hold_exactly_the_in_memory_windows(in_memory, sharded_dir):
    meta = json.loads((sharded_dir / "dataset.json").read_text())
    sizes = [s["n_windows"] for s in meta["shards"]]
    assert sum(sizes) == len(in_memory) == meta["n_windows"]
    assert all(size == 37 for size in sizes[:-1]) and 0 < sizes[-1] <= 37
    ds = load_prepared(sharded_dir)
    assert isinstance(ds.x, ShardedWindows) and ds.x.shape == in_memory.x.shape
    np.testing.assert_array_equal(ds.x[np.arange(len(ds))], in_memory.x)
    for name in ("mask", "activity", "user", "window_id", "copy", "recording", "start_s"):
        np.testing.assert_array_equal(getattr(ds, name), getattr(in_memory, name))
    assert ds.user_names == in_memory.user_names


def test_sharded_windows_index_like_an_array(in_memory, sharded_dir):
    x = load_prepared(sharded_dir).x
    rows = np.array([100, 3, 74, 36, 37, 3, -1])
    np.testing.assert_array_equal(x[rows], in_memory.x[rows])
    np.testing.assert_array_equal(x[5], in_memory.x[5])
    np.testing.assert_array_equal(x[30:45], in_memory.x[30:45])
    mask = in_memory.user == 1
    np.testing.assert_array_equal(x[mask], in_memory.x[mask])
    with pytest.raises(IndexError, match="out of range"):
        x[np.array([len(x)])]


def test_a_shard_of_the_wrong_shape_is_reported(sharded_dir, tmp_path):
    import shutil

    copy = shutil.copytree(sharded_dir, tmp_path / "copy")
    with np.load(copy / "shard-00001.npz") as npz:
        arrays = {k: npz[k] for k in npz.files}
    arrays["x"] = arrays["x"][:, :, :60]
    np.savez(copy / "shard-00001.npz", **arrays)
    with pytest.raises(DataFormatError, match=r"shard-00001.npz.*x expected float32"):
        load_prepared(copy).x[40]


def test_streaming_pipeline_visits_each_window_once_per_epoch_in_new_orders(sharded_dir):
    from deepsense.train import sharded_tf_dataset

    ds = load_prepared(sharded_dir)
    rows = np.flatnonzero(ds.user == 0)
    y = rows.astype(np.int32)  # the label of a window is its row: order becomes visible
    data = sharded_tf_dataset(ds.x, rows, y, 16, shuffle=True, seed=1)
    epochs = [np.concatenate([b[1].numpy() for b in data]) for _ in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == rows.tolist()
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[0], rows)  # windows of different shards are mixed
    x0, y0 = next(iter(data.unbatch()))
    np.testing.assert_array_equal(x0.numpy(), ds.x[int(y0)])
    plain = sharded_tf_dataset(ds.x, rows, y, 16, shuffle=False)
    assert np.concatenate([b[1].numpy() for b in plain]).tolist() == rows.tolist()


@pytest.mark.slow
def test_prepare_train_and_evaluate_a_sharded_dataset(tmp_path, tiny_model_settings, capsys):
    from deepsense.cli import main

    settings = [item for s in tiny_model_settings for item in ("--set", s)]
    assert main(["prepare", "--source", "synthetic", "--users", "3", "--seconds", "12",
                 "--devices", "nexus4_1", "--shard-windows", "50", "--augment", "0", "--out",
                 str(tmp_path / "data"), "--set", "features.stride_s=1.0"]) == 0
    assert "shards" in capsys.readouterr().out
    assert main(["train", "--data", str(tmp_path / "data"), "--out", str(tmp_path / "run"),
                 "--epochs", "2", "--split", "loso:b", "--set", "train.steps_per_epoch=3",
                 *settings]) == 0
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["epochs_run"] == 2
    assert info["train_windows_per_s"] * info["train_seconds"] == pytest.approx(2 * 3 * 64,
                                                                                rel=0.05)
    assert main(["evaluate", "--model", str(tmp_path / "run")]) == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["n_windows"] > 0
