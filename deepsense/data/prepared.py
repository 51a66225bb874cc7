"""Prepared datasets: windows + labels + the preprocessing that made them, on disk.

Layout of a prepared directory::

    windows.npz    x (n, T, F) float32, mask (n, T) bool and per-window metadata arrays
    dataset.json   feature settings, name tables (activities, users, devices), source, reports

Augmented copies (``prepare --augment K``) are stored next to the originals with
``copy > 0`` and the same ``window_id``, so splits keep every copy of a window on one side.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np

from deepsense.data.augment import augment_recording
from deepsense.data.features import FeatureConfig, make_windows
from deepsense.data.recording import Recording, require_sensors
from deepsense.data.shards import ShardedWindows
from deepsense.errors import DataFormatError

SCHEMA_VERSION = 1
ARRAYS = ("x", "mask", "activity", "user", "device", "target", "recording", "start_s",
          "window_id", "copy", "source_split")
SPLIT_CODES = {None: -1, "train": 0, "test": 1}


@dataclass
class PreparedDataset:
    """Windows and their labels.

    Attributes:
        x: (n, T, F) float32 features (a `ShardedWindows` reading them from disk for a
            sharded dataset). mask: (n, T) bool valid intervals.
        activity, user, device: (n,) int32 indices into the name lists (-1 = unknown).
        target: (n,) float32 regression target (NaN = unknown).
        recording: (n,) int32 recording index. start_s: (n,) float64 window start time.
        window_id: (n,) int64, shared by a window and its augmented copies.
        copy: (n,) int16, 0 for original windows, k > 0 for augmentation copy k.
        source_split: (n,) int8, -1 none, 0 train, 1 test (a split fixed by the source file).
        features: the FeatureConfig used. activity_names, user_names, device_names: name tables.
        info: free-form provenance (source, reader reports, counts).
    """

    x: np.ndarray
    mask: np.ndarray
    activity: np.ndarray
    user: np.ndarray
    device: np.ndarray
    target: np.ndarray
    recording: np.ndarray
    start_s: np.ndarray
    window_id: np.ndarray
    copy: np.ndarray
    source_split: np.ndarray
    features: FeatureConfig
    activity_names: list[str]
    user_names: list[str]
    device_names: list[str]
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def labels(self, task: str) -> np.ndarray:
        """Targets for a task: class indices (activity, user) or float targets (regression)."""
        if task == "activity":
            return self.activity
        if task == "user":
            return self.user
        if task == "regression":
            return self.target.astype(np.float32)
        raise ValueError(f"task expected 'activity', 'user' or 'regression'. Received: {task!r}")

    def class_names(self, task: str) -> list[str]:
        if task == "activity":
            return list(self.activity_names)
        if task == "user":
            return list(self.user_names)
        return ["target"]

    def check_prepared_as(self, features: FeatureConfig, task: str, class_names: list[str],
                          owner: str) -> None:
        """Refuse windows prepared differently from `owner`'s training data (the model or the
        bundle): other feature settings, or (classification) other classes or class order.

        Raises:
            DataFormatError: naming both settings.
        """
        if features != self.features:
            raise DataFormatError(f"the data was prepared with different feature settings than "
                                  f"the {owner}: {owner} {features.to_dict()}, data "
                                  f"{self.features.to_dict()}")
        if task != "regression" and self.class_names(task) != list(class_names):
            raise DataFormatError(f"class names differ: {owner} {list(class_names)}, data "
                                  f"{self.class_names(task)}")


def _index(names: list[str], value: str | None) -> int:
    if value is None:
        return -1
    if value not in names:
        names.append(value)
    return names.index(value)


@dataclass
class NameTables:
    """Class, user and device names, growing as recordings are windowed (index = code)."""

    activities: list[str] = field(default_factory=list)
    users: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    fixed_classes: bool = False
    n_recordings: int = 0
    n_dropped: int = 0


def iter_window_chunks(recordings: Iterable[Recording], features: FeatureConfig, *,
                       augment_copies: int = 0, seed: int = 0, names: NameTables,
                       progress: Callable[[Iterable], Iterable] | None = None
                       ) -> Iterator[dict[str, np.ndarray]]:
    """Window one recording at a time (and its `augment_copies` noisy copies).

    Yields one dict of ARRAYS per recording and version; `names` is filled on the way
    (codes in the yielded arrays index its lists). Memory: one recording's windows.
    """
    if augment_copies < 0:
        raise ValueError(f"augment_copies expected >= 0. Received: {augment_copies}")
    rng = np.random.default_rng(seed)
    next_window_id = 0
    for rec_index, rec in enumerate(progress(recordings) if progress else recordings):
        names.n_recordings += 1
        require_sensors(rec, features.sensors)
        if names.fixed_classes and rec.label is not None and rec.label not in names.activities:
            raise DataFormatError(f"unknown label {rec.label!r}; expected one of "
                                  f"{names.activities}", path=rec.source or None, field="label")
        origin = rec.start_s
        base = make_windows(rec, features, origin_s=origin)
        names.n_dropped += base.n_dropped
        ids = {float(s): next_window_id + i for i, s in enumerate(base.start_s)}
        next_window_id += len(base.start_s)
        versions = [(0, base)]
        for copy in range(1, augment_copies + 1):
            noisy = make_windows(augment_recording(rec, rng), features, origin_s=origin)
            keep = np.array([float(s) in ids for s in noisy.start_s], dtype=bool)
            versions.append((copy, type(noisy)(noisy.x[keep], noisy.mask[keep],
                                               noisy.start_s[keep])))
        for copy, windows in versions:
            n = len(windows.start_s)
            yield {
                "x": windows.x, "mask": windows.mask, "start_s": windows.start_s,
                "window_id": np.array([ids[float(s)] for s in windows.start_s], dtype=np.int64),
                "copy": np.full(n, copy, np.int16),
                "activity": np.full(n, _index(names.activities, rec.label), np.int32),
                "user": np.full(n, _index(names.users, rec.user), np.int32),
                "device": np.full(n, _index(names.devices, rec.device), np.int32),
                "target": np.full(n, np.nan if rec.target is None else rec.target, np.float32),
                "recording": np.full(n, rec_index, np.int32),
                "source_split": np.full(n, SPLIT_CODES[rec.split], np.int8),
            }


def _no_windows(features: FeatureConfig, n_recordings: int) -> DataFormatError:
    return DataFormatError(f"no window has {features.min_valid_intervals} or more valid "
                           f"intervals of {features.interval_s} s in {n_recordings} recording(s)")


def prepare_recordings(recordings: Iterable[Recording], features: FeatureConfig, *,
                       augment_copies: int = 0, seed: int = 0,
                       activity_names: list[str] | None = None,
                       progress: Callable[[Iterable], Iterable] | None = None) -> PreparedDataset:
    """Window every recording (and `augment_copies` noisy copies of it) into one dataset.

    Args:
        recordings: labelled recordings holding every sensor in `features.sensors`.
        features: preprocessing settings.
        augment_copies: extra noisy copies per recording (0 = off; the released code used 9).
        seed: seeds the augmentation noise.
        activity_names: fixes the class order (e.g. the six HHAR activities); labels not
            in it raise DataFormatError. None: classes in order of first appearance.
        progress: optional wrapper such as tqdm for a progress bar.
    """
    names = NameTables(list(activity_names or []), fixed_classes=activity_names is not None)
    chunks = list(iter_window_chunks(recordings, features, augment_copies=augment_copies,
                                     seed=seed, names=names, progress=progress))
    if sum(len(c["x"]) for c in chunks) == 0:
        raise _no_windows(features, names.n_recordings)
    arrays = {name: np.concatenate([c[name] for c in chunks]) for name in ARRAYS}
    return PreparedDataset(**arrays, features=features, activity_names=names.activities,
                           user_names=names.users, device_names=names.devices,
                           info=_info(names, augment_copies, seed))


def _info(names: NameTables, augment_copies: int, seed: int) -> dict:
    return {"n_recordings": names.n_recordings, "n_windows_dropped": names.n_dropped,
            "augment_copies": augment_copies, "seed": seed}


def _metadata(features: FeatureConfig, names: tuple[list[str], list[str], list[str]],
              n_windows: int, n_original: int, info: dict) -> dict:
    """dataset.json: settings, (activity, user, device) name tables, counts, provenance."""
    return {"schema_version": SCHEMA_VERSION, "features": features.to_dict(),
            "activity_names": names[0], "user_names": names[1], "device_names": names[2],
            "n_windows": n_windows, "n_original_windows": n_original, "info": info}


def prepare_to_shards(recordings: Iterable[Recording], features: FeatureConfig,
                      out_dir: str | Path, *, shard_windows: int = 8192,
                      augment_copies: int = 0, seed: int = 0,
                      activity_names: list[str] | None = None,
                      progress: Callable[[Iterable], Iterable] | None = None,
                      info: dict | None = None) -> Path:
    """`prepare_recordings` that streams to disk: shards of `shard_windows` windows.

    Writes ``shard-00000.npz``, ... (the arrays of `windows.npz` for consecutive windows) and
    ``dataset.json`` with the shard index. Memory: one shard plus one recording's windows,
    whatever the dataset's size. `load_prepared` reads it with ``x`` left on disk.
    """
    if shard_windows < 1:
        raise ValueError(f"shard_windows expected >= 1. Received: {shard_windows}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    names = NameTables(list(activity_names or []), fixed_classes=activity_names is not None)
    shards: list[dict] = []
    pending: list[dict[str, np.ndarray]] = []
    n_pending = n_windows = n_original = 0

    def flush(limit: int) -> None:
        nonlocal pending, n_pending
        arrays = {name: np.concatenate([c[name] for c in pending]) for name in ARRAYS}
        while n_pending >= limit and n_pending > 0:
            take = min(shard_windows, n_pending)
            file = f"shard-{len(shards):05d}.npz"
            np.savez(out / file, **{name: a[:take] for name, a in arrays.items()})
            shards.append({"file": file, "n_windows": int(take)})
            arrays = {name: a[take:] for name, a in arrays.items()}
            n_pending -= take
        pending = [arrays] if n_pending else []

    for chunk in iter_window_chunks(recordings, features, augment_copies=augment_copies,
                                    seed=seed, names=names, progress=progress):
        pending.append(chunk)
        n_pending += len(chunk["x"])
        n_windows += len(chunk["x"])
        n_original += int((chunk["copy"] == 0).sum())
        if n_pending >= shard_windows:
            flush(shard_windows)
    if n_pending:
        flush(1)
    if n_windows == 0:
        raise _no_windows(features, names.n_recordings)
    meta = _metadata(features, (names.activities, names.users, names.devices), n_windows,
                     n_original, {**_info(names, augment_copies, seed), **(info or {})})
    meta["shards"] = shards
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def save_prepared(dataset: PreparedDataset, out_dir: str | Path) -> Path:
    """Write `windows.npz` and `dataset.json` into `out_dir` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "windows.npz", **{name: getattr(dataset, name) for name in ARRAYS})
    meta = _metadata(dataset.features, (dataset.activity_names, dataset.user_names,
                                        dataset.device_names), len(dataset),
                     int((dataset.copy == 0).sum()), dataset.info)
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _read_arrays(path: Path, names: list[str]) -> dict[str, np.ndarray]:
    if not path.exists():
        raise DataFormatError(f"{path.name} is missing (make the dataset again with "
                              "`deepsense prepare`)", path=path.parent)
    with np.load(path, allow_pickle=False) as npz:
        missing = [name for name in names if name not in npz.files]
        if missing:
            raise DataFormatError(f"missing arrays {missing}", path=path)
        return {name: npz[name] for name in names}


