"""Cross-subject evaluation: folds of users, resumable runs, table and plot."""

from __future__ import annotations

import csv
import json

import pytest

from deepsense.cli import main
from deepsense.crossval import fold_split, make_folds, summarize
from deepsense.errors import ConfigError


def test_make_folds_groups_every_user_once():
    users = [str(u) for u in range(1, 31)]
    folds = make_folds(users, 5, seed=0)
    assert [len(f) for f in folds] == [6] * 5
    assert sorted(u for f in folds for u in f) == sorted(users)
    assert folds == make_folds(users, 5, seed=0) != make_folds(users, 5, seed=1)
    assert make_folds(["a", "b", "c"], "loso") == [["a"], ["b"], ["c"]]
    assert fold_split(["2", "4"]) == "users:2,4"
    for bad in (1, 31, "3", True):
        with pytest.raises(ConfigError, match="folds expected"):
            make_folds(users, bad)
    with pytest.raises(ConfigError, match="2 or more users"):
        make_folds([], 2)


def test_summarize_mean_and_spread():
    rows = [{"accuracy": 0.8, "macro_f1": 0.7}, {"accuracy": 1.0, "macro_f1": 0.9}]
    summary = summarize(rows, ("accuracy", "macro_f1"))
    assert summary["mean"] == {"accuracy": 0.9, "macro_f1": 0.8}
    assert summary["std"]["accuracy"] == pytest.approx(0.1414, abs=1e-4)
    assert summary["min"]["accuracy"] == 0.8 and summary["max"]["macro_f1"] == 0.9


def test_crossval_two_folds_resumes_without_retraining(tiny_data_dir, tmp_path, capsys,
                                                       tiny_model_settings, monkeypatch):
    out = tmp_path / "cv"
    settings = [x for s in tiny_model_settings for x in ("--set", s)]
    argv = ["crossval", "--data", str(tiny_data_dir), "--out", str(out), "--folds", "2",
            "--epochs", "1", *settings]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "mean ± std: accuracy" in printed
    plan = json.loads((out / "folds.json").read_text())["folds"]
    assert sorted(u for fold in plan for u in fold) == ["a", "b", "c"] and len(plan) == 2
    for k, users in enumerate(plan):
        run = json.loads((out / f"fold-{k:02d}" / "run.json").read_text())
        assert run["split"] == "users:" + ",".join(users)
        assert (out / f"fold-{k:02d}" / "metrics.json").exists()
    with open(out / "crossval.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["fold"] for r in rows] == ["0", "1", "mean", "std"]
    assert 0.0 <= float(rows[2]["accuracy"]) <= 1.0
    assert (out / "crossval.png").stat().st_size > 1000

    import deepsense.train

    def no_training(*args, **kwargs):
        raise AssertionError("a finished fold was trained again")

    monkeypatch.setattr(deepsense.train, "fit", no_training)
    assert main(argv) == 0
    assert "mean ± std" in capsys.readouterr().out
    assert main([*argv[:6], "3", *argv[7:]]) == 2
    assert "another plan of folds" in capsys.readouterr().err
