"""One `read_recordings` for prepare, predict and replay: sources, inference, class order."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

import deepsense.data.sources as sources
from deepsense.data.csv_format import write_sensor_csv
from deepsense.data.hhar import HHAR_LABELS
from deepsense.data.sources import (AUTO, ReadOptions, Source, SourceData, add_source_arguments,
                                    infer_source, read_recordings)
from deepsense.data.synthetic import SyntheticSpec, make_recording
from deepsense.errors import ConfigError

DATASETS = Path(__file__).resolve().parents[2] / "datasets"
BASICMOTIONS = DATASETS / "basicmotions" / "BasicMotions_TEST.ts"


def test_auto_reads_csv_hhar_ts_and_synthetic(tmp_path):
    spec = SyntheticSpec(n_users=1, devices=("nexus4_1",), seconds_per_activity=4.0, n_gaps=0)
    path = write_sensor_csv([make_recording(spec, "a", "nexus4_1", "walk")], tmp_path / "r.csv")
    data = read_recordings(AUTO, path)
    assert [r.device for r in data.recordings] == ["nexus4_1"] and data.source == "csv"
    hhar = read_recordings(AUTO, DATASETS / "hhar" / "sample").recordings
    assert hhar and all({"acc", "gyro"} <= set(r.streams) for r in hhar)
    ts = read_recordings(AUTO, BASICMOTIONS, ReadOptions(sample_rate_hz=10.0)).recordings
    assert len(ts) == 40
    with pytest.raises(ConfigError, match="sample rate"):
        read_recordings(AUTO, BASICMOTIONS)
    synthetic = read_recordings(AUTO, "synthetic:b", ReadOptions(synthetic=SyntheticSpec(
        n_users=1, devices=("nexus4_1",), seconds_per_activity=2.0, n_gaps=0))).recordings
    assert {r.user for r in synthetic} == {"b"} and len(synthetic) == 6


def test_infer_source_from_the_path(tmp_path):
    assert [infer_source(p) for p in ("synthetic", "synthetic:c", tmp_path, "x.ts", "x.csv")] \
        == ["synthetic", "synthetic", "hhar", "ts", "csv"]


def test_hhar_class_order_is_the_hhar_labels():
    data = read_recordings("hhar", DATASETS / "hhar" / "sample")
    assert data.class_names == list(HHAR_LABELS) and len(data.reports) == 1
    assert read_recordings("ts", BASICMOTIONS, ReadOptions(sample_rate_hz=10.0)).class_names is None


@pytest.mark.parametrize("source, path, options, message", [
    ("nope", "x.csv", ReadOptions(), "source expected one of"),
    ("csv", None, ReadOptions(), "needs a path"),
    (AUTO, None, ReadOptions(), "give a path"),
    ("csv", "x.csv", ReadOptions(test_path="y.csv"), "for source 'ts' only"),
    ("synthetic", "synthetic:B", ReadOptions(), "one letter"),
])
def test_bad_requests_are_config_errors(source, path, options, message):
    with pytest.raises(ConfigError, match=message):
        read_recordings(source, path, options)


def test_a_new_source_is_one_table_entry(monkeypatch):
    def read_nothing(path: str, options: ReadOptions) -> SourceData:
        return SourceData([], [], ["only"])

    monkeypatch.setitem(sources.SOURCES, "nothing", Source(read_nothing, "an empty source"))
    assert read_recordings("nothing", "anywhere").class_names == ["only"]
    parser = argparse.ArgumentParser()
    add_source_arguments(parser)
    assert parser.parse_args([]).source == AUTO
    assert parser.parse_args(["--source", "nothing"]).source == "nothing"
