"""Fine-tuning a thinned model, optionally distilling the uncompressed model's outputs.

The thinned model computes exactly the masked model with its mask fixed (`deepiot.thin`),
so training it *is* DeepIoT's fine-tuning with the mask fixed, on a smaller, faster network.
With a teacher, the loss is ``(1 - w) * CE(labels) + w * T^2 * CE(teacher_T, student_T)``
where ``p_T = softmax(log p / T)`` (Hinton et al., 2015).
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

#: Probabilities are floored here before taking logs.
PROB_FLOOR = 1e-7


@dataclass(frozen=True)
class FineTuneSettings:
    """Fine-tuning knobs.

    Attributes:
        epochs: maximum epochs.
        batch_size: windows per step.
        learning_rate: Adam step (beta 0.5 / 0.9, as released).
        patience: epochs without validation-loss improvement before stopping; the best
            epoch's weights are kept.
        distill_weight: w above; 0 trains on the labels only.
        temperature: T above.
        seed: seeds the shuffling.
    """

    epochs: int = 30
    batch_size: int = 64
    learning_rate: float = 1e-3
    patience: int = 6
    distill_weight: float = 0.0
    temperature: float = 2.0
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} expected a positive integer. "
                                 f"Received: {name}={getattr(self, name)}")
        if not 0.0 <= self.distill_weight <= 1.0:
            raise ValueError(f"distill_weight expected [0, 1]. Received: {self.distill_weight}")
        if not self.temperature > 0:
            raise ValueError(f"temperature expected > 0. Received: {self.temperature}")


def _tempered(probs, temperature: float):
    return ops.softmax(ops.log(ops.clip(probs, PROB_FLOOR, 1.0)) / temperature, axis=-1)


def distillation_loss(distill_weight: float, temperature: float):
    """Per-window loss on targets packed as (batch, 1 + n_classes): the class, then the
    teacher's probabilities (only the class when `distill_weight` is 0)."""
    def loss(packed, probs):
        labels = ops.cast(packed[:, 0], "int32")
        hard = keras.losses.sparse_categorical_crossentropy(labels, probs)
        if distill_weight == 0:
            return hard
        teacher = _tempered(packed[:, 1:], temperature)
        student = ops.log(ops.clip(_tempered(probs, temperature), PROB_FLOOR, 1.0))
        soft = -ops.sum(teacher * student, axis=-1) * temperature ** 2
        return (1.0 - distill_weight) * hard + distill_weight * soft
    return loss


def _packed_accuracy(packed, probs):
    return ops.cast(ops.equal(ops.argmax(probs, axis=-1), ops.cast(packed[:, 0], "int64")),
                    "float32")


def fine_tune(model: keras.Model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
              y_val: np.ndarray, settings: FineTuneSettings = FineTuneSettings(), *,
              teacher: tuple[np.ndarray, np.ndarray] | None = None,
              verbose: int = 0) -> dict[str, list[float]]:
    """Train a (thinned) DeepSense classifier in place; keep the best validation epoch.

    Args:
        model: softmax classifier.
        x, y: training windows (n, T, F) and classes (n,); x_val, y_val: validation.
        settings: see FineTuneSettings.
        teacher: the uncompressed model's probabilities on x and x_val, (n, C) and
            (n_val, C); used when settings.distill_weight > 0.
        verbose: Keras fit verbosity.

    Returns:
        Keras history (loss, accuracy, val_loss, val_accuracy per epoch). The model is left
        compiled with cross-entropy, so it saves and loads without custom objects.
    """
    optimizer = keras.optimizers.Adam(settings.learning_rate, beta_1=0.5, beta_2=0.9)
    y, y_val = np.asarray(y), np.asarray(y_val)
    plain = {"loss": "sparse_categorical_crossentropy",
             "metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]}
    if settings.distill_weight > 0:
        if teacher is None:
            raise ValueError("distill_weight > 0 needs the teacher's probabilities")
        y = np.concatenate([y[:, None].astype(np.float32), teacher[0]], axis=1)
        y_val = np.concatenate([y_val[:, None].astype(np.float32), teacher[1]], axis=1)
        model.compile(optimizer, loss=distillation_loss(settings.distill_weight,
                                                        settings.temperature),
                      metrics=[keras.metrics.MeanMetricWrapper(_packed_accuracy, name="accuracy")])
    else:
        model.compile(optimizer, **plain)
    keras.utils.set_random_seed(settings.seed)
    validation = (x_val, y_val) if len(x_val) else None
    monitor = "val_loss" if validation else "loss"
    history = model.fit(x, y, batch_size=settings.batch_size, epochs=settings.epochs,
                        validation_data=validation, shuffle=True, verbose=verbose,
                        callbacks=[keras.callbacks.EarlyStopping(
                            monitor=monitor, patience=settings.patience,
                            restore_best_weights=True)])
    if settings.distill_weight > 0:
        model.compile(optimizer, **plain)
    return {k: [float(v) for v in values] for k, values in history.history.items()}
