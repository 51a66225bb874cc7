"""Averaged weights: validation judges, and the run keeps, a moving average of the weights.

Adam ends every epoch at a point that jitters around a minimum; the exponential moving
average of the weights over the last ~1 / (1 - momentum) optimiser steps (Polyak averaging;
0.99: 100 steps, two HAPT epochs) sits nearer its centre. Keras keeps that average in the
optimizer (`use_ema`) but writes it into the model only when `fit` ends, after validation,
early stopping and checkpoints have judged the raw weights. `AveragedWeights` swaps the
average in before each validation (or, without validation, at each epoch's end), so that
what is judged and saved is the model as it will be used, and swaps the raw weights back
before the next epoch trains. On HAPT's UCI test subjects: README, "Training".
"""

from __future__ import annotations

import keras
import numpy as np


class AveragedWeights(keras.callbacks.Callback):
    """Swap the optimizer's moving average of the weights in for validation and checkpoints.

    Place it first (before `PreciseBatchNorm`, which must see the averaged weights, and
    before checkpoints and `BackupAndRestore`). A run resumed from a backup continues
    training from the averaged weights of its last epoch.

    Raises:
        ValueError: at the start of training, if the model's optimizer keeps no average
            (`use_ema=False`).
    """

    def __init__(self) -> None:
        super().__init__()
        self._raw: list[np.ndarray] | None = None  # the training weights while swapped out

    def on_train_begin(self, logs=None):
        if not getattr(self.model.optimizer, "use_ema", False):
            raise ValueError("AveragedWeights expected an optimizer with use_ema=True "
                             "(train.ema_momentum > 0)")
        self._raw = None

    def _swap_in_average(self) -> None:
        if self._raw is None:
            variables = self.model.trainable_variables
            self._raw = [variable.numpy() for variable in variables]
            self.model.optimizer.finalize_variable_values(variables)

    def on_epoch_begin(self, epoch, logs=None):
        if self._raw is not None:
            for variable, raw in zip(self.model.trainable_variables, self._raw):
                variable.assign(raw)
            self._raw = None

    def on_test_begin(self, logs=None):
        self._swap_in_average()

    def on_epoch_end(self, epoch, logs=None):
        self._swap_in_average()
