import json

import numpy as np

import pytest

from deepsense.cli import main
from deepsense.data.hhar import HHAR_LABELS


def test_help_and_version_exit_zero(capsys):
    assert main(["--help"]) == 0
    assert "prepare" in capsys.readouterr().out
    assert main(["--version"]) == 0


@pytest.mark.parametrize("argv", [[], ["train"], ["prepare", "--source", "nope", "--out", "x"],
                                  ["prepare", "--source", "synthetic", "--out", "x",
                                   "--set", "train.nope=1"],
                                  ["prepare", "--source", "ts", "--out", "x"]])
def test_wrong_arguments_exit_2_with_one_line(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err


def test_missing_data_exits_1_with_one_line(tmp_path, capsys):
    assert main(["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err.strip()
    assert "not a prepared dataset" in err and "\n" not in err


def test_verbose_shows_the_traceback(tmp_path, capsys):
    argv = ["train", "--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "r")]
    assert main(["--verbose", *argv]) == 1
    assert "Traceback" in capsys.readouterr().err


def test_prepare_train_evaluate_from_the_command_line(tmp_path, capsys, tiny_model_settings):
    data, run = tmp_path / "data", tmp_path / "run"
    assert main(["prepare", "--source", "synthetic", "--out", str(data), "--users", "3",
                 "--devices", "nexus4_1", "--seconds", "10", "--augment", "1",
                 "--set", "features.stride_s=1.0"]) == 0
    meta = json.loads((data / "dataset.json").read_text())
    assert meta["features"]["stride_s"] == 1.0
    assert meta["n_windows"] == 2 * meta["n_original_windows"]
    settings = [arg for s in tiny_model_settings for arg in ("--set", s)]
    assert main(["train", "--data", str(data), "--out", str(run), "--epochs", "1",
                 "--split", "loso:b", *settings]) == 0
    assert (run / "model.keras").exists()
    assert main(["evaluate", "--model", str(run)]) == 0
    out = capsys.readouterr().out
    assert "activity (loso:b): accuracy" in out
    assert json.loads((run / "metrics.json").read_text())["split"] == "loso:b"


def test_user_id_with_the_user_held_out_is_refused(tiny_data_dir, tmp_path, capsys):
    assert main(["train", "--data", str(tiny_data_dir), "--out", str(tmp_path), "--task", "user",
                 "--split", "loso:b"]) == 2
    assert "never seen in training" in capsys.readouterr().err


def test_evaluate_unknown_run_exits_1(tmp_path, capsys):
    assert main(["evaluate", "--model", str(tmp_path)]) == 1
    assert "not a run directory" in capsys.readouterr().err


REPO = __import__("pathlib").Path(__file__).resolve().parents[2]


def test_prepare_hhar_sample_and_basicmotions(tmp_path, capsys):
    # --source auto (the default): a folder is read as HHAR, and recorded as such.
    assert main(["prepare", "--input", str(REPO / "datasets/hhar/sample"),
                 "--out", str(tmp_path / "hhar")]) == 0
    hhar = json.loads((tmp_path / "hhar" / "dataset.json").read_text())
    assert hhar["n_windows"] >= 1 and hhar["activity_names"] == list(HHAR_LABELS)
    assert hhar["info"]["source"] == "hhar"
    bm = REPO / "datasets/basicmotions"
    assert main(["prepare", "--source", "ts", "--input", str(bm / "BasicMotions_TRAIN.ts"),
                 "--test-input", str(bm / "BasicMotions_TEST.ts"), "--sample-rate-hz", "10",
                 "--out", str(tmp_path / "bm"), "--set", "features.interval_s=0.5",
                 "--set", "features.n_intervals=19"]) == 0
    meta = json.loads((tmp_path / "bm" / "dataset.json").read_text())
    assert meta["n_original_windows"] == 80
    assert meta["n_windows"] == 800, "80 windows: x10 by the automatic augmentation"
    assert sorted(meta["activity_names"]) == ["Badminton", "Running", "Standing", "Walking"]


def test_prepare_csv_reports_the_bad_line(tmp_path, capsys):
    path = tmp_path / "rec.csv"
    rows = ["timestamp_s,device,sensor,x,y,z,user,label"]
    for i in range(400):
        for sensor in ("acc", "gyro"):
            rows.append(f"{i * 0.02 + (0.001 if sensor == 'gyro' else 0):.3f},d1,{sensor},"
                        f"{np.sin(i / 5):.4f},0.1,9.8,u1,walk")
    rows[7] = rows[7].replace(",0.1,", ",nan,")
    path.write_text("\n".join(rows) + "\n")
    assert main(["prepare", "--source", "csv", "--input", str(path), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "rec.csv" in err and "line 8" in err
    assert main(["prepare", "--source", "csv", "--input", str(path), "--out", str(tmp_path / "o"),
                 "--on-error", "skip"]) == 0
    assert "1 skipped" in capsys.readouterr().err


def test_prepare_refuses_a_bad_augment_count(tmp_path, capsys):
    assert main(["prepare", "--source", "synthetic", "--users", "2", "--seconds", "5",
                 "--augment", "many", "--out", str(tmp_path / "o")]) == 2
    assert "--augment: expected a count >= 0 or 'auto'" in capsys.readouterr().err
