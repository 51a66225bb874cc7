"""Our plain sensor CSV: what `deepsense replay` publishes and the gateway logs.

One sample of one sensor per row, in time order per (device, sensor)::

    timestamp_s,device,sensor,x,y,z,user,label,target
    1424696633.908,nexus4_1,acc,-5.958191,0.6880646,8.135345,a,walk,1.25

`user`, `label` and `target` are optional: the columns may be absent from the header, or
empty in a row. Blank lines are ignored. Consecutive rows of a device with the same
(user, label, target) form one Recording; a change starts the next one.

```python
recordings, report = read_sensor_csv("walk.csv", on_error="skip")
print(report.summary())
write_sensor_csv(recordings, "copy.csv")
```

The text helpers at the end (`split_csv_lines`, `parse_floats`, `first_faults`,
`apply_faults`, `write_csv_rows`) are shared with the HHAR reader and writer: vectorised
checks that give every bad row its line number, and fast float-exact CSV writing.
"""

from __future__ import annotations

import csv
import io
import itertools
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence, TextIO

import numpy as np
import pandas as pd

from deepsense.data.recording import (SENSOR_AXES, ReadReport, Recording, SensorStream,
                                      check_on_error)
from deepsense.errors import DataFormatError

#: Column order written by `write_sensor_csv`.
CSV_COLUMNS = ("timestamp_s", "device", "sensor", "x", "y", "z", "user", "label", "target")
REQUIRED_COLUMNS = CSV_COLUMNS[:6]
AXES = ("x", "y", "z")

_FLOAT_DTYPES = {"timestamp_s": "float64", "x": "float64", "y": "float64", "z": "float64"}
_TEXT_COLUMNS = ("device", "sensor", "user", "label")
_NAN_WORDS = ("nan", "+nan", "-nan")


def read_sensor_csv(path: str | Path, on_error: str = "raise"
                    ) -> tuple[list[Recording], ReadReport]:
    """Read our sensor CSV into Recordings, one per contiguous (device, user, label, target) run.

    Args:
        path: the CSV file.
        on_error: "raise" stops at the first bad row with a DataFormatError naming the file,
            line and field; "skip" drops bad rows and counts them in the report by reason
            ("wrong number of fields", "non-numeric value", "non-finite value",
            "unknown sensor", "empty device", "duplicate timestamp",
            "non-monotonic timestamp"). A timestamp must be greater than every earlier
            timestamp of the same (device, sensor).

    Returns:
        recordings: in order of first appearance; timestamps in seconds, values (n, 3).
        report: rows read and skipped.

    Raises:
        DataFormatError: empty file, bad header, or (on_error="raise") a bad row.
    """
    check_on_error(on_error)
    path = Path(path)
    data = path.read_bytes()
    header_end = data.find(b"\n")
    header_end = len(data) if header_end < 0 else header_end
    columns = _parse_header(data[:header_end], path)
    body = data[header_end + 1:]
    report = ReadReport(path=str(path))

    table = _parse_fast(body, columns)
    if table is None:
        table, faults = _parse_slow(body, columns, first_line=2)
    else:
        faults = []
    report.rows_read = len(table) + sum(len(f.lines) for f in faults)
    keep = ~_row_faults(table, faults)
    table = table[keep]
    keep = ~_order_faults(table, faults)
    apply_faults(faults, report, on_error, path)
    return _make_recordings(table[keep], str(path)), report


