"""`deepsense predict`: run the edge runtime offline on prepared windows and score it.

NumPy only, so a bundle can be checked on the device it will run on. Writes
``metrics.json`` (the same metrics as `deepsense evaluate`, plus the runtime's latency) and
``predictions.jsonl`` (one line per window: recording, start time, true and predicted label,
probabilities or mean/std).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from deepsense.data.prepared import PreparedDataset
from deepsense.data.splits import labelled_rows, split_indices
from deepsense.errors import DataFormatError
from edge.runtime import EdgeModel
from edge.scoring import score_outputs

BATCH = 256


def select_rows(model: EdgeModel, ds: PreparedDataset, split: str | None) -> tuple[np.ndarray, str]:
    """Rows to predict: ``all``, or the test side of a split spec (default: the bundle's)."""
    training = model.manifest.get("metrics", {}).get("training", {})
    spec = split or training.get("split") or "all"
    if spec == "all":
        rows = np.flatnonzero(ds.copy == 0)  # original windows, no augmented copies
    else:
        _, rows = split_indices(ds, spec, seed=int(training.get("seed") or 0))
    return labelled_rows(ds, rows, model.task), spec


def predict_dataset(model: EdgeModel, ds: PreparedDataset, out_dir: str | Path, *,
                    split: str | None = None, progress=None) -> dict:
    """Predict the selected windows with `model`, write metrics and predictions, return metrics.

    Args:
        split: "all", a split spec (its test side), or None for the bundle's training split.
        progress: optional wrapper such as tqdm over the batches.
    """
    ds.check_prepared_as(model.features, model.task, model.class_names, owner="bundle")
    rows, spec = select_rows(model, ds, split)
    if len(rows) == 0:
        raise DataFormatError(f"no labelled windows to predict for split {spec!r}")
    batches = [rows[i:i + BATCH] for i in range(0, len(rows), BATCH)]
    started = time.perf_counter()
    outputs = np.concatenate([model.predict(ds.x[b]) for b in (progress or iter)(batches)])
    seconds = time.perf_counter() - started
    y_true = ds.labels(model.task)[rows]
    metrics = score_outputs(y_true, outputs, model.task, model.layout, model.class_names)
    metrics.update({"task": model.task, "split": spec,
                    "backend": model.backend_name, "bundle_sha256": model.bundle_sha256,
                    "ms_per_window": round(1000.0 * seconds / len(rows), 4)})
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    with (out / "predictions.jsonl").open("w") as handle:
        for row, summary in zip(rows, model.summarize(outputs)):
            record = {"window": int(row), "recording": int(ds.recording[row]),
                      "start_s": float(ds.start_s[row]), **summary}
            if model.task != "regression":
                record["true_label"] = model.class_names[int(ds.labels(model.task)[row])]
            handle.write(json.dumps(record) + "\n")
    return metrics
