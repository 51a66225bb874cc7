"""Held-out evaluation of a run: metrics.json and a confusion-matrix PNG."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from deepsense.run import load_run, resolve_dataset, split_rows
from edge.calibration import reliability_bins
from edge.scoring import score_outputs


def evaluate_run(run_dir: str | Path, data_dir: str | Path | None = None, *,
                 out_dir: str | Path | None = None, split: str | None = None,
                 batch_size: int = 256) -> dict:
    """Evaluate a run's model on the test side of its split (or `split`).

    Writes ``metrics.json`` and, for classification, ``confusion_matrix.png`` and
    ``reliability_diagram.png`` into `out_dir` (default: the run directory). Returns the
    metrics: calibration (NLL, ECE, Brier) for every classifier; NLL and the coverage of the
    50/90/95% intervals for regression models that predict a variance (run.json ``outputs``).
    For a compressed run evaluated on its own split, ``before_compression`` holds the same
    metrics of the uncompressed original on the same windows (from its compression report).
    """
    model, info = load_run(run_dir)
    ds, data_dir = resolve_dataset(info, data_dir)
    task = info.task
    split = split or info.split
    test_rows = split_rows(ds, info.run_config.train, split).test
    outputs = model.predict(ds.x[test_rows], batch_size=batch_size, verbose=0)
    y_true = ds.labels(task)[test_rows]
    metrics = score_outputs(y_true, outputs, task, info.outputs["layout"], info.class_names)
    metrics.update({"task": task, "head": info.head, "split": split,
                    "data": str(Path(data_dir).resolve()), "model": str(Path(run_dir).resolve())})
    if info.compression and split == info.split:
        report = json.loads((Path(run_dir) / info.compression["report"]).read_text())
        metrics["before_compression"] = report["models"]["original"]
    out = Path(out_dir or run_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    if task != "regression":
        from deepsense.plots import plot_confusion_matrix, plot_reliability_diagram

        plot_confusion_matrix(np.array(metrics["confusion_matrix"]), info.class_names,
                              out / "confusion_matrix.png",
                              title=f"{task}, split {split}: accuracy {metrics['accuracy']:.3f}")
        plot_reliability_diagram(reliability_bins(y_true, outputs),
                                 out / "reliability_diagram.png",
                                 title=f"{task}, split {split}: ECE {metrics['ece']:.3f}")
    return metrics