def write_sensor_csv(recordings: Sequence[Recording], path: str | Path) -> Path:
    """Write recordings in our CSV format (all nine columns, floats at full repr precision).

    Within a recording the rows of all sensors are merged in time order. Consecutive
    recordings of one device with the same (user, label, target) read back as one.

    Raises:
        ValueError: a sensor not in SENSOR_AXES, a stream without 3 axes, or a device whose
            recordings go back in time (the file would not read back).
    """
    path = Path(path)
    last_t: dict[tuple[str, str], float] = {}
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write(",".join(CSV_COLUMNS) + "\n")
        for rec in recordings:
            for sensor, stream in rec.streams.items():
                _check_writable(rec, sensor, stream, last_t)
            streams = [(s, v) for s, v in rec.streams.items() if len(v)]
            if not streams:
                continue
            t = np.concatenate([v.t_s for _, v in streams])
            order = np.argsort(t, kind="stable")
            values = np.concatenate([v.values for _, v in streams])[order]
            sensors = np.concatenate([np.full(len(v), s, dtype=object) for s, v in streams])
            target = "" if rec.target is None else repr(float(rec.target))
            write_csv_rows(handle, [t[order], rec.device, sensors[order], values[:, 0],
                                    values[:, 1], values[:, 2], rec.user or "",
                                    rec.label or "", target])
    return path


def _check_writable(rec: Recording, sensor: str, stream: SensorStream,
                    last_t: dict[tuple[str, str], float]) -> None:
    """Raise ValueError if `stream` cannot be written so that it reads back."""
    for name, value in (("device", rec.device), ("user", rec.user), ("label", rec.label)):
        if (name == "device" and not value) or any(c in (value or "") for c in ",\r\n"):
            raise ValueError(f"write_sensor_csv expects a non-empty device and names without "
                             f"commas or line breaks. Received: {name}={value!r}")
    if sensor not in SENSOR_AXES or stream.values.shape[1] != len(AXES):
        raise ValueError(
            f"write_sensor_csv expects sensors {sorted(SENSOR_AXES)} with {len(AXES)} axes. "
            f"Received: sensor={sensor!r}, values.shape={stream.values.shape}")
    if not len(stream):
        return
    previous = last_t.get((rec.device, sensor), -np.inf)
    if stream.t_s[0] <= previous:
        raise ValueError(
            f"recordings of device '{rec.device}' must follow each other in time; sensor "
            f"'{sensor}' starts at {stream.t_s[0]!r} s, not after {previous!r} s")
    last_t[(rec.device, sensor)] = float(stream.t_s[-1])


def _parse_header(line: bytes, path: Path) -> list[str]:
    """Column names of the header line, checked: required ones present, none unknown or twice."""
    text = line.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    if not text:
        raise DataFormatError(f"empty file; expected the header {','.join(CSV_COLUMNS)}",
                              path=path, line=1)
    columns = [c.strip() for c in text.split(",")]
    for name in columns:
        if name not in CSV_COLUMNS:
            raise DataFormatError(f"unknown column; expected columns among {list(CSV_COLUMNS)}. "
                                  f"Received: {name!r}", path=path, line=1, field=name)
        if columns.count(name) > 1:
            raise DataFormatError("column appears twice in the header", path=path, line=1,
                                  field=name)
    for name in REQUIRED_COLUMNS:
        if name not in columns:
            raise DataFormatError(f"missing column; expected a header with "
                                  f"{','.join(REQUIRED_COLUMNS)} (user,label,target optional). "
                                  f"Received: {text!r}", path=path, line=1, field=name)
    return columns


def _parse_fast(body: bytes, columns: list[str]) -> pd.DataFrame | None:
    """Typed parse of a well-formed body; None when any row needs the careful parse."""
    n_lines = count_lines(body)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            table = pd.read_csv(io.BytesIO(body), header=None, names=columns, index_col=False,
                                dtype={c: _FLOAT_DTYPES.get(c, "category") for c in columns},
                                na_filter=False, quoting=csv.QUOTE_NONE, engine="c")
    except (ValueError, Warning):
        return None
    if len(table) != n_lines or body.count(b",") != n_lines * (len(columns) - 1):
        return None
    if any(not _is_text(table[c].cat.categories) for c in columns if c in _TEXT_COLUMNS):
        return None  # pandas 3 reads "007" as 7: only the careful parse keeps names exact
    table = _complete(table)
    table["line"] = np.arange(2, 2 + len(table))
    return table


