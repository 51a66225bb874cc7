"""`deepsense compress`: a trained run directory in, a compressed run directory out.

It takes plain DeepSense classifiers and RDeepSense runs (classification and Gaussian
regression): the critic and the fine-tuning train on the run's own loss
(`deepiot.objective`), the thinned model keeps the run's head, and fine-tuning distils the
original's predictive distribution (`deepiot.finetune`). After fine-tuning, a Gaussian
regression model's variance is first matched to its original's on the validation windows
(label-free), and an RDeepSense run whose split names validation users gets its temperature
(or variance scale) refitted there, as `train` does (`rdeepsense.calibrate`).

The output is an ordinary run directory (so `evaluate` and `export` take it) whose
``model.keras`` is the thinned DeepSense, plus::

    compression_report.json   units kept per layer, size, FLOPs, accuracy and calibration
                              (NLL, ECE, Brier; regression: MAE, NLL, 50/90/95% interval
                              coverage) of the original and the compressed model, the path
    compression_history.csv   one row per threshold step
    tradeoff.png              accuracy (regression: MAE) against the parameters left, and
                              the calibration metrics before and after

run.json carries the same fields as `train` writes, with ``kind: "deepiot"`` and a
``compression`` entry; its ``widths`` rebuild the architecture:
``build_deepsense(features, n_outputs, task, config.model, widths=compression["widths"])``.
"""

from __future__ import annotations

import csv
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from deepiot.compress import CompressSettings, compress
from deepiot.finetune import FineTuneSettings, fine_tune
from deepiot.masks import kept_widths
from deepiot.objective import HEADS, Objective
from deepiot.report import compression_report, plot_tradeoff, summarize_model
from deepiot.schedule import CompressionSchedule, ThresholdSchedule
from deepiot.structure import NotPrunableError, read_structure
from deepiot.thin import thin_model
from deepsense.config import CompressConfig, RunConfig, config_to_dict, config_to_toml
from deepsense.data.prepared import PreparedDataset
from deepsense.model import count_parameters
from deepsense.run import CONFIG_FILE, MODEL_FILE, load_run, resolve_dataset, split_rows
from deepsense.train import make_optimizer
from rdeepsense.calibrate import calibrate_on_validation_users, match_variance_scale

#: Run kinds whose model can be compressed (the head is checked too: `deepiot.objective`).
COMPRESSIBLE_KINDS = ("deepsense", "rdeepsense", "deepiot")


@dataclass
class SplitArrays:
    """Windows (n, T, F) float32 and labels (classes (n,) int32, or regression targets
    (n, k) float32) of the three sides of a run's split."""

    x: np.ndarray
    y: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def split_arrays(ds: PreparedDataset, config: RunConfig) -> SplitArrays:
    """The training, validation and test windows exactly as `train` split them."""
    objective = Objective(config.train.task, config.train.head, config.train.scoring_weight)
    labels = ds.labels(config.train.task)
    rows = split_rows(ds, config.train)
    return SplitArrays(*(a for r in rows for a in (ds.x[r], objective.targets(labels[r]))))


def format_progress(record: dict) -> str:
    """One line per threshold step."""
    name = "accuracy" if "validation_accuracy" in record else "mae"
    return (f"  iteration {record['iteration']:>5}  tau {record['threshold']:.3f}  "
            f"parameters {100 * record['parameter_fraction']:6.2f}%  "
            f"units {record['kept_units']:>4}  validation {name} "
            f"{record['validation_' + name]:.4f}  ({record['seconds']:.0f} s)")


def run_objective(config: RunConfig) -> Objective:
    """The loss and score of a run (its task, head and scoring weight)."""
    t = config.train
    return Objective(t.task, t.head, t.scoring_weight)


def compression_settings(config: CompressConfig
                         ) -> tuple[CompressSettings, CompressionSchedule, FineTuneSettings]:
    """The settings of the three phases from the ``[compress]`` section.

    Raises:
        ValueError: a value out of range (the message names the setting).
    """
    settings = CompressSettings(
        target_params=config.target_params, min_accuracy=config.min_accuracy,
        batch_size=config.batch_size, critic_learning_rate=config.critic_learning_rate,
        compressor_learning_rate=config.compressor_learning_rate,
        patience_steps=config.patience_steps, extend_steps=config.extend_steps,
        seed=config.seed)
    schedule = ThresholdSchedule(final=config.final_threshold, n_steps=config.n_steps,
                                 step_interval=config.step_interval)
    fine_tuning = FineTuneSettings(
        epochs=config.fine_tune_epochs, learning_rate=config.fine_tune_learning_rate,
        distill_weight=config.distill_weight, temperature=config.distill_temperature,
        seed=config.seed)
    return settings, schedule, fine_tuning


def _load(model_dir: Path, data_dir: str | Path | None):
    model, info = load_run(model_dir)
    if info.kind not in COMPRESSIBLE_KINDS or info.head not in HEADS:
        raise NotPrunableError(
            f"compress takes DeepSense runs (kind {COMPRESSIBLE_KINDS}, head {HEADS}); "
            f"{model_dir} is kind {info.kind!r}, head {info.head!r}")
    if info.task == "regression" and info.head != "rdeepsense":
        raise NotPrunableError("compress takes regression runs with the RDeepSense Gaussian "
                               f"head; {model_dir} is a plain regression run")
    ds, data_dir = resolve_dataset(info, data_dir)
    return model, info, ds, info.run_config, data_dir


def _write_history(history: list[dict], path: Path) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)


