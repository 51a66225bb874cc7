"""Fine-tuning a thinned model, optionally distilling the uncompressed model's outputs.

The thinned model computes exactly the masked model with its mask fixed (`deepiot.thin`),
so training it *is* DeepIoT's fine-tuning with the mask fixed, on a smaller, faster network.
The loss on the labels is the run's own (`deepiot.objective`: cross-entropy, or an
RDeepSense run's scoring rule). With a teacher (the uncompressed model), its predictive
distribution is distilled too: ``(1 - w) * loss(labels) + w * D(teacher, student)`` with

- classes: ``D = T^2 * CE(teacher_T, student_T)``, ``p_T = softmax(log p / T)`` (Hinton et
  al., 2015; T = 1 matches the teacher's probabilities themselves);
- Gaussian regression: ``D = KL(N(m_t, v_t) || N(m_s, v_s))`` averaged over the k targets,
  ``0.5 * (log(v_s / v_t) + (v_t + (m_t - m_s)^2) / v_s - 1)``: the student learns the
  teacher's mean and variance, not only its mean.

BatchNorm statistics are recomputed from training windows before every validation
(`deepsense.batchnorm.PreciseBatchNorm`), as `train` does.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from deepiot.objective import Objective
from deepsense.batchnorm import PreciseBatchNorm, sample_rows

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
        temperature: T above (classification only).
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


def gaussian_kl(teacher, student):
    """KL(N(teacher) || N(student)) per window, averaged over k: (b, 2k) x2 -> (b,)."""
    k = student.shape[-1] // 2
    m_t, v_t = teacher[:, :k], teacher[:, k:]
    m_s, v_s = student[:, :k], student[:, k:]
    return ops.mean(0.5 * (ops.log(v_s / v_t) + (v_t + ops.square(m_t - m_s)) / v_s - 1.0),
                    axis=-1)


def distillation_loss(objective: Objective, distill_weight: float, temperature: float):
    """Per-window loss on packed targets: the labels (1 column for classes, k for
    regression), then the teacher's outputs (C probabilities, or 2k [mean, variance]);
    only the labels when `distill_weight` is 0."""
    hard_loss = objective.loss()

    def loss(packed, outputs):
        n_labels = outputs.shape[-1] // 2 if objective.regression else 1
        labels = packed[:, :n_labels]
        hard = hard_loss(labels if objective.regression else ops.cast(labels, "int32"), outputs)
        if distill_weight == 0:
            return hard
        teacher = packed[:, n_labels:]
        if objective.regression:
            soft = gaussian_kl(teacher, outputs)
        else:
            student = ops.log(ops.clip(_tempered(outputs, temperature), PROB_FLOOR, 1.0))
            soft = -ops.sum(_tempered(teacher, temperature) * student, axis=-1) * temperature ** 2
        return (1.0 - distill_weight) * hard + distill_weight * soft
    return loss


def fine_tune(model: keras.Model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
              y_val: np.ndarray, settings: FineTuneSettings = FineTuneSettings(), *,
              objective: Objective = Objective("activity"),
              teacher: tuple[np.ndarray, np.ndarray] | None = None,
              verbose: int = 0) -> dict[str, list[float]]:
    """Train a (thinned) DeepSense model in place; keep the best validation epoch.

    Args:
        model: softmax classifier, or a model with an RDeepSense head.
        x, y: training windows (n, T, F) and classes (n,) or targets (n,) / (n, k);
            x_val, y_val: validation.
        settings: see FineTuneSettings.
        objective: the run's loss and score (`deepiot.objective`).
        teacher: the uncompressed model's outputs on x and x_val, (n, C) / (n, 2k) and
            (n_val, ...); used when settings.distill_weight > 0.
        verbose: Keras fit verbosity.

    Returns:
        Keras history (loss, accuracy or mae, val_loss, val_... per epoch). The model is left
        compiled with the run's loss on the labels (`Objective.compile`), so it saves and
        loads without custom objects.
    """
    optimizer = keras.optimizers.Adam(settings.learning_rate, beta_1=0.5,
                                      beta_2=0.9)
    y, y_val = objective.targets(y), objective.targets(y_val)
    y, y_val = (y.reshape(len(y), -1).astype(np.float32),
                y_val.reshape(len(y_val), -1).astype(np.float32))
    if settings.distill_weight > 0:
        if teacher is None:
            raise ValueError("distill_weight > 0 needs the teacher's outputs")
        y = np.concatenate([y, teacher[0]], axis=1)
        y_val = np.concatenate([y_val, teacher[1]], axis=1)
    n_labels = None if objective.regression else 1

    def score(packed, outputs):
        k = outputs.shape[-1] // 2 if n_labels is None else n_labels
        return objective.batch_score(packed[:, :k], outputs)

    model.compile(optimizer, loss=distillation_loss(objective, settings.distill_weight,
                                                    settings.temperature),
                  metrics=[keras.metrics.MeanMetricWrapper(score, name=objective.score_name)])
    keras.utils.set_random_seed(settings.seed)
    validation = (x_val, y_val) if len(x_val) else None
    monitor = "val_loss" if validation else "loss"
    precise = PreciseBatchNorm(x[sample_rows(np.arange(len(x)), seed=settings.seed)])
    history = model.fit(x, y, batch_size=settings.batch_size, epochs=settings.epochs,
                        validation_data=validation, shuffle=True, verbose=verbose,
                        callbacks=[precise, keras.callbacks.EarlyStopping(
                            monitor=monitor, patience=settings.patience,
                            restore_best_weights=True)])
    objective.compile(model, optimizer)
    return {k: [float(v) for v in values] for k, values in history.history.items()}