def _parse_slow(body: bytes, columns: list[str], first_line: int
                ) -> tuple[pd.DataFrame, list[RowFault]]:
    """String parse with a fault for every row with the wrong number of fields."""
    fields, lines, faults = split_csv_lines(body, columns, first_line)
    table = _complete(fields)
    table["line"] = lines
    return table, faults


def _complete(table: pd.DataFrame) -> pd.DataFrame:
    """CSV_COLUMNS in order, absent optional ones empty, text columns categorical."""
    out = pd.DataFrame(index=table.index)
    for name in CSV_COLUMNS:
        column = table[name] if name in table else pd.Series("", index=table.index, dtype=str)
        out[name] = column if name in _FLOAT_DTYPES else column.astype("category")
    return out


def _is_text(categories: pd.Index) -> bool:
    return pd.api.types.is_object_dtype(categories) or pd.api.types.is_string_dtype(categories)


def _stripped(values: pd.Series) -> np.ndarray:
    """(n,) object array of the values as stripped strings (categorical or not)."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        categories = pd.Series(values.cat.categories.astype(str)).str.strip().to_numpy(object)
        return np.append(categories, "")[values.cat.codes.to_numpy()]  # code -1 -> ""
    return values.astype(str).str.strip().to_numpy(dtype=object)


def _row_faults(table: pd.DataFrame, faults: list[RowFault]) -> np.ndarray:
    """Check every field of every row; append a RowFault per problem; return the bad-row mask.

    Parses string columns to float in place (`timestamp_s`, `x`, `y`, `z`, and `target`,
    where an empty string becomes NaN, meaning "no target").
    """
    received = {name: table[name].copy() for name in CSV_COLUMNS}
    checks: list[tuple[str, str, str, np.ndarray]] = []
    for name in _FLOAT_DTYPES:
        values, non_numeric, non_finite = parse_floats(table[name])
        checks.append(("non-numeric value", name, "a number", non_numeric))
        checks.append(("non-finite value", name, "a finite number", non_finite))
        table[name] = values
    has_target = _stripped(table["target"]) != ""
    target, non_numeric, non_finite = parse_floats(table["target"])
    checks.append(("non-numeric value", "target", "a number or nothing", non_numeric & has_target))
    checks.append(("non-finite value", "target", "a finite number", non_finite & has_target))
    table["target"] = np.where(has_target, target, np.nan)
    checks.append(("unknown sensor", "sensor", f"one of {sorted(SENSOR_AXES)}",
                   ~table["sensor"].isin(list(SENSOR_AXES)).to_numpy()))
    checks.append(("empty device", "device", "a device id",
                   _stripped(table["device"]) == ""))
    return first_faults(checks, table["line"].to_numpy(), received, faults)


def _order_faults(table: pd.DataFrame, faults: list[RowFault]) -> np.ndarray:
    """Rows whose timestamp is not above all earlier ones of their (device, sensor)."""
    keys = [table["device"], table["sensor"]]
    running_max = table["timestamp_s"].groupby(keys, sort=False, observed=True).cummax()
    previous = running_max.groupby(keys, sort=False, observed=True).shift()
    t, prev = table["timestamp_s"].to_numpy(), previous.to_numpy(dtype=np.float64)
    lines = table["line"].to_numpy()
    received = {"timestamp_s": table["timestamp_s"]}
    checks = [("duplicate timestamp", "timestamp_s",
               "a time after the previous sample of the same device and sensor", t == prev),
              ("non-monotonic timestamp", "timestamp_s",
               "a time after the previous samples of the same device and sensor", t < prev)]
    return first_faults(checks, lines, received, faults)


def _make_recordings(table: pd.DataFrame, source: str) -> list[Recording]:
    """Group valid rows into Recordings by contiguous (user, label, target) runs per device."""
    if table.empty:
        return []
    table = table.reset_index(drop=True)
    key = table.groupby(["user", "label", "target"], sort=False, observed=True,
                        dropna=False).ngroup()
    device = table["device"]
    new_run = key != key.groupby(device, sort=False, observed=True).shift()
    table["run"] = new_run.astype(np.int64).groupby(device, sort=False, observed=True).cumsum()
    recordings = []
    for (device, _), rows in table.groupby(["device", "run"], sort=False, observed=True):
        first = rows.iloc[0]
        streams = {str(sensor): SensorStream(part["timestamp_s"].to_numpy(),
                                             part[list(AXES)].to_numpy())
                   for sensor, part in rows.groupby("sensor", sort=False, observed=True)}
        recordings.append(Recording(
            device=str(device), streams=streams, user=str(first["user"]) or None,
            label=str(first["label"]) or None,
            target=None if np.isnan(first["target"]) else float(first["target"]),
            source=source))
    return recordings


# ------------------------------------------------------------ text helpers (shared with hhar)
@dataclass
class RowFault:
    """Rows that fail one check.

    Attributes:
        reason: report key, e.g. "non-numeric value".
        field: column name, or None for whole-line problems.
        expected: what the field should hold, for the error message.
        lines: (k,) 1-based line numbers.
        received: (k,) the offending values (or line texts), for the error message.
    """

    reason: str
    field: str | None
    expected: str
    lines: np.ndarray
    received: np.ndarray


def count_lines(data: bytes) -> int:
    """Lines in `data`, counting a last line without a newline."""
    return data.count(b"\n") + (1 if data and not data.endswith(b"\n") else 0)


def split_csv_lines(data: bytes, columns: Sequence[str], first_line: int
                    ) -> tuple[pd.DataFrame, np.ndarray, list[RowFault]]:
    """Split text into rows of string fields, ignoring blank lines.

    Args:
        data: text, lines ending in "\\n" or "\\r\\n"; not valid UTF-8 is replaced.
        columns: the field names, in order.
        first_line: 1-based line number of the first line of `data`.

    Returns:
        fields: (k, len(columns)) string DataFrame of the rows with the right field count.
        lines: (k,) their line numbers.
        faults: "wrong number of fields" rows, one RowFault per field count; its field is
            the first missing column, or the last column for rows with extra fields.
    """
    text = pd.Series(data.decode("utf-8", errors="replace").split("\n"), dtype=str)
    text = text.str.rstrip("\r")
    numbers = np.arange(first_line, first_line + len(text))
    blank = text.str.strip().to_numpy(dtype=object) == ""
    counts = text.str.count(",").to_numpy() + 1
    good = ~blank & (counts == len(columns))
    faults = []
    for count in np.unique(counts[~blank & ~good]):
        rows = ~blank & (counts == count)
        field = columns[min(count, len(columns) - 1)]
        faults.append(RowFault("wrong number of fields", field,
                               f"{len(columns)} fields ({','.join(columns)}), not {count}",
                               numbers[rows], text[rows].to_numpy(dtype=object)))
    fields = text[good].str.split(",", expand=True)
    if fields.shape[1] != len(columns):
        fields = pd.DataFrame({k: pd.Series([], dtype=str) for k in range(len(columns))})
    fields.columns = list(columns)
    return fields.reset_index(drop=True), numbers[good], faults


def parse_floats(values: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Parse strings (or pass floats through) to float64.

    Returns:
        numbers: (n,) float64, NaN where not a number.
        non_numeric: (n,) bool, not a number at all (e.g. "abc", "").
        non_finite: (n,) bool, a number but NaN or +-inf (e.g. "nan", "inf", "1e999").
    """
    if isinstance(values.dtype, pd.CategoricalDtype):
        numbers, non_numeric, non_finite = parse_floats(pd.Series(values.cat.categories, dtype=str))
        codes = values.cat.codes.to_numpy()
        return numbers[codes], non_numeric[codes], non_finite[codes]
    if pd.api.types.is_float_dtype(values.dtype) or pd.api.types.is_integer_dtype(values.dtype):
        numbers = values.to_numpy(dtype=np.float64)
        return numbers, np.zeros(len(numbers), bool), ~np.isfinite(numbers)
    numbers = pd.to_numeric(values, errors="coerce").to_numpy(dtype=np.float64)
    nan_word = values.astype(str).str.strip().str.lower().isin(_NAN_WORDS).to_numpy()
    non_numeric = np.isnan(numbers) & ~nan_word
    return numbers, non_numeric, ~np.isfinite(numbers) & ~non_numeric


