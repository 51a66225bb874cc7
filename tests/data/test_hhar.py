"""Tests for the raw HHAR reader, writer and fault injector."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from deepsense.data.hhar import (FAULT_REASONS, HHAR_COLUMNS, HHAR_FILES, inject_hhar_faults,
                                 read_hhar, write_hhar)
from deepsense.data.recording import Recording, SensorStream
from deepsense.errors import DataFormatError

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "datasets" / "hhar" / "sample"
HEADER = ",".join(HHAR_COLUMNS)


def make_recording(rng, device, user, label, t0_s, n=40, rate_hz=100.0) -> Recording:
    t = t0_s + np.arange(n) / rate_hz
    return Recording(device, {
        "acc": SensorStream(t, np.round(rng.normal(size=(n, 3)), 6)),
        "gyro": SensorStream(t + 0.002, rng.normal(size=(n, 3))),
    }, user=user, label=label)


@pytest.fixture
def recordings(rng) -> list[Recording]:
    return [make_recording(rng, "nexus4_1", "a", "walk", 1424696633.0),
            make_recording(rng, "gear_1", "a", "walk", 27920.678),
            make_recording(rng, "s3mini_2", "b", "stairsup", 1424699000.5),
            make_recording(rng, "nexus4_1", "a", None, 1424696640.0, n=10)]


def assert_close_recordings(expected, actual):
    assert [(r.user, r.device, r.label) for r in actual] == \
        [(r.user, r.device, r.label) for r in expected]
    for a, b in zip(expected, actual):
        for sensor in ("acc", "gyro"):
            np.testing.assert_allclose(b.streams[sensor].t_s, a.streams[sensor].t_s,
                                       rtol=0, atol=1e-6)
            np.testing.assert_array_equal(b.streams[sensor].values, a.streams[sensor].values)


def by_key(recordings):
    return sorted(recordings, key=lambda r: (r.user, r.device, r.label is None, r.label or ""))


def test_write_hhar_round_trips_through_read_hhar(tmp_path, recordings):
    write_hhar(recordings, tmp_path)
    actual, report = read_hhar(tmp_path, include_unlabelled=True, progress=False)
    assert_close_recordings(by_key(recordings), actual)
    assert report.rows_read == 2 * (3 * 40 + 10) and report.rows_skipped == 0


def test_write_hhar_writes_the_raw_layout(tmp_path, recordings):
    written = write_hhar(recordings, tmp_path, model_of_device={"s3mini_2": "s3mini"})
    assert sorted(p.name for p in written) == sorted(HHAR_FILES)
    phone = (tmp_path / "Phones_accelerometer.csv").read_text().splitlines()
    watch = (tmp_path / "Watch_gyroscope.csv").read_text().splitlines()
    assert phone[0] == watch[0] == HEADER
    rows = [line.split(",") for line in phone[1:]]
    assert [int(r[0]) for r in rows] == list(range(len(rows)))
    assert rows[0][1:3] == ["1424696635000", "1424696633000000000"]
    assert {(r[7], r[8]) for r in rows} == {("nexus4", "nexus4_1"), ("s3mini", "s3mini_2")}
    assert Counter(r[9] for r in rows) == {"walk": 40, "stairsup": 40, "null": 10}
    first_watch = watch[1].split(",")
    assert first_watch[2] == "27920680000000" and first_watch[7:9] == ["gear", "gear_1"]
    assert 1.4e12 < int(first_watch[1]) < 1.5e12         # epoch ms, as the logger wrote


def test_write_hhar_rejects_labels_the_reader_would_not_accept(tmp_path, rng):
    rec = make_recording(rng, "nexus4_1", "a", "jump", 0.0)
    with pytest.raises(ValueError, match="label='jump'"):
        write_hhar([rec], tmp_path)


def test_read_hhar_skips_unlabelled_rows_by_default(tmp_path, recordings):
    write_hhar(recordings, tmp_path)
    actual, report = read_hhar(tmp_path, progress=False)
    assert [r.label for r in actual] == ["walk", "walk", "stairsup"]
    assert report.skipped == {"unlabelled": 20}
    assert report.examples["unlabelled"][0] == "Phones_accelerometer.csv line 82"


def test_read_hhar_drops_later_rows_with_a_seen_timestamp(tmp_path):
    (tmp_path / "Phones_accelerometer.csv").write_text("\n".join([
        HEADER,
        "0,1,3000000000,1,1,1,a,nexus4,nexus4_1,sit",
        "1,1,1000000000,2,2,2,a,nexus4,nexus4_1,sit",
        "2,1,3000000000,9,9,9,a,nexus4,nexus4_1,sit",
        "3,1,2000000000,3,3,3,a,nexus4,nexus4_1,sit",
        "4,1,1000000000,9,9,9,a,nexus4,nexus4_1,sit"]) + "\n")
    (tmp_path / "Phones_gyroscope.csv").write_text(
        HEADER + "\n0,1,1000000000,0,0,0,a,nexus4,nexus4_1,sit\n")
    (rec,), report = read_hhar(tmp_path, progress=False)
    assert rec.streams["acc"].t_s.tolist() == [1.0, 2.0, 3.0]
    assert rec.streams["acc"].values[:, 0].tolist() == [2.0, 3.0, 1.0]
    assert report.skipped == {"duplicate timestamp": 2}
    assert report.examples["duplicate timestamp"] == ["Phones_accelerometer.csv line 4",
                                                      "Phones_accelerometer.csv line 6"]


def test_read_hhar_reports_a_key_without_gyro(tmp_path, rng):
    recordings = [make_recording(rng, "nexus4_1", "a", "sit", 1.0e9),
                  make_recording(rng, "nexus4_2", "a", "sit", 1.0e9)]
    del recordings[1].streams["gyro"]
    write_hhar(recordings, tmp_path)
    actual, report = read_hhar(tmp_path, progress=False)
    assert [r.device for r in actual] == ["nexus4_1"]
    assert report.skipped == {"missing sensor": 40}
    assert report.examples["missing sensor"] == ["user a device nexus4_2 label sit: no gyro"]


def test_read_hhar_works_with_phone_files_only(tmp_path, rng):
    write_hhar([make_recording(rng, "s3_1", "c", "bike", 1.0e9)], tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Phones_accelerometer.csv",
                                                          "Phones_gyroscope.csv"]
    (rec,), _ = read_hhar(tmp_path, progress=False)
    assert (rec.user, rec.device, rec.label) == ("c", "s3_1", "bike")


def test_read_hhar_needs_an_acc_and_a_gyro_file(tmp_path, rng):
    write_hhar([make_recording(rng, "s3_1", "c", "bike", 1.0e9)], tmp_path)
    (tmp_path / "Phones_gyroscope.csv").unlink()
    with pytest.raises(FileNotFoundError, match="gyroscope"):
        read_hhar(tmp_path, progress=False)


@pytest.mark.parametrize("on_error", ["raise", "skip"])
@pytest.mark.parametrize("header, field", [
    ("", None),
    ("Index,Arrival_Time,Creation_Time,x,y", "z"),
    (HEADER.replace("gt", "label"), "gt"),
])
def test_read_hhar_bad_or_empty_header_always_raises(tmp_path, recordings, on_error, header,
                                                     field):
    write_hhar(recordings, tmp_path)
    (tmp_path / "Watch_gyroscope.csv").write_text(header)
    with pytest.raises(DataFormatError) as info:
        read_hhar(tmp_path, on_error=on_error, progress=False)
    assert (info.value.line, info.value.field) == (1, field)
    assert "Watch_gyroscope.csv" in str(info.value)


@pytest.fixture
def clean_dir(tmp_path, rng) -> Path:
    """~6,000 labelled rows per file, no duplicate timestamps."""
    recordings = [make_recording(rng, device, user, "walk", t0_s, n=1500, rate_hz=200.0)
                  for device, t0_s in (("nexus4_1", 1.4e9), ("gear_2", 3000.0))
                  for user in "abcd"]
    write_hhar(recordings, tmp_path / "clean")
    return tmp_path / "clean"


FIELD_OF_KIND = {"nan": "x", "garbage": "y", "unknown_label": "gt", "truncated": "z"}


@pytest.mark.parametrize("kind", sorted(FIELD_OF_KIND))
def test_read_hhar_raise_names_file_line_and_field(clean_dir, tmp_path, rng, kind):
    (fault,) = inject_hhar_faults(clean_dir, tmp_path / "bad", n_faults=1, rng=rng, kinds=[kind])
    with pytest.raises(DataFormatError) as info:
        read_hhar(tmp_path / "bad", on_error="raise", progress=False)
    assert (info.value.line, info.value.field) == (fault.line, FIELD_OF_KIND[kind])
    assert Path(info.value.path).name == fault.file
    assert fault.file in str(info.value) and f"line {fault.line}," in str(info.value)
    assert fault.reason in str(info.value)


@pytest.mark.parametrize("chunk_rows", [100, 1_000_000])
def test_read_hhar_skip_reports_exactly_the_injected_faults(clean_dir, tmp_path, rng,
                                                           chunk_rows):
    faults = inject_hhar_faults(clean_dir, tmp_path / "bad", n_faults=15, rng=rng)
    assert Counter(f.kind for f in faults) == {kind: 3 for kind in FAULT_REASONS}
    actual, report = read_hhar(tmp_path / "bad", chunk_rows=chunk_rows, progress=False)
    assert report.skipped == Counter(f.reason for f in faults)
    for reason in FAULT_REASONS.values():
        assert sorted(report.examples[reason]) == sorted(
            f"{f.file} line {f.line}" for f in faults if f.reason == reason)
    expected, _ = read_hhar(clean_dir, progress=False)
    assert sum(len(s) for r in actual for s in r.streams.values()) == \
        sum(len(s) for r in expected for s in r.streams.values()) - 12


def test_read_hhar_gives_the_same_recordings_for_any_block_size(clean_dir):
    small, _ = read_hhar(clean_dir, chunk_rows=7, progress=False)
    large, _ = read_hhar(clean_dir, progress=False)
    assert_close_recordings(large, small)


def test_inject_hhar_faults_rejects_more_faults_than_rows(clean_dir, tmp_path, rng):
    with pytest.raises(ValueError, match="n_faults"):
        inject_hhar_faults(clean_dir, tmp_path / "bad", n_faults=10**6, rng=rng)


def test_read_hhar_reads_the_shipped_sample():
    recordings, report = read_hhar(SAMPLE_DIR, progress=False)
    assert [(r.device, r.user, r.label) for r in recordings] == [("gear_1", "a", "walk"),
                                                                 ("samsungold_1", "a", "walk")]
    assert all(len(s) == 260 for r in recordings for s in r.streams.values())
    assert report.skipped == {"unlabelled": 40}
    assert sum(p.stat().st_size for p in SAMPLE_DIR.iterdir()) < 100_000
