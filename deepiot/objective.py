"""What compression optimises and scores, from the run being compressed.

A plain DeepSense classifier (``head = "softmax"``) is trained with cross-entropy; an
RDeepSense run (``head = "rdeepsense"``) with its own proper scoring rule
(`rdeepsense.losses`: w * NLL + (1 - w) * Brier for classes, w * Gaussian NLL + (1 - w) * MSE
for regression). `Objective` gives DeepIoT's critic and fine-tuning that same per-window
loss, and the validation score the stop rules read: accuracy for classifiers (higher is
better), the mean absolute error of the predicted mean for regression (lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from rdeepsense.losses import ClassificationScoringLoss, GaussianScoringLoss

#: Heads whose models DeepIoT compresses.
HEADS = ("softmax", "rdeepsense")


@dataclass(frozen=True)
class Objective:
    """The loss and the validation score of one run.

    Attributes:
        task: "activity", "user" or "regression".
        head: one of `HEADS`; regression needs "rdeepsense" (a Gaussian head).
        scoring_weight: w of the run's scoring rule (rdeepsense only).
    """

    task: str
    head: str = "softmax"
    scoring_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.head not in HEADS:
            raise ValueError(f"head expected one of {HEADS}. Received: head={self.head!r}")
        if self.regression and self.head != "rdeepsense":
            raise ValueError("DeepIoT compresses regression runs with the RDeepSense Gaussian "
                             "head only (train.head = 'rdeepsense')")

    @property
    def regression(self) -> bool:
        return self.task == "regression"

    @property
    def score_name(self) -> str:
        """"accuracy" (classification) or "mae" (regression)."""
        return "mae" if self.regression else "accuracy"

    @property
    def higher_is_better(self) -> bool:
        return not self.regression

    def targets(self, y: np.ndarray) -> np.ndarray:
        """Labels as the loss reads them: classes (n,) int32 or targets (n, k) float32."""
        if self.regression:
            y = np.asarray(y, np.float32)
            return y.reshape(len(y), -1)
        return np.asarray(y, np.int32)

    def loss(self) -> keras.losses.Loss:
        """Per-window loss (reduction "none") on (targets, model outputs): (b,)."""
        if self.head == "softmax":
            return keras.losses.SparseCategoricalCrossentropy(reduction="none")
        rule = GaussianScoringLoss if self.regression else ClassificationScoringLoss
        return rule(self.scoring_weight, reduction="none")

    def batch_score(self, y, outputs):
        """Per-window score (keras.ops): 1/0 correct class, or |y - mean| averaged over k."""
        if self.regression:
            k = outputs.shape[-1] // 2
            target = ops.reshape(ops.cast(y, outputs.dtype), (-1, k))
            return ops.mean(ops.abs(target - outputs[:, :k]), axis=-1)
        return ops.cast(ops.equal(ops.cast(ops.argmax(outputs, axis=-1), "int32"),
                                  ops.cast(ops.reshape(y, (-1,)), "int32")), "float32")

    def score(self, y: np.ndarray, outputs: np.ndarray) -> float:
        """Mean of `batch_score` over windows: accuracy, or MAE in target units."""
        return float(np.mean(np.asarray(self.batch_score(self.targets(y), outputs))))

    def compile(self, model: keras.Model, optimizer: keras.optimizers.Optimizer) -> None:
        """Compile `model` as its run was compiled (saves and loads without custom code)."""
        if self.head == "rdeepsense":
            from rdeepsense.train import compile_rdeepsense

            compile_rdeepsense(model, self.task, self.scoring_weight, optimizer)
        else:
            model.compile(optimizer, loss="sparse_categorical_crossentropy",
                          metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])
