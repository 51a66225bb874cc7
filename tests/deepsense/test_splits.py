import numpy as np
import pytest

from deepsense.data.splits import split_indices, validation_split
from deepsense.errors import ConfigError


def _ids(ds, rows):
    return set(ds.window_id[rows].tolist())


def test_loso_holds_out_exactly_one_user(tiny_dataset):
    train, test = split_indices(tiny_dataset, "loso:b")
    b = tiny_dataset.user_names.index("b")
    assert (tiny_dataset.user[test] == b).all()
    assert not (tiny_dataset.user[train] == b).any()
    assert (tiny_dataset.copy[test] == 0).all(), "test windows are originals only"
    assert (tiny_dataset.copy[train] > 0).any(), "augmented copies are used for training"


@pytest.mark.parametrize("spec", ["random:0.3", "time:0.3"])
def test_fraction_splits_keep_copies_with_their_window(tiny_dataset, spec):
    train, test = split_indices(tiny_dataset, spec)
    assert not _ids(tiny_dataset, train) & _ids(tiny_dataset, test)
    share = len(test) / (tiny_dataset.copy == 0).sum()
    assert 0.2 < share < 0.4


def test_users_split_holds_out_the_listed_users(tiny_dataset):
    ds = tiny_dataset
    train, test = split_indices(ds, "users:a,c")
    held_out = [ds.user_names.index(u) for u in ("a", "c")]
    assert set(ds.user[test].tolist()) == set(held_out)
    assert not np.isin(ds.user[train], held_out).any()
    assert (ds.copy[test] == 0).all() and (ds.copy[train] > 0).any()
    np.testing.assert_array_equal(split_indices(ds, "users:b")[1], split_indices(ds, "loso:b")[1])


@pytest.mark.parametrize("spec, match", [("users:a,zz", r"unknown user\(s\) \['zz'\]"),
                                         ("users:", "expected a comma-separated list"),
                                         ("users:a,a", "more than once"),
                                         ("users:a,b,c", "0 training")])
def test_users_split_refuses_bad_lists(tiny_dataset, spec, match):
    with pytest.raises(ConfigError, match=match):
        split_indices(tiny_dataset, spec)


def test_time_split_tests_on_the_latest_windows_of_every_recording(tiny_dataset):
    ds = tiny_dataset
    train, test = split_indices(ds, "time:0.3")
    for rec in np.unique(ds.recording):
        test_starts = ds.start_s[test][ds.recording[test] == rec]
        train_starts = ds.start_s[train][ds.recording[train] == rec]
        assert test_starts.size and train_starts.size
        assert test_starts.min() > train_starts.max()


def test_random_split_is_seeded(tiny_dataset):
    a = split_indices(tiny_dataset, "random:0.3", seed=1)[1]
    b = split_indices(tiny_dataset, "random:0.3", seed=1)[1]
    c = split_indices(tiny_dataset, "random:0.3", seed=2)[1]
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("spec, match", [("loso:zz", "unknown user"), ("device:x", "unknown device"),
                                         ("random:1.5", "fraction"), ("by-user", "expected one of"),
                                         ("source", "fixes train/test")])
def test_bad_split_specs_raise_config_error(tiny_dataset, spec, match):
    with pytest.raises(ConfigError, match=match):
        split_indices(tiny_dataset, spec)


def test_validation_split_is_disjoint_and_original_only(tiny_dataset):
    train, _ = split_indices(tiny_dataset, "loso:a")
    fit_rows, val_rows = validation_split(tiny_dataset, train, 0.2)
    assert not _ids(tiny_dataset, fit_rows) & _ids(tiny_dataset, val_rows)
    assert (tiny_dataset.copy[val_rows] == 0).all()


def test_validation_users_are_the_validation_side_and_never_fitted(tiny_dataset):
    from deepsense.config import load_config
    from deepsense.run import split_rows

    ds = tiny_dataset
    rows = split_rows(ds, load_config(None, ['train.split="loso:a+val:b"']).train)
    a, b = ds.user_names.index("a"), ds.user_names.index("b")
    assert set(ds.user[rows.validation].tolist()) == {b}
    assert (ds.copy[rows.validation] == 0).all()
    assert not np.isin(ds.user[rows.fit], [a, b]).any()
    np.testing.assert_array_equal(rows.test, split_indices(ds, "loso:a")[1])
    assert len(rows.validation) == ((ds.user == b) & (ds.copy == 0)).sum()


@pytest.mark.parametrize("spec, match", [("loso:a+val:zz", r"unknown user\(s\) \['zz'\]"),
                                         ("loso:a+val:a", "also held out for testing"),
                                         ("loso:a+val:", "expected a comma-separated list")])
def test_validation_users_are_checked(tiny_dataset, spec, match):
    with pytest.raises(ConfigError, match=match):
        split_indices(tiny_dataset, spec)
