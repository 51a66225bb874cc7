"""Tests for the UEA/UCR .ts reader, on the real BasicMotions files and on tiny hand-made ones."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from deepsense.data.ts_format import read_ts
from deepsense.errors import DataFormatError

BASICMOTIONS = Path(__file__).resolve().parents[2] / "datasets" / "basicmotions"
CHANNELS = ("acc_x", "acc_y", "acc_z", "gyro_x", "gyro_y", "gyro_z")


def ts_text(cases, *, dims=6, length=3, labels="walk run", extra_header=()) -> str:
    header = ["# a comment", "@problemName Tiny", "@timeStamps false", "@missing true",
              "@univariate false", f"@dimensions {dims}", "@equalLength true",
              f"@seriesLength {length}", f"@classLabel true {labels}", *extra_header, "@data"]
    return "\n".join(header + list(cases)) + "\n"


def case(label="walk", dims=6, length=3, start=0.0) -> str:
    rows = [",".join(str(start + 10 * k + i) for i in range(length)) for k in range(dims)]
    return ":".join(rows + [label])


def write(tmp_path, text, name="tiny.ts") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("split", ["train", "test"])
def test_read_ts_reads_real_basicmotions(split):
    path = BASICMOTIONS / f"BasicMotions_{split.upper()}.ts"
    recordings, report = read_ts(path, sample_rate_hz=10, split=split)
    assert len(recordings) == 40 and report.rows_skipped == 0
    assert Counter(r.label for r in recordings) == {
        "Standing": 10, "Running": 10, "Walking": 10, "Badminton": 10}
    for rec in recordings:
        assert sorted(rec.streams) == ["acc", "gyro"]
        assert all(s.values.shape == (100, 3) for s in rec.streams.values())
        assert rec.split == split and rec.user is None
    np.testing.assert_allclose(recordings[0].streams["gyro"].t_s, np.arange(100) / 10)
    assert recordings[0].device == "BasicMotions_0"


def test_read_ts_basicmotions_first_case_matches_the_file():
    recordings, _ = read_ts(BASICMOTIONS / "BasicMotions_TRAIN.ts", sample_rate_hz=10)
    acc_x = recordings[0].streams["acc"].values[:, 0]
    assert acc_x[:3].tolist() == [0.079106, 0.079106, -0.903497]
    assert acc_x[-1] == -0.20515 and recordings[0].label == "Standing"


def test_read_ts_maps_dimensions_to_channels(tmp_path):
    path = write(tmp_path, ts_text([case("walk"), case("run", start=0.5)]))
    channels = ("gyro_z", "gyro_y", "gyro_x", "acc_x", "acc_y", "acc_z")
    recordings, _ = read_ts(path, sample_rate_hz=50, channels=channels)
    rec = recordings[1]
    assert (rec.device, rec.label, rec.split, rec.target) == ("Tiny_1", "run", None, None)
    np.testing.assert_array_equal(rec.streams["gyro"].values[0], [20.5, 10.5, 0.5])
    np.testing.assert_array_equal(rec.streams["acc"].values[:, 0], [30.5, 31.5, 32.5])
    np.testing.assert_allclose(rec.streams["acc"].t_s, [0.0, 0.02, 0.04])


def test_read_ts_reads_a_regression_target(tmp_path):
    text = ts_text([case("1.5"), case("-0.25")]).replace("@classLabel true walk run",
                                                        "@targetLabel true")
    recordings, _ = read_ts(write(tmp_path, text), sample_rate_hz=10)
    assert [(r.label, r.target) for r in recordings] == [(None, 1.5), (None, -0.25)]


BAD_CASES = {
    "missing value": (case().replace("0.0,1.0", "?,1.0", 1), "dimension 0"),
    "non-numeric value": (case().replace("20.0", "abc", 1), "dimension 2"),
    "non-finite value": (case().replace("51.0", "inf", 1), "dimension 5"),
    "wrong number of dimensions": (case(dims=5), "dimensions"),
    "unequal length": (case().replace(",12.0", "", 1), "dimensions"),
    "wrong series length": (case(length=4), "dimension 0"),
    "unknown label": (case("jump"), "label"),
}


@pytest.mark.parametrize("reason", sorted(BAD_CASES))
def test_read_ts_bad_case_raises_with_file_line_and_field(tmp_path, reason):
    bad, field = BAD_CASES[reason]
    path = write(tmp_path, ts_text([case(), bad, case()]))
    with pytest.raises(DataFormatError) as info:
        read_ts(path, sample_rate_hz=10)
    assert (info.value.line, info.value.field) == (12, field)
    message = str(info.value)
    assert str(path) in message and "line 12" in message and f"field '{field}'" in message
    assert reason in message and "expected" in message


def test_read_ts_skip_counts_each_bad_case_and_keeps_case_indices(tmp_path):
    cases = [case()] + [bad for bad, _ in BAD_CASES.values()] + [case("run")]
    recordings, report = read_ts(write(tmp_path, ts_text(cases)), sample_rate_hz=10,
                                 on_error="skip")
    assert [r.device for r in recordings] == ["Tiny_0", f"Tiny_{len(BAD_CASES) + 1}"]
    assert report.skipped == {reason: 1 for reason in BAD_CASES}
    assert report.examples["missing value"] == ["line 12"]
    assert report.rows_read == len(cases)


@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("edit, line, field", [
    (lambda t: t.replace("@data\n", ""), 10, None),
    (lambda t: t.replace("@timeStamps false", "@timeStamps true"), 3, "@timeStamps"),
    (lambda t: t.replace("@dimensions 6", "@dimensions 3"), 6, "@dimensions"),
    (lambda t: t.replace("@dimensions 6", "@dimensions six"), 6, "@dimensions"),
    (lambda t: t.replace("@univariate false", "@color blue"), 5, "@color"),
    (lambda t: t.replace("@problemName Tiny", "@problemName"), 2, "@problemName"),
    (lambda t: t.replace("@classLabel true walk run", "@classLabel maybe"), 9, "@classLabel"),
])
def test_read_ts_bad_header_always_raises(tmp_path, on_error, edit, line, field):
    path = write(tmp_path, edit(ts_text([case()])))
    with pytest.raises(DataFormatError) as info:
        read_ts(path, sample_rate_hz=10, on_error=on_error)
    assert (info.value.line, info.value.field) == (line, field)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("kwargs, match", [
    ({"channels": ("acc_x", "acc_y", "acc_w", "gyro_x", "gyro_y", "gyro_z")}, "channels"),
    ({"channels": ("acc_x", "acc_y", "gyro_x", "gyro_y", "gyro_z", "gyro_x")}, "channels"),
    ({"channels": ("acc_x", "acc_y", "gyro_x", "gyro_y", "gyro_z")}, "axes"),
    ({"sample_rate_hz": 0}, "sample_rate_hz"),
    ({"split": "validation"}, "split"),
    ({"on_error": "ignore"}, "on_error"),
])
def test_read_ts_rejects_bad_arguments(tmp_path, kwargs, match):
    path = write(tmp_path, ts_text([case()]))
    with pytest.raises(ValueError, match=match):
        read_ts(path, **{"sample_rate_hz": 10, **kwargs})
