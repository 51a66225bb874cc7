"""Two worker processes on localhost train to the same result as one process."""

import csv
import json
import os
import socket
import subprocess
import sys

import pytest

NO_DROPOUT = ["--set", "model.conv_dropout=0", "--set", "model.gru_dropout=0"]
#: Few, small steps: each worker's BatchNorm normalises half a batch, a difference that more
#: and larger steps (the defaults: lr 1e-3, >= 50 steps an epoch) amplify past 0.5%.
FEW_SMALL_STEPS = ["--set", "train.learning_rate=1e-4", "--set", "train.steps_per_epoch=3"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _train(data, out, settings, *extra):
    return [sys.executable, "-m", "deepsense.cli", "train", "--data", str(data), "--out",
            str(out), "--epochs", "2", "--split", "loso:a", "--seed", "1", *settings,
            *NO_DROPOUT, *FEW_SMALL_STEPS, *extra]


def _last_val_loss(run) -> float:
    with (run / "history.csv").open() as handle:
        return float(list(csv.DictReader(handle))[-1]["val_loss"])


@pytest.mark.slow
def test_two_local_workers_match_one_process(tiny_data_dir, tiny_model_settings, tmp_path):
    settings = [item for s in tiny_model_settings for item in ("--set", s)]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("TF_CONFIG", None)
    workers = f"localhost:{_free_port()},localhost:{_free_port()}"
    processes = [subprocess.Popen(_train(tiny_data_dir, tmp_path / "multi", settings,
                                         "--workers", workers, "--worker-index", str(i)),
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=env)
                 for i in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    single = subprocess.run(_train(tiny_data_dir, tmp_path / "single", settings),
                            capture_output=True, text=True, env=env, timeout=600)
    assert single.returncode == 0, single.stderr[-2000:]

    info = json.loads((tmp_path / "multi" / "run.json").read_text())
    assert info["distribution"] == {"strategy": "CollectiveAllReduceStrategy", "replicas": 2}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["multi", "single"]  # chief only
    # Same global batches and all-reduced gradients; only BatchNorm's batch statistics are
    # per worker (half batches), so the losses agree closely but not bit for bit.
    assert _last_val_loss(tmp_path / "multi") == pytest.approx(
        _last_val_loss(tmp_path / "single"), rel=5e-3)
