"""UEA/UCR `.ts` files (the sktime/aeon format), e.g. BasicMotions: one Recording per case.

A file is `#` comments, `@` header lines, then `@data` and one line per case: the
dimensions separated by ":", values by ",", the class label last::

    @problemName BasicMotions
    @timeStamps false
    @univariate false
    @dimensions 6
    @equalLength true
    @seriesLength 100
    @classLabel true Standing Running Walking Badminton
    @data
    0.07,0.08,...:0.39,0.39,...:...:Standing

```python
train, report = read_ts("BasicMotions_TRAIN.ts", sample_rate_hz=10, split="train")
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from deepsense.data.recording import (SENSOR_AXES, ReadReport, Recording, SensorStream,
                                      check_on_error)
from deepsense.errors import DataFormatError

DEFAULT_CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")
SPLITS = ("train", "test")
_AXES = ("x", "y", "z")
#: Header keys (lower case) -> their usual spelling, for messages.
_KEYS = {k.lower(): k for k in ("problemName", "timeStamps", "missing", "univariate",
                                "dimensions", "equalLength", "seriesLength", "classLabel",
                                "targetLabel", "data")}
_FLAGS = ("timestamps", "univariate", "equallength", "missing", "classlabel", "targetlabel")


def read_ts(path: str | Path, *, sample_rate_hz: float,
            channels: Sequence[str] = DEFAULT_CHANNELS, split: str | None = None,
            on_error: str = "raise") -> tuple[list[Recording], ReadReport]:
    """Read a multivariate `.ts` file: one Recording per case.

    Args:
        path: the `.ts` file.
        sample_rate_hz: sampling rate of the series (.ts files carry no clock); sample i of
            a case is at i / sample_rate_hz seconds.
        channels: one "<sensor>_<axis>" name per dimension, in file order; every sensor
            must get axes x, y and z exactly once.
        split: "train", "test" or None, stored in `Recording.split`.
        on_error: "raise" stops at the first bad case with a DataFormatError naming file,
            line and field; "skip" drops it and counts it in the report ("missing value",
            "non-numeric value", "non-finite value", "wrong number of dimensions",
            "unequal length", "wrong series length", "unknown label").

    Returns:
        recordings: device f"{problem}_{case_index}" (0-based, in file order), user None,
            label the class label (or target the regression value for @targetLabel files).
        report: cases read and skipped.

    Raises:
        DataFormatError: a bad header (unknown or missing key, @timeStamps true, dimension
            count not matching `channels`), no @data, or (on_error="raise") a bad case.
    """
    check_on_error(on_error)
    if not sample_rate_hz > 0:
        raise ValueError(
            f"sample_rate_hz expected > 0. Received: sample_rate_hz={sample_rate_hz}")
    if split not in SPLITS + (None,):
        raise ValueError(f"split expected one of {SPLITS} or None. Received: split={split!r}")
    mapping = _channel_mapping(channels)
    path = Path(path)
    report = ReadReport(path=str(path))
    with open(path, encoding="utf-8", errors="replace") as handle:
        lines = handle.read().split("\n")
    header, data_start = _parse_header(lines, path)
    if header["dimensions"] != len(channels):
        raise DataFormatError(
            f"the file has {header['dimensions']} dimensions but {len(channels)} channels were "
            f"given; expected one channel per dimension. Received: channels={list(channels)}",
            path=path, line=header["lines"].get("dimensions", data_start - 1),
            field="@dimensions")
    recordings = []
    for number in range(data_start, len(lines) + 1):
        text = lines[number - 1].strip()
        if not text or text.startswith("#"):
            continue
        report.rows_read += 1
        try:
            series, answer = _parse_case(text, header, path, number)
        except _CaseError as exc:
            if on_error == "raise":
                raise
            report.skip(exc.reason, f"line {number}")
            continue
        t_s = np.arange(series.shape[1]) / sample_rate_hz
        streams = {sensor: SensorStream(t_s, series[rows].T) for sensor, rows in mapping.items()}
        recordings.append(Recording(
            device=f"{header['problemname']}_{report.rows_read - 1}", streams=streams,
            label=answer if header["classlabel"] else None,
            target=float(answer) if header["targetlabel"] else None,
            source=str(path), split=split))
    return recordings, report


def _channel_mapping(channels: Sequence[str]) -> dict[str, list[int]]:
    """sensor -> dimension indices of its x, y, z; ValueError unless complete and known."""
    axes: dict[str, dict[str, int]] = {}
    for k, name in enumerate(channels):
        sensor, _, axis = str(name).rpartition("_")
        if sensor not in SENSOR_AXES or axis not in _AXES or axis in axes.get(sensor, {}):
            raise ValueError(
                f"channels expected distinct '<sensor>_<axis>' names with sensor in "
                f"{sorted(SENSOR_AXES)} and axis in {_AXES}. Received: channels={list(channels)}")
        axes.setdefault(sensor, {})[axis] = k
    for sensor, found in axes.items():
        if len(found) != SENSOR_AXES[sensor]:
            raise ValueError(f"channels expected axes {_AXES} for sensor '{sensor}'. "
                             f"Received: channels={list(channels)}")
    return {sensor: [found[a] for a in _AXES] for sensor, found in axes.items()}


def _parse_header(lines: list[str], path: Path) -> tuple[dict, int]:
    """Header values (keys lower case) and the 1-based line number after @data."""
    header: dict = {"lines": {}}
    for number, raw in enumerate(lines, start=1):
        text = raw.strip()
        if not text or text.startswith("#"):
            continue
        if not text.startswith("@"):
            raise DataFormatError("data before @data; expected '@<key> <value>' header lines",
                                  path=path, line=number)
        spelling, _, value = text[1:].partition(" ")
        key, value = spelling.lower(), value.strip()
        field = f"@{_KEYS.get(key, spelling)}"
        header["lines"][key] = number
        if key == "data":
            return _check_header(header, path, number), number + 1
        if key in _FLAGS:
            words = value.split()
            if not words or words[0].lower() not in ("true", "false"):
                raise DataFormatError(f"expected true or false. Received: {value!r}",
                                      path=path, line=number, field=field)
            header[key] = words[0].lower() == "true"
            if key == "classlabel" and header[key]:
                header["labels"] = words[1:]
        elif key in ("problemname", "serieslength", "dimensions"):
            header[key] = value
        else:
            raise DataFormatError(f"unknown header key; expected one of "
                                  f"{['@' + k for k in _KEYS.values()]}",
                                  path=path, line=number, field=field)
    raise DataFormatError("no @data line; expected the header to end with @data", path=path,
                          line=len(lines))


def _check_header(header: dict, path: Path, data_line: int) -> dict:
    """Fill defaults, convert numbers, and reject what we do not read."""
    def fail(message: str, key: str) -> DataFormatError:
        return DataFormatError(message, path=path, line=header["lines"].get(key, data_line),
                               field=f"@{_KEYS[key]}")

    if not header.get("problemname"):
        raise fail("missing problem name; expected '@problemName <name>'", "problemname")
    if header.get("timestamps", False):
        raise fail("timestamped series are not supported; expected @timeStamps false",
                   "timestamps")
    if header.get("classlabel") is None and header.get("targetlabel") is None:
        raise fail("expected '@classLabel true <labels...>' or '@targetLabel true'",
                   "classlabel")
    header.setdefault("classlabel", False)
    header.setdefault("targetlabel", False)
    if header["classlabel"] and not header["labels"]:
        raise fail("expected the class labels after '@classLabel true'", "classlabel")
    if header.get("univariate", False):
        header["dimensions"] = header.get("dimensions", "1")
    for key in ("dimensions", "serieslength"):
        value = header.get(key)
        if value is None:
            if key == "dimensions":
                raise fail("missing dimension count; expected '@dimensions <n>'", key)
            continue
        if not value.isdigit() or int(value) < 1:
            raise fail(f"expected a positive integer. Received: {value!r}", key)
        header[key] = int(value)
    if not header.get("equallength", False):
        header.pop("serieslength", None)
    return header


class _CaseError(DataFormatError):
    """A bad case; `reason` is the report key."""

    def __init__(self, reason: str, message: str, *, path: Path, line: int, field: str) -> None:
        super().__init__(f"{reason}; {message}", path=path, line=line, field=field)
        self.reason = reason


def _parse_case(text: str, header: dict, path: Path, line: int) -> tuple[np.ndarray, str]:
    """One data line -> (n_dims, length) float64 values and the label (or target) text."""
    parts = text.split(":")
    n_dims = header["dimensions"]
    has_answer = header["classlabel"] or header["targetlabel"]
    if len(parts) != n_dims + has_answer:
        raise _CaseError("wrong number of dimensions",
                         f"expected {n_dims} dimensions{' and a label' if has_answer else ''} "
                         f"separated by ':'. Received: {len(parts)} parts",
                         path=path, line=line, field="dimensions")
    answer = parts[-1].strip() if has_answer else ""
    series = [_parse_dimension(parts[k], k, path, line) for k in range(n_dims)]
    lengths = {len(s) for s in series}
    if len(lengths) != 1:
        raise _CaseError("unequal length", f"expected every dimension of a case to have the "
                         f"same length. Received: lengths {[len(s) for s in series]}",
                         path=path, line=line, field="dimensions")
    length = lengths.pop()
    if header.get("serieslength") not in (None, length):
        raise _CaseError("wrong series length", f"expected {header['serieslength']} values "
                         f"per dimension (@seriesLength). Received: {length}",
                         path=path, line=line, field="dimension 0")
    if header["classlabel"] and answer not in header["labels"]:
        raise _CaseError("unknown label", f"expected one of {header['labels']} "
                         f"(@classLabel). Received: {answer!r}", path=path, line=line,
                         field="label")
    if header["targetlabel"]:
        try:
            target = float(answer)
        except ValueError:
            target = np.nan
        if not np.isfinite(target):
            raise _CaseError("non-numeric value", f"expected a finite regression target. "
                             f"Received: {answer!r}", path=path, line=line, field="target")
    return np.stack(series), answer


def _parse_dimension(text: str, k: int, path: Path, line: int) -> np.ndarray:
    tokens = [t.strip() for t in text.split(",")]
    try:
        values = np.array(tokens, dtype=np.float64)
    except ValueError:
        i, bad = next((i, t) for i, t in enumerate(tokens) if not _is_float(t))
        reason = "missing value" if bad == "?" else "non-numeric value"
        raise _CaseError(reason, f"expected a number. Received: value {i} = {bad!r}",
                         path=path, line=line, field=f"dimension {k}") from None
    if not np.isfinite(values).all():
        i = int(np.flatnonzero(~np.isfinite(values))[0])
        raise _CaseError("non-finite value", f"expected a finite number. Received: value {i} "
                         f"= {tokens[i]!r}", path=path, line=line, field=f"dimension {k}")
    return values


def _is_float(token: str) -> bool:
    try:
        float(token)
    except ValueError:
        return False
    return True
