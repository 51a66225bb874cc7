"""Training with the RDeepSense head: the `fit` model builder and the output layout.

```python
from rdeepsense.train import fit_rdeepsense
result = fit_rdeepsense(dataset, load_config(None, ['train.head="rdeepsense"']), "runs/r")
```

run.json gets ``head: "rdeepsense"``, ``head_dropout``, ``outputs`` (`output_layout`), so
evaluation and export know what the output columns mean, and ``custom_object_modules``, so
`deepsense.run.load_run` can load the model in a fresh process. A run whose split names
validation users (``loso:f+val:e``) gets a temperature (classifier) or a variance scale
(regression) fitted on them and folded into the model (`rdeepsense.calibrate`), recorded as
run.json's ``calibration``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import keras

from deepsense.config import RunConfig
from deepsense.data.prepared import PreparedDataset
from deepsense.errors import ConfigError
from deepsense.model import build_deepsense
from deepsense.run import MODEL_FILE
from deepsense.train import TrainResult, fit, make_optimizer
from rdeepsense.calibrate import calibrate_on_validation_users
from rdeepsense.heads import HEAD_DROPOUT, add_uncertainty_head
from rdeepsense.losses import (ClassificationScoringLoss, GaussianScoringLoss,
                               gaussian_mean_absolute_error)

#: Modules that register the head's layers and losses; `deepsense.run.load_run` imports them.
CUSTOM_OBJECT_MODULES = ["rdeepsense.heads", "rdeepsense.losses"]


def output_layout(task: str, n_outputs: int) -> dict:
    """What the rdeepsense model's output columns mean (stored in run.json as ``outputs``).

    Classification: ``{"layout": "probabilities", "width": C}``; regression:
    ``{"layout": "gaussian_mean_variance", "width": 2k, "mean": [0, k], "variance": [k, 2k]}``
    (column ranges, end exclusive; variance in target units squared).
    """
    if task == "regression":
        return {"layout": "gaussian_mean_variance", "width": 2 * n_outputs,
                "mean": [0, n_outputs], "variance": [n_outputs, 2 * n_outputs]}
    return {"layout": "probabilities", "width": n_outputs}


def build_compiled_rdeepsense(ds: PreparedDataset, config: RunConfig,
                              n_outputs: int) -> keras.Model:
    """A `deepsense.train.ModelBuilder`: DeepSense body + uncertainty head + scoring-rule loss."""
    t = config.train
    base = build_deepsense(ds.features, n_outputs, t.task, config.model)
    model = add_uncertainty_head(base, t.task, n_outputs, dropout=HEAD_DROPOUT,
                                 weight_decay=config.model.weight_decay)
    compile_rdeepsense(model, t.task, t.scoring_weight, make_optimizer(t))
    return model


def compile_rdeepsense(model: keras.Model, task: str, scoring_weight: float,
                       optimizer: keras.optimizers.Optimizer) -> None:
    """Compile a model with an uncertainty head: the scoring rule of weight `scoring_weight`,
    and accuracy (classification) or the MAE of the mean (regression)."""
    if task == "regression":
        model.compile(optimizer, loss=GaussianScoringLoss(scoring_weight),
                      metrics=[keras.metrics.MeanMetricWrapper(gaussian_mean_absolute_error,
                                                               name="mae")])
    else:
        model.compile(optimizer, loss=ClassificationScoringLoss(scoring_weight),
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


def fit_rdeepsense(ds: PreparedDataset, config: RunConfig, run_dir: str | Path,
                   **kwargs) -> TrainResult:
    """`deepsense.train.fit` with the RDeepSense head; `config.train.head` must be "rdeepsense".

    Keyword arguments (data_path, verbose) are passed on to `fit`.
    """
    if config.train.head != "rdeepsense":
        raise ConfigError(f"fit_rdeepsense expected train.head='rdeepsense'. "
                          f"Received: {config.train.head!r}")
    task = config.train.task
    n_outputs = 1 if task == "regression" else len(ds.class_names(task))
    extra = {"outputs": output_layout(task, n_outputs), "head_dropout": HEAD_DROPOUT,
             "custom_object_modules": CUSTOM_OBJECT_MODULES}
    result = fit(ds, config, run_dir, build_model=build_compiled_rdeepsense, kind="rdeepsense",
                 extra_info=extra, **kwargs)
    calibration = calibrate_on_validation_users(result.model, ds, config.train)
    if calibration is None:
        return result
    result.model.save(result.run_dir / MODEL_FILE)
    info = replace(result.info, calibration=calibration)
    info.write(result.run_dir)
    return replace(result, info=info)