def compress_run(model_dir: str | Path, out_dir: str | Path, *, data_dir: str | Path | None = None,
                 compress_config: CompressConfig = CompressConfig(),
                 progress: Callable[[dict], None] | None = None, verbose: int = 0) -> dict:
    """Compress a run's model, fine-tune the thinned model and write a run directory.

    Args:
        model_dir: a `train` run of a DeepSense classifier, or of RDeepSense (classification
            or Gaussian regression).
        out_dir: the new run directory.
        data_dir: its prepared data (default: the run's); the run's split is reused.
        compress_config: the ``[compress]`` settings (`compression_settings`: compression,
            `deepiot.compress`, and fine-tuning, `deepiot.finetune`, with distillation of
            the original model's predictive distribution when ``distill_weight > 0``);
            written with the run's own sections to config.resolved.toml.
        progress: called with each threshold step's record.
        verbose: Keras verbosity while fine-tuning.

    Returns:
        The compression report (also written as compression_report.json).
    """
    model_dir, out = Path(model_dir), Path(out_dir)
    settings, schedule, fine_tuning = compression_settings(compress_config)
    model, info, ds, config, data_dir = _load(model_dir, data_dir)
    config = replace(config, compress=compress_config)
    task = config.train.task
    objective = run_objective(config)
    arrays = split_arrays(ds, config)
    structure = read_structure(model)
    original_probs = model.predict(arrays.x_test, verbose=0, batch_size=256)

    result = compress(model, arrays.x, arrays.y, arrays.x_val, arrays.y_val,
                      schedule=schedule, settings=settings, objective=objective,
                      progress=progress)
    thinned = thin_model(result.critic, result.masks, features=ds.features,
                         config=config.model, task=task)
    before_probs = thinned.predict(arrays.x_test, verbose=0, batch_size=256)
    teacher = None
    if fine_tuning.distill_weight > 0:
        teacher = (model.predict(arrays.x, verbose=0, batch_size=256),
                   model.predict(arrays.x_val, verbose=0, batch_size=256))
    started = time.perf_counter()
    history = fine_tune(thinned, arrays.x, arrays.y, arrays.x_val, arrays.y_val, fine_tuning,
                        objective=objective, teacher=teacher, verbose=verbose)
    fine_tune_seconds = time.perf_counter() - started
    t = config.train  # saved like a `train` run, loadable without custom code
    objective.compile(thinned, make_optimizer(t))
    calibration = None
    if info.head == "rdeepsense":
        matched = (match_variance_scale(thinned, model, arrays.x_val)
                   if objective.regression else None)
        calibration = calibrate_on_validation_users(thinned, ds, config.train)
        if matched is not None:
            calibration = {**(calibration or {}), "matched_to_original": matched}
    probs = thinned.predict(arrays.x_test, verbose=0, batch_size=256)

    widths = kept_widths(result.masks)
    regression = objective.regression
    models = {"original": summarize_model(structure, None, arrays.y_test, original_probs,
                                          regression),
              "compressed, before fine-tuning": summarize_model(
                  structure, widths, arrays.y_test, before_probs, regression),
              "compressed": summarize_model(structure, widths, arrays.y_test, probs, regression)}
    report = compression_report(
        structure, result.masks, models,
        source_run=str(model_dir.resolve()), stop_reason=result.stop_reason,
        threshold=round(result.threshold, 4), iterations=result.iterations,
        compress_seconds=round(result.seconds, 1),
        fine_tune_seconds=round(fine_tune_seconds, 1), fine_tune_epochs=len(history["loss"]),
        schedule=schedule.get_config(), settings=asdict(settings),
        fine_tuning=asdict(fine_tuning), history=result.history)

    out.mkdir(parents=True, exist_ok=True)
    thinned.save(out / MODEL_FILE)
    (out / CONFIG_FILE).write_text(config_to_toml(config))
    (out / "compression_report.json").write_text(json.dumps(report, indent=2) + "\n")
    _write_history(result.history, out / "compression_history.csv")
    fraction = report["relative_to_original"]["compressed"]["parameters"]
    score = objective.score_name

    def before_after(metric: str) -> dict[str, list[tuple[float, float]]]:
        return {"original (test)": [(1.0, models["original"][metric])],
                "DeepIoT, fine-tuned (test)": [(fraction, models["compressed"][metric])]}

    calibration_panels = (("nll", "coverage_90") if regression else ("nll", "ece", "brier"))
    plot_tradeoff({"compression path (validation, before fine-tuning)":
                   [(r["parameter_fraction"], r[f"validation_{score}"]) for r in result.history],
                   **before_after(score)},
                  out / "tradeoff.png", title=f"DeepIoT: {task}, split {config.train.split}",
                  ylabel=score,
                  more_panels={name.upper(): before_after(name) for name in calibration_panels})
    seconds = result.seconds + fine_tune_seconds
    windows = result.iterations * settings.batch_size + len(history["loss"]) * len(arrays.x)
    replace(
        info,  # every field `train` writes; those compression changes follow
        kind="deepiot",
        data_path=str(data_dir.resolve()),
        n_train_windows=int(len(arrays.x)),
        n_validation_windows=int(len(arrays.x_val)),
        n_test_windows=int(len(arrays.x_test)),
        parameters=count_parameters(thinned),
        epochs_run=len(history["loss"]),
        train_seconds=round(seconds, 2),
        train_windows_per_s=round(windows / max(seconds, 1e-9), 1),
        distribution={"strategy": "none (one process)", "replicas": 1},
        config=config_to_dict(config),
        calibration=calibration,
        compression={
            "source_run": str(model_dir.resolve()),
            "source_parameters": info.parameters,
            "parameter_fraction": fraction,
            "target_params": settings.target_params,
            "min_accuracy": settings.min_accuracy,
            "stop_reason": result.stop_reason,
            "widths": structure.layer_widths(widths),
            "units": report["units"],
            "report": "compression_report.json",
        },
    ).write(out)
    return report
