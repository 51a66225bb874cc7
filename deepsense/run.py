"""The run directory: what `train` and `compress` write and every later step reads.

A run directory holds::

    model.keras             the kept model (best validation loss)
    checkpoints/last.keras  the latest epoch
    backup/                 Keras BackupAndRestore state: an interrupted run resumes from it
    logs/                   TensorBoard logs
    history.csv             per-epoch losses and metrics
    config.resolved.toml    the exact configuration
    run.json                `RunInfo`: task, class names, feature settings, split, sizes, timings

This module is the one home of those facts: `RunInfo` (run.json), `load_run` (model +
info), `resolve_dataset` (the run's data, checked to be prepared like the training data) and
`split_rows` (the fit / validation / test rows of a split, the only place they are computed).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from deepsense.config import RunConfig, TrainConfig, config_from_dict
from deepsense.data.features import FeatureConfig
from deepsense.data.prepared import PreparedDataset, load_prepared
from deepsense.data.splits import (labelled_rows, split_indices, validation_split,
                                   validation_user_codes)
from deepsense.errors import DataFormatError

RUN_SCHEMA_VERSION = 1
RUN_FILE = "run.json"
MODEL_FILE = "model.keras"
CONFIG_FILE = "config.resolved.toml"

#: Packages whose modules run.json may name in ``custom_object_modules`` (imported by
#: `load_run` so that their registered layers and losses deserialize).
CUSTOM_OBJECT_PACKAGES = ("deepsense", "rdeepsense", "deepiot")


@dataclass(frozen=True)
class RunInfo:
    """run.json: what a trained (or compressed) model is and how it was made.

    Attributes:
        kind: model family: "deepsense", "rdeepsense" or "deepiot" (compressed).
        head: "softmax" or "rdeepsense".
        task: "activity", "user" or "regression".
        class_names: class order of the outputs ([] for regression).
        outputs: output layout, e.g. {"layout": "probabilities", "width": 6}.
        features: the `FeatureConfig` the data was prepared with, as a dict.
        data_path: absolute path of the prepared data, or None.
        split: the split spec (test side held out).
        n_train_windows, n_validation_windows, n_test_windows: sizes of the three sides.
        parameters: {"trainable", "non_trainable", "total"} counts.
        epochs_run: epochs trained (fine-tuning epochs for a compressed run).
        train_seconds: wall time of training (of compression and fine-tuning).
        train_windows_per_s: windows processed per second while training.
        distribution: {"strategy", "replicas"} of `tf.distribute`.
        config: the resolved configuration (`config_to_dict`).
        steps_per_epoch: optimiser steps per epoch (None in runs made before it was recorded).
        head_dropout: rdeepsense only: dropout rate of the uncertainty head.
        custom_object_modules: modules to import before loading model.keras.
        compression: deepiot only: source run, parameter fraction, widths, report file.
        calibration: a temperature folded into the logits layer (classification) or a
            variance scale set on the GaussianHead (regression) after training, and where it
            was fitted (`rdeepsense.calibrate`); None if there is none.
        schema_version: version of this layout.
    """

    kind: str
    head: str
    task: str
    class_names: list[str]
    outputs: dict[str, Any]
    features: dict[str, Any]
    data_path: str | None
    split: str
    n_train_windows: int
    n_validation_windows: int
    n_test_windows: int
    parameters: dict[str, int]
    epochs_run: int
    train_seconds: float
    train_windows_per_s: float
    distribution: dict[str, Any]
    config: dict[str, dict[str, Any]]
    steps_per_epoch: int | None = None
    head_dropout: float | None = None
    custom_object_modules: tuple[str, ...] = ()
    compression: dict[str, Any] | None = None
    calibration: dict[str, Any] | None = None
    schema_version: int = RUN_SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        values["custom_object_modules"] = list(self.custom_object_modules)
        return values

    def write(self, run_dir: str | Path) -> Path:
        path = Path(run_dir) / RUN_FILE
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        return path

    @classmethod
    def read(cls, run_dir: str | Path) -> RunInfo:
        """Read run.json; unknown keys and missing required keys are errors naming the file."""
        path = Path(run_dir) / RUN_FILE
        try:
            values = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DataFormatError(f"{path}: not valid JSON ({exc})") from None
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        missing = sorted(name for name, f in fields.items() if name not in values
                         and f.default is dataclasses.MISSING)
        if unknown or missing:
            raise DataFormatError(f"{path}: unknown keys {unknown}, missing keys {missing} "
                                  f"(schema_version {RUN_SCHEMA_VERSION})")
        values["custom_object_modules"] = tuple(values.get("custom_object_modules", ()))
        return cls(**values)

    @property
    def run_config(self) -> RunConfig:
        """The resolved configuration (as in config.resolved.toml)."""
        return config_from_dict(self.config)


def load_run(run_dir: str | Path) -> tuple[Any, RunInfo]:
    """Load a run directory's kept model (a keras.Model) and its `RunInfo`.

    First imports the modules listed in ``custom_object_modules`` (e.g. ``rdeepsense.heads``),
    whose ``register_keras_serializable`` decorators let the model's custom layers and losses
    load; only modules of `CUSTOM_OBJECT_PACKAGES` are accepted.
    """
    import keras

    import deepsense.layers  # noqa: F401  (registers DeepSense's layers for deserialization)

    run = Path(run_dir)
    for required in (MODEL_FILE, RUN_FILE):
        if not (run / required).exists():
            raise FileNotFoundError(f"{run}: not a run directory ({required} is missing); "
                                    "make one with `deepsense train`")
    info = RunInfo.read(run)
    for module in info.custom_object_modules:
        if str(module).split(".")[0] not in CUSTOM_OBJECT_PACKAGES:
            raise ValueError(f"{run / RUN_FILE}: custom_object_modules expected modules of "
                             f"{CUSTOM_OBJECT_PACKAGES}. Received: {module!r}")
        importlib.import_module(module)
    return keras.saving.load_model(run / MODEL_FILE), info


def resolve_dataset(info: RunInfo, data_dir: str | Path | None = None
                    ) -> tuple[PreparedDataset, Path]:
    """The run's prepared data (`data_dir`, else the path run.json records), checked.

    Raises:
        DataFormatError: no data path, or data prepared differently from the training data.
    """
    data_dir = data_dir or info.data_path
    if data_dir is None:
        raise DataFormatError("no --data given and the run does not record its data path")
    ds = load_prepared(data_dir)
    ds.check_prepared_as(FeatureConfig.from_dict(info.features), info.task, info.class_names,
                         owner="model")
    return ds, Path(data_dir)


class SplitRows(NamedTuple):
    """Row indices of the three sides of a split, labelled for the task: fit (with the
    augmented copies when training uses them), validation and test (originals only)."""

    fit: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def split_rows(ds: PreparedDataset, train: TrainConfig, split: str | None = None) -> SplitRows:
    """The rows `train` fits on, validates on and tests on (`split` overrides the test side)."""
    spec = split or train.split
    train_rows, test_rows = split_indices(ds, spec, seed=train.seed, use_augmented=train.augment)
    fit_rows, val_rows = validation_split(ds, train_rows, train.validation_fraction,
                                          seed=train.seed, users=validation_user_codes(ds, spec))
    return SplitRows(*(labelled_rows(ds, rows, train.task)
                       for rows in (fit_rows, val_rows, test_rows)))