def first_faults(checks: list[tuple[str, str, str, np.ndarray]], lines: np.ndarray,
                 received: dict, faults: list[RowFault]) -> np.ndarray:
    """Turn (reason, field, expected, bad mask) checks into RowFaults, one per bad row.

    A row failing several checks is counted once, under the first check it fails.

    Args:
        checks: in priority order; each mask has one entry per row.
        lines: (n,) line number per row.
        received: field name -> (n,) values, for error messages.
        faults: list the new RowFaults are appended to.

    Returns:
        (n,) bool, rows that failed any check.
    """
    taken = np.zeros(len(lines), dtype=bool)
    for reason, name, expected, mask in checks:
        new = np.asarray(mask, dtype=bool) & ~taken
        if new.any():
            values = received[name].iloc[np.flatnonzero(new)].to_numpy(dtype=object)
            faults.append(RowFault(reason, name, expected, lines[new], values))
            taken |= new
    return taken


def apply_faults(faults: list[RowFault], report: ReadReport, on_error: str, path: object,
                 where_prefix: str = "") -> None:
    """Raise a DataFormatError for the earliest faulty line, or count every fault in `report`.

    Args:
        where_prefix: put before "line N" in report examples (e.g. the file name).
    """
    faults = [f for f in faults if len(f.lines)]
    if not faults:
        return
    if on_error == "raise":
        fault, i = min(((f, int(np.argmin(f.lines))) for f in faults),
                       key=lambda item: item[0].lines[item[1]])
        name = "line" if fault.reason == "wrong number of fields" else fault.field
        raise DataFormatError(f"{fault.reason}; expected {fault.expected}. "
                              f"Received: {name}={fault.received[i]!r}",
                              path=path, line=int(fault.lines[i]), field=fault.field)
    for fault in faults:
        order = np.sort(fault.lines)
        n_examples = min(len(order), report.max_examples)
        for line in order[:n_examples]:
            report.skip(fault.reason, f"{where_prefix}line {line}")
        if len(order) > n_examples:
            report.skip(fault.reason, f"{where_prefix}line {order[n_examples]}",
                        count=len(order) - n_examples)


def write_csv_rows(handle: TextIO, columns: Sequence[np.ndarray | str],
                   chunk_rows: int = 100_000) -> None:
    """Append CSV rows to an open text file, `chunk_rows` at a time.

    Args:
        columns: one entry per CSV column: a (n,) array (floats written as `repr`, the
            shortest text that reads back to the same float; NaN as an empty field) or a
            str written on every row. At least one must be an array.
    """
    n = max(len(c) for c in columns if not isinstance(c, str))
    for start in range(0, n, chunk_rows):
        stop = min(start + chunk_rows, n)
        cells = [_cells(c, start, stop) for c in columns]
        handle.write("\n".join(map(",".join, zip(*cells))) + "\n")


def _cells(column: np.ndarray | str, start: int, stop: int) -> Iterable[str]:
    if isinstance(column, str):
        return itertools.repeat(column, stop - start)
    part = np.asarray(column[start:stop])
    if part.dtype.kind != "f":
        return list(map(str, part.tolist()))
    text = list(map(repr, part.tolist()))
    for i in np.flatnonzero(np.isnan(part)):
        text[i] = ""
    return text