def load_prepared(path: str | Path) -> PreparedDataset:
    """Read a directory written by `save_prepared` or `prepare_to_shards` (no pickles).

    A sharded dataset keeps its windows on disk: ``x`` is a `ShardedWindows` that reads
    the rows asked for; the other arrays are loaded.
    """
    root = Path(path)
    meta_path = root / "dataset.json"
    if not meta_path.exists():
        raise DataFormatError("not a prepared dataset: dataset.json is missing "
                              "(make one with `deepsense prepare`)", path=root)
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"invalid JSON: {exc}", path=meta_path) from None
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataFormatError(f"schema_version expected {SCHEMA_VERSION}. "
                              f"Received: {meta.get('schema_version')!r}", path=meta_path)
    features = FeatureConfig.from_dict(meta["features"])
    window_shape = (features.n_intervals, features.n_features)
    if "shards" in meta:
        parts = [_read_arrays(root / shard["file"], [n for n in ARRAYS if n != "x"])
                 for shard in meta["shards"]]
        arrays = {name: np.concatenate([p[name] for p in parts]) for name in ARRAYS
                  if name != "x"}
        arrays["x"] = ShardedWindows(root, meta["shards"], window_shape)
    else:
        arrays = _read_arrays(root / "windows.npz", list(ARRAYS))
        if arrays["x"].shape[1:] != window_shape:
            raise DataFormatError(f"x has window shape {arrays['x'].shape[1:]}, but "
                                  f"dataset.json describes {window_shape}",
                                  path=root / "windows.npz", field="x")
    return PreparedDataset(**arrays, features=features,
                           activity_names=meta["activity_names"], user_names=meta["user_names"],
                           device_names=meta["device_names"], info=meta.get("info", {}))
