import json

import numpy as np
import pytest

from deepsense.config import load_config
from deepsense.evaluate import evaluate_run
from deepsense.run import load_run
from deepsense.train import fit


@pytest.fixture(scope="module")
def trained_run(tiny_dataset, tiny_data_dir, tmp_path_factory):
    config = load_config(None, ["model.conv_filters=4", "model.merge_filters=4",
                                "model.gru_units=[6, 6]", "train.epochs=2", "train.split=loso:c",
                                "train.learning_rate=0.003"])
    run_dir = tmp_path_factory.mktemp("run")
    return fit(tiny_dataset, config, run_dir, data_path=tiny_data_dir, verbose=0)


def test_fit_writes_a_complete_run_directory(trained_run):
    run = trained_run.run_dir
    for name in ("model.keras", "checkpoints/last.keras", "history.csv", "config.resolved.toml",
                 "run.json"):
        assert (run / name).exists(), name
    assert any((run / "logs").rglob("*tfevents*")), "TensorBoard logs"
    assert not (run / "backup").exists(), "a finished run removes its resume state"
    info = json.loads((run / "run.json").read_text())
    assert info["task"] == "activity" and info["split"] == "loso:c"
    assert info["class_names"] == ["bike", "sit", "stand", "walk", "stairsup", "stairsdown"]
    assert info["epochs_run"] == 2
    assert len(trained_run.history["loss"]) == 2
    assert load_config(run / "config.resolved.toml").train.split == "loso:c"


def test_evaluate_reports_held_out_metrics_and_a_confusion_png(trained_run, tiny_dataset, tmp_path):
    metrics = evaluate_run(trained_run.run_dir, out_dir=tmp_path)
    held_out = int(((tiny_dataset.user == tiny_dataset.user_names.index("c"))
                    & (tiny_dataset.copy == 0)).sum())
    assert metrics["n_windows"] == held_out
    matrix = np.array(metrics["confusion_matrix"])
    assert matrix.shape == (6, 6) and matrix.sum() == held_out
    assert metrics["accuracy"] == pytest.approx(np.trace(matrix) / held_out, abs=1e-4)
    assert json.loads((tmp_path / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_loaded_run_predicts_like_the_trained_model(trained_run, tiny_dataset):
    model, _ = load_run(trained_run.run_dir)
    x = tiny_dataset.x[:5]
    np.testing.assert_allclose(model.predict(x, verbose=0),
                               trained_run.model.predict(x, verbose=0), atol=1e-6)


def test_regression_task_trains_and_reports_mae(tiny_dataset, tiny_data_dir, tmp_path):
    config = load_config(None, ["model.conv_filters=4", "model.merge_filters=4",
                                "model.gru_units=[6, 6]", "train.epochs=1",
                                "train.task=regression", "train.split=random:0.3"])
    result = fit(tiny_dataset, config, tmp_path, data_path=tiny_data_dir, verbose=0)
    assert result.model.output_shape == (None, 1)
    metrics = evaluate_run(tmp_path)
    assert metrics["task"] == "regression"
    assert 0 < metrics["mae"] <= metrics["rmse"]
    assert not (tmp_path / "confusion_matrix.png").exists()


# Keras' CSVLogger leaves its file open when fit() is interrupted
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_interrupted_training_resumes_from_its_backup(tiny_dataset, tmp_path, monkeypatch):
    import keras

    config = load_config(None, ["model.conv_filters=4", "model.merge_filters=4",
                                "model.gru_units=[6, 6]", "train.epochs=3"])

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt

    original_fit = keras.Model.fit

    def interrupted_fit(self, *args, callbacks=(), **kwargs):
        return original_fit(self, *args, callbacks=[*callbacks, StopAfterFirstEpoch()], **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(keras.Model, "fit", interrupted_fit)
        with pytest.raises(KeyboardInterrupt):
            fit(tiny_dataset, config, tmp_path, verbose=0)
    assert (tmp_path / "backup").exists()
    result = fit(tiny_dataset, config, tmp_path, verbose=0)
    assert result.info.epochs_run == 2, "epochs 2 and 3 only: epoch 1 was restored"


def test_a_fresh_process_loads_a_run_with_deepsense_run_alone(trained_run):
    import subprocess
    import sys

    code = ("import sys; from deepsense.run import load_run; "
            "model, info = load_run(sys.argv[1]); print(info.kind, model.name)")
    done = subprocess.run([sys.executable, "-c", code, str(trained_run.run_dir)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["deepsense", "deepsense"]


def test_run_json_of_an_earlier_version_still_reads(trained_run, tmp_path):
    from deepsense.run import RunInfo

    values = json.loads((trained_run.run_dir / "run.json").read_text())
    del values["steps_per_epoch"]  # not recorded before 2026-11-30
    (tmp_path / "run.json").write_text(json.dumps(values))
    assert RunInfo.read(tmp_path).steps_per_epoch is None
    values["surprise"] = 1
    (tmp_path / "run.json").write_text(json.dumps(values))
    with pytest.raises(ValueError, match=r"unknown keys \['surprise'\]"):
        RunInfo.read(tmp_path)
