"""Train/test splits over prepared windows.

Specs: ``source`` (the file's own train/test), ``loso:<user>`` (leave one user out, the HHAR
protocol), ``users:<user>,<user>,...`` (hold out a group of users, e.g. the UCI HAR test
subjects ``users:2,4,9,10,12,13,18,20,24``; cross-subject folds), ``device:<device>``, ``random:<fraction>``, ``time:<fraction>`` (the last fraction of
each recording's windows by time, so every user and activity is on both sides; the UserID
protocol). Test sets hold original windows only; a
window's augmented copies always fall on the side of their original.

Any spec may end in ``+val:<user>,<user>,...``: those users are the validation side (early
stopping, and what `rdeepsense` fits its temperature on) and are never fitted, so validation
measures users the model has never seen, as the test side does (``loso:f+val:e``).
"""

from __future__ import annotations

import numpy as np

from deepsense.data.prepared import PreparedDataset
from deepsense.errors import ConfigError

SPLIT_KINDS = ("source", "loso", "users", "device", "random", "time")
#: Separates a split spec from its validation users.
VALIDATION_USERS = "+val:"


def _fraction(spec: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 < value < 1.0:
        raise ConfigError(f"split {spec!r}: expected a fraction in (0, 1). Received: {text!r}")
    return value


def _user_codes(ds: PreparedDataset, spec: str, arg: str) -> list[int]:
    """Codes of the users named in "u1,u2,..."; ConfigError for unknown or repeated names."""
    names = [name.strip() for name in arg.split(",")]
    if not arg.strip() or "" in names:
        raise ConfigError(f"split {spec!r}: expected a comma-separated list of users, e.g. "
                          f"users:{','.join(ds.user_names[:2])}")
    unknown = [name for name in names if name not in ds.user_names]
    if unknown:
        raise ConfigError(f"split {spec!r}: unknown user(s) {unknown}; the dataset has "
                          f"{ds.user_names}")
    if len(set(names)) != len(names):
        raise ConfigError(f"split {spec!r}: a user is named more than once")
    return [ds.user_names.index(name) for name in names]


def parse_validation_users(spec: str) -> tuple[str, str | None]:
    """("loso:f+val:e,d") -> ("loso:f", "e,d"); a spec without validation users -> (spec, None)."""
    test_spec, separator, users = spec.partition(VALIDATION_USERS)
    return test_spec, users if separator else None


def validation_user_codes(ds: PreparedDataset, spec: str) -> list[int]:
    """Codes of the spec's validation users ([] if it names none)."""
    users = parse_validation_users(spec)[1]
    return [] if users is None else _user_codes(ds, spec, users)


def _test_windows(ds: PreparedDataset, spec: str, seed: int) -> np.ndarray:
    """Boolean (n,) over all rows: True where the row's window belongs to the test side."""
    kind, _, arg = spec.partition(":")
    if kind not in SPLIT_KINDS:
        raise ConfigError(f"split expected one of {[k + (':...' if k != 'source' else '') for k in SPLIT_KINDS]}. "
                          f"Received: {spec!r}")
    if kind == "source":
        if (ds.source_split < 0).any():
            raise ConfigError("split 'source' needs a dataset whose source fixes train/test "
                              "(e.g. a .ts file with --test-input)")
        return ds.source_split == 1
    if kind == "users":
        return np.isin(ds.user, _user_codes(ds, spec, arg))
    if kind in ("loso", "device"):
        names = ds.user_names if kind == "loso" else ds.device_names
        codes = ds.user if kind == "loso" else ds.device
        if arg not in names:
            raise ConfigError(f"split {spec!r}: unknown {'user' if kind == 'loso' else 'device'} "
                              f"{arg!r}; the dataset has {names}")
        return codes == names.index(arg)
    fraction = _fraction(spec, arg)
    originals = np.flatnonzero(ds.copy == 0)
    test_ids: np.ndarray
    if kind == "random":
        rng = np.random.default_rng(seed)
        shuffled = rng.permutation(originals)
        test_ids = ds.window_id[shuffled[: int(round(fraction * len(shuffled)))]]
    else:  # time: per user, the latest windows of each recording session by start time
        chosen = []
        for user in np.unique(ds.user[originals]):
            rows = originals[ds.user[originals] == user]
            rows = rows[np.lexsort((ds.start_s[rows], ds.recording[rows]))]
            for rec in np.unique(ds.recording[rows]):
                rec_rows = rows[ds.recording[rows] == rec]
                n_test = int(round(fraction * len(rec_rows)))
                chosen.append(rec_rows[len(rec_rows) - n_test:])
        test_ids = ds.window_id[np.concatenate(chosen)] if chosen else np.zeros(0, np.int64)
    return np.isin(ds.window_id, test_ids)


def split_indices(ds: PreparedDataset, spec: str, *, seed: int = 0,
                  use_augmented: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, test) for a split spec.

    Args:
        ds: the prepared dataset.
        spec: see the module docstring.
        seed: for random splits.
        use_augmented: include augmented copies of training windows in train.

    Raises:
        ConfigError: unknown spec, unknown user/device, or an empty side.
    """
    test_side = _test_windows(ds, parse_validation_users(spec)[0], seed)
    if test_side[np.isin(ds.user, validation_user_codes(ds, spec))].any():
        raise ConfigError(f"split {spec!r}: a validation user is also held out for testing")
    original = ds.copy == 0
    train = np.flatnonzero(~test_side & (original | use_augmented))
    test = np.flatnonzero(test_side & original)
    if len(train) == 0 or len(test) == 0:
        raise ConfigError(f"split {spec!r} leaves {len(train)} training and {len(test)} test "
                          "windows; both must be non-empty")
    return train, test


def validation_split(ds: PreparedDataset, train: np.ndarray, fraction: float,
                     seed: int = 0, users: list[int] | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Hold out `fraction` of the training windows (with their copies) for validation, or,
    given user codes (`validation_user_codes`), every window of those users.

    The validation side keeps original windows only. Returns (fit_rows, validation_rows).
    """
    if users:
        is_val = np.isin(ds.user[train], users)
        return train[~is_val], train[is_val & (ds.copy[train] == 0)]
    if fraction <= 0:
        return train, np.zeros(0, dtype=np.int64)
    ids = np.unique(ds.window_id[train])
    rng = np.random.default_rng(seed + 1)
    val_ids = rng.choice(ids, size=max(1, int(round(fraction * len(ids)))), replace=False)
    is_val = np.isin(ds.window_id[train], val_ids)
    fit_rows = train[~is_val]
    val_rows = train[is_val & (ds.copy[train] == 0)]
    return fit_rows, val_rows


def labelled_rows(ds: PreparedDataset, rows: np.ndarray, task: str) -> np.ndarray:
    """Keep the rows that have a label for `task` (class >= 0, or a finite target)."""
    labels = ds.labels(task)[rows]
    ok = np.isfinite(labels) if task == "regression" else labels >= 0
    return rows[ok]
