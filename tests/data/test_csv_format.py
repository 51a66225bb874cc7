"""Tests for our sensor CSV format: round trips, grouping, and every bad-row case."""

from __future__ import annotations

import numpy as np
import pytest

from deepsense.data.csv_format import CSV_COLUMNS, read_sensor_csv, write_sensor_csv
from deepsense.data.recording import Recording, SensorStream
from deepsense.errors import DataFormatError

HEADER = ",".join(CSV_COLUMNS)


def make_recording(rng, device="d1", t0_s=100.0, n=6, **meta) -> Recording:
    return Recording(device, {
        "acc": SensorStream(t0_s + np.arange(n) * 0.01, rng.normal(size=(n, 3))),
        "gyro": SensorStream(t0_s + 0.003 + np.arange(n) * 0.02, rng.normal(size=(n, 3))),
    }, **meta)


def write_lines(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def assert_same_recordings(expected, actual):
    assert len(actual) == len(expected)
    for a, b in zip(expected, actual):
        assert (b.device, b.user, b.label, b.target) == (a.device, a.user, a.label, a.target)
        assert sorted(b.streams) == sorted(a.streams)
        for sensor, stream in a.streams.items():
            np.testing.assert_array_equal(b.streams[sensor].t_s, stream.t_s)
            np.testing.assert_array_equal(b.streams[sensor].values, stream.values)


def test_write_sensor_csv_round_trips_exactly(tmp_path, rng):
    recordings = [
        make_recording(rng, "d1", 1424696633.908, user="a", label="walk", target=1.25),
        make_recording(rng, "d2", 5.0, user="b", label="sit"),
        make_recording(rng, "d1", 1424696700.1, user=None, label="sit", target=0.1 + 0.2),
        make_recording(rng, "d1", 1424696800.0),
    ]
    path = write_sensor_csv(recordings, tmp_path / "r.csv")
    assert path.read_text().splitlines()[0] == HEADER
    actual, report = read_sensor_csv(path)
    assert_same_recordings(recordings, actual)
    assert report.rows_read == 4 * 12 and report.rows_skipped == 0
    assert actual[0].source == str(path)


def test_read_sensor_csv_optional_columns_may_be_absent_or_reordered(tmp_path):
    path = write_lines(tmp_path / "r.csv", [
        "device,sensor,timestamp_s,x,y,z",
        "d1,acc,0.0,1,2,3",
        "d1,gyro,0.005,4,5,6",
        "d1,acc,0.01,7,8,9",
    ])
    (rec,), _ = read_sensor_csv(path)
    assert (rec.user, rec.label, rec.target) == (None, None, None)
    np.testing.assert_array_equal(rec.streams["acc"].values, [[1, 2, 3], [7, 8, 9]])
    np.testing.assert_array_equal(rec.streams["gyro"].t_s, [0.005])


def test_read_sensor_csv_starts_a_recording_when_the_label_changes(tmp_path):
    path = write_lines(tmp_path / "r.csv", [
        HEADER,
        "1.0,d1,acc,0,0,0,a,walk,",
        "1.0,d2,acc,0,0,0,b,walk,",
        "2.0,d1,acc,0,0,0,a,walk,",
        "3.0,d1,acc,0,0,0,a,sit,",
        "2.0,d2,acc,0,0,0,b,walk,",
        "4.0,d1,acc,0,0,0,a,sit,2.5",
    ])
    recordings, _ = read_sensor_csv(path)
    summary = [(r.device, r.label, r.target, r.streams["acc"].t_s.tolist()) for r in recordings]
    assert summary == [("d1", "walk", None, [1.0, 2.0]), ("d2", "walk", None, [1.0, 2.0]),
                       ("d1", "sit", None, [3.0]), ("d1", "sit", 2.5, [4.0])]


def test_read_sensor_csv_ignores_blank_lines_and_crlf(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(f"{HEADER}\r\n1.0,d1,acc,1,2,3,,,\r\n\r\n2.0,d1,acc,x,2,3,,,\r\n".encode())
    with pytest.raises(DataFormatError) as info:
        read_sensor_csv(path)
    assert (info.value.line, info.value.field) == (4, "x")


GOOD = "2.0,d1,acc,1,2,3,a,walk,"
BAD_ROWS = {
    "wrong number of fields": ("2.0,d1,acc,1,2,3,a,walk", "target"),
    "too many fields": ("2.0,d1,acc,1,2,3,a,walk,,9", "target"),
    "non-numeric value": ("2.0,d1,acc,1,abc,3,a,walk,", "y"),
    "nan": ("2.0,d1,acc,nan,2,3,a,walk,", "x"),
    "inf": ("2.0,d1,acc,1,2,-inf,a,walk,", "z"),
    "non-numeric time": ("two,d1,acc,1,2,3,a,walk,", "timestamp_s"),
    "bad target": ("2.0,d1,acc,1,2,3,a,walk,fast", "target"),
    "unknown sensor": ("2.0,d1,magnet,1,2,3,a,walk,", "sensor"),
    "empty device": ("2.0,,acc,1,2,3,a,walk,", "device"),
    "duplicate timestamp": ("1.0,d1,acc,1,2,3,a,walk,", "timestamp_s"),
    "non-monotonic timestamp": ("0.5,d1,acc,1,2,3,a,walk,", "timestamp_s"),
}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_read_sensor_csv_bad_row_raises_with_file_line_and_field(tmp_path, case):
    row, field = BAD_ROWS[case]
    path = write_lines(tmp_path / "bad.csv", [HEADER, "1.0,d1,acc,1,2,3,a,walk,", row, GOOD])
    with pytest.raises(DataFormatError) as info:
        read_sensor_csv(path)
    assert (info.value.line, info.value.field) == (3, field)
    assert str(path) in str(info.value) and "line 3" in str(info.value)
    assert f"field '{field}'" in str(info.value) and "expected" in str(info.value)


def test_read_sensor_csv_skip_counts_every_bad_row_once(tmp_path):
    lines = [HEADER, "1.0,d1,acc,1,2,3,a,walk,"]
    expected = {}
    for k, (case, (row, _)) in enumerate(BAD_ROWS.items()):
        if case == "duplicate timestamp":       # the time of the good row just before
            row = row.replace("1.0", f"{9.0 + k}", 1)
        lines.append(row)
        lines.append(f"{10.0 + k},d1,acc,1,2,3,a,walk,")
    recordings, report = read_sensor_csv(write_lines(tmp_path / "bad.csv", lines),
                                         on_error="skip")
    for case, (row, _) in BAD_ROWS.items():
        reason = {"too many fields": "wrong number of fields", "nan": "non-finite value",
                  "inf": "non-finite value", "non-numeric time": "non-numeric value",
                  "bad target": "non-numeric value"}.get(case, case)
        expected[reason] = expected.get(reason, 0) + 1
    assert dict(report.skipped) == expected
    assert report.examples["unknown sensor"] == ["line 17"]
    assert report.rows_read == len(lines) - 1
    (rec,) = recordings
    assert len(rec.streams["acc"]) == 1 + len(BAD_ROWS)


def test_read_sensor_csv_skip_keeps_timestamps_increasing_after_a_jump(tmp_path):
    path = write_lines(tmp_path / "r.csv", [
        HEADER, "1.0,d1,acc,0,0,0,,,", "9.0,d1,acc,0,0,0,,,", "2.0,d1,acc,0,0,0,,,",
        "3.0,d1,acc,0,0,0,,,", "10.0,d1,acc,0,0,0,,,", "1.0,d1,gyro,0,0,0,,,"])
    (rec,), report = read_sensor_csv(path, on_error="skip")
    assert rec.streams["acc"].t_s.tolist() == [1.0, 9.0, 10.0]
    assert rec.streams["gyro"].t_s.tolist() == [1.0]
    assert report.skipped == {"non-monotonic timestamp": 2}
    assert report.examples["non-monotonic timestamp"] == ["line 4", "line 5"]


@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("header, field", [
    ("", None),
    ("timestamp_s,device,sensor,x,y", "z"),
    ("timestamp_s,device,sensor,x,y,z,speed", "speed"),
    ("timestamp_s,device,device,sensor,x,y,z", "device"),
])
def test_read_sensor_csv_bad_header_always_raises(tmp_path, on_error, header, field):
    path = write_lines(tmp_path / "h.csv", [header] if header else [])
    if not header:
        path.write_bytes(b"")
    with pytest.raises(DataFormatError) as info:
        read_sensor_csv(path, on_error=on_error)
    assert (info.value.line, info.value.field) == (1, field)
    assert str(path) in str(info.value)


def test_read_sensor_csv_header_only_gives_no_recordings(tmp_path):
    recordings, report = read_sensor_csv(write_lines(tmp_path / "r.csv", [HEADER]))
    assert recordings == [] and report.rows_read == 0


def test_read_sensor_csv_rejects_unknown_on_error(tmp_path):
    with pytest.raises(ValueError, match="on_error"):
        read_sensor_csv(tmp_path / "r.csv", on_error="ignore")


def test_write_sensor_csv_rejects_a_device_going_back_in_time(tmp_path, rng):
    recordings = [make_recording(rng, "d1", 100.0), make_recording(rng, "d1", 50.0)]
    with pytest.raises(ValueError, match="follow each other in time"):
        write_sensor_csv(recordings, tmp_path / "r.csv")


def test_write_sensor_csv_rejects_unknown_sensors(tmp_path):
    rec = Recording("d1", {"mag": SensorStream([0.0], [[1.0, 2.0, 3.0]])})
    with pytest.raises(ValueError, match="sensor='mag'"):
        write_sensor_csv([rec], tmp_path / "r.csv")


def test_read_sensor_csv_keeps_numeric_looking_names_and_full_targets(tmp_path):
    """pandas 3 infers "007" as the number 7 in a categorical column: names must stay exact."""
    path = tmp_path / "numeric.csv"
    rows = [f"{0.01 * i},dev1,{sensor},1,2,3,007,walk,4.40" for i in range(30)
            for sensor in ("acc", "gyro")]
    path.write_text("timestamp_s,device,sensor,x,y,z,user,label,target\n" + "\n".join(rows) + "\n")
    recordings, _ = read_sensor_csv(path)
    assert [r.user for r in recordings] == ["007"]
    assert recordings[0].target == pytest.approx(4.4)
