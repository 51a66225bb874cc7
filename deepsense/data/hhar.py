"""The raw UCI HHAR files ("Activity recognition exp"): read, write, and corrupt on purpose.

Heterogeneity Activity Recognition (Stisen et al., SenSys 2015): 9 users (a..i), 8 phones
and 4 watches, six activities. Four files, ~33 million rows, 1.3 GB::

    Index,Arrival_Time,Creation_Time,x,y,z,User,Model,Device,gt
    0,1424696633908,1424696631913248572,-5.958191,0.6880646,8.135345,a,nexus4,nexus4_1,stand

Creation_Time is the sensor clock in nanoseconds (epoch for phones, time since boot for
watches); Arrival_Time is the logger's epoch time in ms (unused); gt is the activity or
"null" for unlabelled stretches.

```python
recordings, report = read_hhar("Activity recognition exp")   # one per (user, device, gt)
print(report.summary())
```

Reading streams each file in blocks of about `chunk_rows` lines. A block is parsed with
typed columns (fast); only a block that fails is halved until the bad rows sit in small
blocks, which are parsed as text to name every bad line.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from deepsense.data.csv_format import (RowFault, apply_faults, count_lines, first_faults,
                                       parse_floats, split_csv_lines, write_csv_rows)
from deepsense.data.recording import ReadReport, Recording, SensorStream, check_on_error
from deepsense.errors import DataFormatError

HHAR_COLUMNS = ("Index", "Arrival_Time", "Creation_Time", "x", "y", "z", "User", "Model",
                "Device", "gt")
#: File name -> (wearable kind, sensor).
HHAR_FILES = {
    "Phones_accelerometer.csv": ("phone", "acc"),
    "Phones_gyroscope.csv": ("phone", "gyro"),
    "Watch_accelerometer.csv": ("watch", "acc"),
    "Watch_gyroscope.csv": ("watch", "gyro"),
}
HHAR_LABELS = ("bike", "sit", "stand", "walk", "stairsup", "stairsdown")
UNLABELLED = "null"
#: Devices that the released DeepSense HHAR code leaves out (bad or irregular sampling).
EXCLUDED_BY_DEEPSENSE = ("lgwatch_1", "lgwatch_2", "s3mini_2")

_USED = ("Creation_Time", "x", "y", "z", "User", "Device", "gt")
_FAST_DTYPES = {"Creation_Time": "int64", "x": "float64", "y": "float64", "z": "float64",
                "User": "category", "Device": "category", "gt": "category"}
_NS_PER_S = 1_000_000_000
_SLOW_LINES = 4096          # blocks at most this long are parsed as text
_SPLIT = 16                 # a rejected block is cut in this many pieces
_WATCH_MARKERS = ("watch", "gear")


def read_hhar(input_dir: str | Path, *, on_error: str = "skip", include_unlabelled: bool = False,
              chunk_rows: int = 1_000_000, progress: bool = True
              ) -> tuple[list[Recording], ReadReport]:
    """Read the HHAR folder into one Recording per (User, Device, gt).

    Each Recording has an "acc" and a "gyro" stream (time = Creation_Time / 1e9 s, sorted;
    later rows with an already seen timestamp are dropped as "duplicate timestamp").
    Skipped rows are counted in the report by reason: "wrong number of fields",
    "non-numeric value", "non-finite value", "empty user", "empty device",
    "unknown label", "unlabelled" (gt "null", unless `include_unlabelled`),
    "duplicate timestamp", and "missing sensor" (a key with acc but no gyro or the reverse).

    Args:
        input_dir: folder with some of the four HHAR_FILES (at least one acc and one gyro).
        on_error: "skip" (default: the real data is messy) counts malformed rows; "raise"
            stops at the first one with a DataFormatError naming file, line and field.
            Duplicate timestamps, unlabelled rows and missing sensors are always counted.
        include_unlabelled: keep gt "null" rows as Recordings with label None.
        chunk_rows: about this many lines are parsed at a time (bounds memory).
        progress: show a tqdm progress bar (by bytes) on stderr.

    Returns:
        recordings: sorted by (user, device, label); values (n, 3) float64.
        report: rows read and skipped, with "<file> line <n>" examples.

    Raises:
        FileNotFoundError: no acc file or no gyro file in `input_dir`.
        DataFormatError: an empty file, a bad header, or a malformed row (on_error="raise").
    """
    check_on_error(on_error)
    if not isinstance(chunk_rows, int) or chunk_rows < 1:
        raise ValueError(
            f"chunk_rows expected a positive integer. Received: chunk_rows={chunk_rows!r}")
    input_dir = Path(input_dir)
    files = [input_dir / name for name in HHAR_FILES if (input_dir / name).is_file()]
    found = {HHAR_FILES[f.name][1] for f in files}
    if found != {"acc", "gyro"}:
        raise FileNotFoundError(
            f"{input_dir}: expected at least one accelerometer and one gyroscope file among "
            f"{list(HHAR_FILES)}. Found: {[f.name for f in files]}")
    report = ReadReport(path=str(input_dir))
    chunks: dict = defaultdict(lambda: defaultdict(list))
    bar = _progress_bar(sum(f.stat().st_size for f in files), progress)
    try:
        for file_index, path in enumerate(files):
            _read_file(path, file_index, chunks, report, on_error, include_unlabelled,
                       chunk_rows, bar)
    finally:
        if bar is not None:
            bar.close()
    return _make_recordings(chunks, [f.name for f in files], report, str(input_dir)), report


def write_hhar(recordings: Sequence[Recording], out_dir: str | Path, *,
               model_of_device: Mapping[str, str] | None = None) -> list[Path]:
    """Write recordings as the four raw HHAR files (only those with rows are created).

    A device whose id contains "watch" or "gear" goes to the Watch files, any other to the
    Phones files. Creation_Time = round(t_s * 1e9) ns; Arrival_Time = Creation_Time in ms,
    shifted onto 2015 epoch time when the clock is not an epoch clock; Index counts rows.

    Args:
        recordings: each with a user, a label in HHAR_LABELS or None ("null"), and "acc"
            and/or "gyro" streams of 3 axes.
        out_dir: created if needed.
        model_of_device: device id -> Model column; default the id without its "_<n>"
            suffix ("nexus4_1" -> "nexus4").

    Returns:
        The files written.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    by_file: dict[str, list[tuple[Recording, SensorStream]]] = defaultdict(list)
    for rec in recordings:
        _check_writable(rec)
        kind = "watch" if any(m in rec.device.lower() for m in _WATCH_MARKERS) else "phone"
        for name, (file_kind, sensor) in HHAR_FILES.items():
            if file_kind == kind and sensor in rec.streams and len(rec.streams[sensor]):
                by_file[name].append((rec, rec.streams[sensor]))
    written = []
    for name in HHAR_FILES:
        if name not in by_file:
            continue
        path = out_dir / name
        with open(path, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(",".join(HHAR_COLUMNS) + "\n")
            index = 0
            for rec, stream in by_file[name]:
                model = (model_of_device or {}).get(rec.device, rec.device.rsplit("_", 1)[0])
                creation_ns = _to_ns(stream.t_s)
                arrival_ms = creation_ns // 1_000_000 + _arrival_offset_ms(stream.t_s[0])
                write_csv_rows(handle, [
                    np.arange(index, index + len(stream)), arrival_ms, creation_ns,
                    stream.values[:, 0], stream.values[:, 1], stream.values[:, 2], rec.user,
                    model, rec.device, rec.label or UNLABELLED])
                index += len(stream)
        written.append(path)
    return written


# ----------------------------------------------------------------------------- reading
def _read_file(path: Path, file_index: int, chunks: dict, report: ReadReport, on_error: str,
               include_unlabelled: bool, chunk_rows: int, bar) -> None:
    """Parse one file block by block into `chunks[(user, device, label)][sensor]`."""
    sensor = HHAR_FILES[path.name][1]
    with open(path, "rb") as handle:
        header = handle.readline()
        _check_header(header, path)
        if bar is not None:
            bar.update(len(header))
        line = 2
        for block in _iter_blocks(handle, chunk_rows):
            n_lines = count_lines(block)
            tables, faults = _parse_block(block, line, n_lines)
            report.rows_read += sum(map(len, tables)) + sum(len(f.lines) for f in faults)
            apply_faults(faults, report, on_error, path, where_prefix=f"{path.name} ")
            for table in tables:
                _collect(table, sensor, file_index, path.name, chunks, report,
                         include_unlabelled)
            line += n_lines
            if bar is not None:
                bar.update(len(block))


def _check_header(header: bytes, path: Path) -> None:
    text = header.decode("utf-8", errors="replace").lstrip("\ufeff").strip()
    if not text:
        raise DataFormatError(f"empty file; expected the header {','.join(HHAR_COLUMNS)}",
                              path=path, line=1)
    columns = [c.strip() for c in text.split(",")]
    for position, name in enumerate(HHAR_COLUMNS):
        got = columns[position] if position < len(columns) else None
        if got != name:
            raise DataFormatError(f"bad header; expected {','.join(HHAR_COLUMNS)}. "
                                  f"Received: {text!r}", path=path, line=1, field=name)
    if len(columns) != len(HHAR_COLUMNS):
        raise DataFormatError(f"bad header; expected {','.join(HHAR_COLUMNS)}. "
                              f"Received: {text!r}", path=path, line=1, field=columns[-1])


def _iter_blocks(handle: BinaryIO, chunk_rows: int) -> Iterator[bytes]:
    """Blocks of whole lines, about `chunk_rows` lines each (judged from the first block)."""
    block_bytes = None
    carry = b""
    while True:
        data = handle.read(block_bytes or 1 << 20)
        if not data:
            if carry:
                yield carry
            return
        cut = data.rfind(b"\n") + 1
        if cut == 0:
            carry += data
            continue
        block = b"".join((carry, memoryview(data)[:cut]))
        carry = data[cut:]
        if block_bytes is None:
            block_bytes = max(1 << 16, int(chunk_rows * len(block) / block.count(b"\n")))
        yield block


def _parse_block(block: bytes, first_line: int, n_lines: int
                 ) -> tuple[list[pd.DataFrame], list[RowFault]]:
    """Tables of valid rows (columns t_s, x, y, z, User, Device, gt, line) and the faults.

    A block the typed parser rejects is cut in `_SPLIT` pieces, recursively, so that only
    pieces of at most `_SLOW_LINES` lines around the bad rows are parsed as text.
    """
    table = _parse_fast(block, n_lines)
    if table is not None:
        table["line"] = np.arange(first_line, first_line + len(table))
        return [table], []
    if n_lines <= _SLOW_LINES:
        return _parse_slow(block, first_line)
    cuts = sorted({block.find(b"\n", len(block) * k // _SPLIT) + 1 for k in range(1, _SPLIT)}
                  - {0, len(block)})
    if not cuts:
        return _parse_slow(block, first_line)
    tables: list[pd.DataFrame] = []
    faults: list[RowFault] = []
    for start, stop in zip([0] + cuts, cuts + [len(block)]):
        piece = block[start:stop]
        n_lines = count_lines(piece)
        piece_tables, piece_faults = _parse_block(piece, first_line, n_lines)
        tables += piece_tables
        faults += piece_faults
        first_line += n_lines
    return tables, faults


def _parse_fast(block: bytes, n_lines: int) -> pd.DataFrame | None:
    """Typed parse; None unless every one of the `n_lines` lines is a well-formed row."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            table = pd.read_csv(io.BytesIO(block), header=None, names=HHAR_COLUMNS,
                                usecols=_USED, dtype=_FAST_DTYPES, index_col=False,
                                na_filter=False, quoting=csv.QUOTE_NONE, engine="c")
    except (ValueError, Warning):
        return None
    if len(table) != n_lines or block.count(b",") != n_lines * (len(HHAR_COLUMNS) - 1):
        return None
    xyz = table[["x", "y", "z"]].to_numpy()
    known = table["gt"].isin(HHAR_LABELS + (UNLABELLED,))
    named = [(table[name].str.strip() != "").all() for name in ("User", "Device")]
    if not (np.isfinite(xyz).all() and known.all() and all(named)):
        return None
    table.insert(0, "t_s", _ns_to_s(table.pop("Creation_Time").to_numpy()))
    return table


def _parse_slow(block: bytes, first_line: int) -> tuple[list[pd.DataFrame], list[RowFault]]:
    """Text parse naming every bad line; same output as `_parse_fast` for good rows."""
    fields, lines, faults = split_csv_lines(block, HHAR_COLUMNS, first_line)
    checks = []
    for name in ("Creation_Time", "x", "y", "z"):
        _, non_numeric, non_finite = parse_floats(fields[name])
        checks.append(("non-numeric value", name, "a number", non_numeric))
        checks.append(("non-finite value", name, "a finite number", non_finite))
    for name, reason in (("User", "empty user"), ("Device", "empty device")):
        empty = fields[name].str.strip().to_numpy(dtype=object) == ""
        checks.append((reason, name, "a non-empty name", empty))
    checks.append(("unknown label", "gt", f"one of {list(HHAR_LABELS) + [UNLABELLED]}",
                   ~fields["gt"].isin(HHAR_LABELS + (UNLABELLED,)).to_numpy()))
    bad = first_faults(checks, lines, fields, faults)
    good = fields[~bad]
    creation = pd.to_numeric(good["Creation_Time"]).to_numpy()
    table = pd.DataFrame({"t_s": _ns_to_s(creation)})
    for name in ("x", "y", "z"):
        table[name] = pd.to_numeric(good[name]).to_numpy(dtype=np.float64)
    for name in ("User", "Device", "gt"):
        table[name] = good[name].to_numpy(dtype=object)
    table["line"] = lines[~bad]
    return [table], faults


def _collect(table: pd.DataFrame, sensor: str, file_index: int, file_name: str, chunks: dict,
             report: ReadReport, include_unlabelled: bool) -> None:
    """Append a block's valid rows to `chunks[(user, device, label)][sensor]`."""
    unlabelled = (table["gt"] == UNLABELLED).to_numpy()
    if unlabelled.any() and not include_unlabelled:
        lines = table["line"].to_numpy()[unlabelled]
        for line in lines[:report.max_examples]:
            report.skip("unlabelled", f"{file_name} line {line}")
        if len(lines) > report.max_examples:
            report.skip("unlabelled", f"{file_name} line {lines[report.max_examples]}",
                        count=len(lines) - report.max_examples)
        table = table[~unlabelled]
    t = table["t_s"].to_numpy()
    xyz = table[["x", "y", "z"]].to_numpy(dtype=np.float64)
    lines = table["line"].to_numpy(dtype=np.int32)
    groups = table.groupby(["User", "Device", "gt"], sort=False, observed=True).indices
    for (user, device, gt), rows in groups.items():
        key = (str(user), str(device), None if gt == UNLABELLED else str(gt))
        chunks[key][sensor].append((t[rows], xyz[rows], lines[rows],
                                    np.full(len(rows), file_index, np.uint8)))


def _make_recordings(chunks: dict, file_names: list[str], report: ReadReport,
                     source: str) -> list[Recording]:
    """Concatenate, sort and de-duplicate each key's streams; report incomplete keys."""
    recordings = []
    for key in sorted(chunks, key=lambda k: (k[0], k[1], k[2] is None, k[2] or "")):
        user, device, label = key
        parts = chunks.pop(key)
        missing = sorted({"acc", "gyro"} - set(parts))
        if missing:
            n_rows = sum(len(c[0]) for sensor_parts in parts.values() for c in sensor_parts)
            report.skip("missing sensor",
                        f"user {user} device {device} label {label}: no {missing[0]}", n_rows)
            continue
        streams = {}
        for sensor in ("acc", "gyro"):
            t, xyz, lines, files = (np.concatenate(a) for a in zip(*parts.pop(sensor)))
            order = np.argsort(t, kind="stable")
            t, xyz, lines, files = t[order], xyz[order], lines[order], files[order]
            duplicate = np.zeros(len(t), dtype=bool)
            duplicate[1:] = t[1:] == t[:-1]
            if duplicate.any():
                where = sorted(zip(files[duplicate], lines[duplicate]))
                for file_index, line in where[:report.max_examples]:
                    report.skip("duplicate timestamp", f"{file_names[file_index]} line {line}")
                if len(where) > report.max_examples:
                    file_index, line = where[report.max_examples]
                    report.skip("duplicate timestamp", f"{file_names[file_index]} line {line}",
                                count=len(where) - report.max_examples)
            streams[sensor] = SensorStream(t[~duplicate], xyz[~duplicate])
        recordings.append(Recording(device=device, streams=streams, user=user, label=label,
                                    source=source))
    return recordings


def _progress_bar(total_bytes: int, progress: bool):
    if not progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:           # the bar is cosmetic: read without it
        return None
    return tqdm(total=total_bytes, unit="B", unit_scale=True, desc="reading HHAR")


def _ns_to_s(ns: np.ndarray) -> np.ndarray:
    """Nanoseconds (int or float) -> float64 seconds, exact to the nearest representable."""
    seconds = np.floor_divide(ns, _NS_PER_S)
    return seconds.astype(np.float64) + (ns - seconds * _NS_PER_S) / 1e9


# ----------------------------------------------------------------------------- writing
def _check_writable(rec: Recording) -> None:
    """Raise ValueError for a recording the HHAR reader would not read back."""
    text = {"device": rec.device, "user": rec.user, "label": rec.label or UNLABELLED}
    for name, value in text.items():
        if not value or "," in value or "\n" in value:
            raise ValueError(f"write_hhar expects a non-empty {name} without commas or "
                             f"newlines. Received: {name}={value!r} (device {rec.device!r})")
    if rec.label is not None and rec.label not in HHAR_LABELS:
        raise ValueError(f"write_hhar expects labels among {HHAR_LABELS} or None. "
                         f"Received: label={rec.label!r} (device {rec.device!r})")
    for sensor, stream in rec.streams.items():
        if sensor not in ("acc", "gyro") or stream.values.shape[1] != 3:
            raise ValueError(f"write_hhar expects 'acc' and 'gyro' streams of 3 axes. "
                             f"Received: sensor={sensor!r}, values.shape={stream.values.shape}")


def _to_ns(t_s: np.ndarray) -> np.ndarray:
    """float64 seconds -> int64 nanoseconds, rounding only the fraction of a second."""
    seconds = np.floor(t_s)
    return seconds.astype(np.int64) * _NS_PER_S + np.round((t_s - seconds) * 1e9).astype(np.int64)


def _arrival_offset_ms(t0_s: float) -> int:
    """Logger delay (~2 s, as in HHAR), plus 2015-02-23 when the clock is not an epoch clock."""
    return 2_000 + (0 if t0_s > 1e9 else 1_424_696_630_000)


# ----------------------------------------------------------------------- fault injection
#: Kind of fault -> the report reason `read_hhar` gives it.
FAULT_REASONS = {
    "nan": "non-finite value",
    "garbage": "non-numeric value",
    "unknown_label": "unknown label",
    "duplicate": "duplicate timestamp",
    "truncated": "wrong number of fields",
}


@dataclass(frozen=True)
class InjectedFault:
    """One corrupted row: `line` is 1-based in the corrupted `file` (a file name)."""

    file: str
    line: int
    kind: str
    reason: str


def inject_hhar_faults(in_dir: str | Path, out_dir: str | Path, *, n_faults: int,
                       rng: np.random.Generator,
                       kinds: Sequence[str] = tuple(FAULT_REASONS)) -> list[InjectedFault]:
    """Copy the HHAR files of `in_dir` to `out_dir`, corrupting `n_faults` distinct data rows.

    Kinds (cycled over the chosen rows, in random order): "nan" (x becomes NaN), "garbage"
    (y becomes text), "unknown_label" (gt "dancing"), "duplicate" (the row appears twice),
    "truncated" (only the first 5 fields are left). On clean input that has no duplicate
    timestamps, `read_hhar(out_dir, include_unlabelled=True)` skips exactly these rows;
    without `include_unlabelled` a duplicated "null" row counts as "unlabelled".

    Returns:
        The faults, sorted by file and line.
    """
    unknown = set(kinds) - set(FAULT_REASONS)
    if not kinds or unknown:
        raise ValueError(f"kinds expected a non-empty subset of {list(FAULT_REASONS)}. "
                         f"Received: kinds={list(kinds)}")
    in_dir, out_dir = Path(in_dir), Path(out_dir)
    if in_dir.resolve() == out_dir.resolve():
        raise ValueError(f"out_dir must differ from in_dir. Received: {out_dir}")
    files = [in_dir / name for name in HHAR_FILES if (in_dir / name).is_file()]
    n_rows = [_count_data_rows(f) for f in files]
    if not isinstance(n_faults, int) or not 0 <= n_faults <= sum(n_rows):
        raise ValueError(f"n_faults expected an integer in [0, {sum(n_rows)}] (the data rows "
                         f"in {in_dir}). Received: n_faults={n_faults!r}")
    chosen = np.sort(rng.choice(sum(n_rows), size=n_faults, replace=False))
    order = rng.permutation(n_faults)
    kind_of = {int(chosen[i]): kinds[k % len(kinds)] for k, i in enumerate(order)}
    out_dir.mkdir(parents=True, exist_ok=True)
    faults, offset = [], 0
    for path, n in zip(files, n_rows):
        targets = {row - offset: kind for row, kind in kind_of.items()
                   if offset <= row < offset + n}
        faults += _corrupt_file(path, out_dir / path.name, targets)
        offset += n
    return faults


def _count_data_rows(path: Path) -> int:
    with open(path, "rb") as handle:
        return max(sum(count_lines(block) for block in _iter_blocks(handle, 1 << 20)) - 1, 0)


def _corrupt_file(src: Path, dst: Path, targets: dict[int, str]) -> list[InjectedFault]:
    """Copy `src` to `dst`, corrupting data rows (0-based) `targets` -> kind."""
    faults, row, inserted = [], 0, 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(fin.readline())
        for block in _iter_blocks(fin, 1 << 16):
            n = count_lines(block)
            hits = sorted(r for r in targets if row <= r < row + n)
            if hits:
                lines = block.split(b"\n")
                for r in reversed(hits):
                    i = r - row
                    lines[i:i + 1] = _corrupt_line(lines[i], targets[r])
                faults += [(r, targets[r]) for r in hits]
                block = b"\n".join(lines)
            fout.write(block)
            row += n
    out = []
    for r, kind in sorted(faults):
        line = r + 2 + inserted + (1 if kind == "duplicate" else 0)
        inserted += kind == "duplicate"
        out.append(InjectedFault(dst.name, line, kind, FAULT_REASONS[kind]))
    return out


def _corrupt_line(line: bytes, kind: str) -> list[bytes]:
    """The line(s) that replace `line` (without its newline) for a fault of `kind`."""
    end = b"\r" if line.endswith(b"\r") else b""
    fields = line[:len(line) - len(end)].split(b",")
    if kind == "duplicate":
        return [line, line]
    if kind == "truncated":
        return [b",".join(fields[:5]) + end]
    position, value = {"nan": (3, b"NaN"), "garbage": (4, b"x?1"),
                       "unknown_label": (9, b"dancing")}[kind]
    fields[position] = value
    return [b",".join(fields) + end]
