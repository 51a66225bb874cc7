import json

import pytest

from deepsense.cli import main


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
