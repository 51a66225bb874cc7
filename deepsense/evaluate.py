"""Held-out evaluation of a run: metrics.json and a confusion-matrix PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepsense.data.prepared import PreparedDataset, load_prepared
from deepsense.data.splits import labelled_rows, split_indices
from deepsense.errors import DataFormatError
from deepsense.train import load_run
from edge.calibration import reliability_bins
from edge.scoring import score_outputs


def check_compatible(info: dict, ds: PreparedDataset) -> None:
    """The dataset must have been prepared exactly as the model's training data."""
    if info["features"] != ds.features.to_dict():
        raise DataFormatError("the data was prepared with different feature settings than "
                              f"the model: model {info['features']}, data {ds.features.to_dict()}")
    if info["task"] != "regression" and ds.class_names(info["task"]) != info["class_names"]:
        raise DataFormatError(f"class names differ: model {info['class_names']}, "
                              f"data {ds.class_names(info['task'])}")


def evaluate_run(run_dir: str | Path, data_dir: str | Path | None = None, *,
                 out_dir: str | Path | None = None, split: str | None = None,
                 batch_size: int = 256) -> dict:
    """Evaluate a run's model on the test side of its split (or `split`).

    Writes ``metrics.json`` and, for classification, ``confusion_matrix.png`` and
    ``reliability_diagram.png`` into `out_dir` (default: the run directory). Returns the
    metrics: calibration (NLL, ECE, Brier) for every classifier; NLL and the coverage of the
    50/90/95% intervals for regression models that predict a variance (run.json ``outputs``).
    """
    model, info = load_run(run_dir)
    data_dir = data_dir or info.get("data_path")
    if data_dir is None:
        raise DataFormatError("no --data given and the run does not record its data path")
    ds = load_prepared(data_dir)
    check_compatible(info, ds)
    task = info["task"]
    split = split or info["split"]
    _, test_rows = split_indices(ds, split, seed=info["config"]["train"]["seed"])
    test_rows = labelled_rows(ds, test_rows, task)
    outputs = model.predict(ds.x[test_rows], batch_size=batch_size, verbose=0)
    y_true = ds.labels(task)[test_rows]
    metrics = score_outputs(y_true, outputs, task, info.get("outputs", {}).get("layout"),
                            info["class_names"])
    metrics.update({"task": task, "head": info.get("head", "softmax"), "split": split,
                    "data": str(Path(data_dir).resolve()), "model": str(Path(run_dir).resolve())})
    out = Path(out_dir or run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if task != "regression":
        from deepsense.plots import plot_confusion_matrix, plot_reliability_diagram

        plot_confusion_matrix(np.array(metrics["confusion_matrix"]), info["class_names"],
                              out / "confusion_matrix.png",
                              title=f"{task}, split {split}: accuracy {metrics['accuracy']:.3f}")
        plot_reliability_diagram(reliability_bins(y_true, outputs),
                                 out / "reliability_diagram.png",
                                 title=f"{task}, split {split}: ECE {metrics['ece']:.3f}")
    return metrics
