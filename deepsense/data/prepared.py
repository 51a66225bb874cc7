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
from typing import Callable, Iterable

import numpy as np

from deepsense.data.augment import augment_recording
from deepsense.data.features import FeatureConfig, make_windows
from deepsense.data.recording import Recording, require_sensors
from deepsense.errors import DataFormatError

SCHEMA_VERSION = 1
ARRAYS = ("x", "mask", "activity", "user", "device", "target", "recording", "start_s",
          "window_id", "copy", "source_split")
SPLIT_CODES = {None: -1, "train": 0, "test": 1}


@dataclass
class PreparedDataset:
    """Windows and their labels.

    Attributes:
        x: (n, T, F) float32 features. mask: (n, T) bool valid intervals.
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


def _index(names: list[str], value: str | None) -> int:
    if value is None:
        return -1
    if value not in names:
        names.append(value)
    return names.index(value)


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
    if augment_copies < 0:
        raise ValueError(f"augment_copies expected >= 0. Received: {augment_copies}")
    fixed_classes = activity_names is not None
    activities = list(activity_names or [])
    users: list[str] = []
    devices: list[str] = []
    rng = np.random.default_rng(seed)
    chunks: dict[str, list[np.ndarray]] = {name: [] for name in ARRAYS}
    n_dropped = 0
    next_window_id = 0
    items = list(recordings)
    for rec_index, rec in enumerate(progress(items) if progress else items):
        require_sensors(rec, features.sensors)
        if fixed_classes and rec.label is not None and rec.label not in activities:
            raise DataFormatError(f"unknown label {rec.label!r}; expected one of {activities}",
                                  path=rec.source or None, field="label")
        origin = rec.start_s
        base = make_windows(rec, features, origin_s=origin)
        n_dropped += base.n_dropped
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
            chunks["x"].append(windows.x)
            chunks["mask"].append(windows.mask)
            chunks["start_s"].append(windows.start_s)
            chunks["window_id"].append(np.array([ids[float(s)] for s in windows.start_s],
                                                dtype=np.int64))
            chunks["copy"].append(np.full(n, copy, np.int16))
            chunks["activity"].append(np.full(n, _index(activities, rec.label), np.int32))
            chunks["user"].append(np.full(n, _index(users, rec.user), np.int32))
            chunks["device"].append(np.full(n, _index(devices, rec.device), np.int32))
            chunks["target"].append(np.full(n, np.nan if rec.target is None else rec.target,
                                            np.float32))
            chunks["recording"].append(np.full(n, rec_index, np.int32))
            chunks["source_split"].append(np.full(n, SPLIT_CODES[rec.split], np.int8))
    if not chunks["x"] or sum(len(c) for c in chunks["x"]) == 0:
        raise DataFormatError(f"no window has {features.min_valid_intervals} or more valid "
                              f"intervals of {features.interval_s} s in {len(items)} recording(s)")
    T, F = features.n_intervals, features.n_features
    arrays = {name: np.concatenate(parts) if parts else np.zeros((0, T, F), np.float32)
              for name, parts in chunks.items()}
    info = {"n_recordings": len(items), "n_windows_dropped": n_dropped,
            "augment_copies": augment_copies, "seed": seed}
    return PreparedDataset(**arrays, features=features, activity_names=activities,
                           user_names=users, device_names=devices, info=info)


def save_prepared(dataset: PreparedDataset, out_dir: str | Path) -> Path:
    """Write `windows.npz` and `dataset.json` into `out_dir` (created if needed)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "windows.npz", **{name: getattr(dataset, name) for name in ARRAYS})
    meta = {"schema_version": SCHEMA_VERSION, "features": dataset.features.to_dict(),
            "activity_names": dataset.activity_names, "user_names": dataset.user_names,
            "device_names": dataset.device_names, "n_windows": len(dataset),
            "n_original_windows": int((dataset.copy == 0).sum()), "info": dataset.info}
    (out / "dataset.json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def load_prepared(path: str | Path) -> PreparedDataset:
    """Read a directory written by `save_prepared` (no pickles are loaded)."""
    root = Path(path)
    meta_path, arrays_path = root / "dataset.json", root / "windows.npz"
    for required in (meta_path, arrays_path):
        if not required.exists():
            raise DataFormatError(f"not a prepared dataset: {required.name} is missing "
                                  "(make one with `deepsense prepare`)", path=root)
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise DataFormatError(f"invalid JSON: {exc}", path=meta_path) from None
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise DataFormatError(f"schema_version expected {SCHEMA_VERSION}. "
                              f"Received: {meta.get('schema_version')!r}", path=meta_path)
    with np.load(arrays_path, allow_pickle=False) as npz:
        missing = [name for name in ARRAYS if name not in npz.files]
        if missing:
            raise DataFormatError(f"missing arrays {missing}", path=arrays_path)
        arrays = {name: npz[name] for name in ARRAYS}
    features = FeatureConfig.from_dict(meta["features"])
    expected = (features.n_intervals, features.n_features)
    if arrays["x"].shape[1:] != expected:
        raise DataFormatError(f"x has window shape {arrays['x'].shape[1:]}, but dataset.json "
                              f"describes {expected}", path=arrays_path, field="x")
    return PreparedDataset(**arrays, features=features,
                           activity_names=meta["activity_names"], user_names=meta["user_names"],
                           device_names=meta["device_names"], info=meta.get("info", {}))
