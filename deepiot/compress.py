"""Compression: the compressor and the critic trained in turn (DeepIoT, SenSys 2017).

Each iteration draws a batch and, for every window, a binary mask per unit group from the
compressor's keep probabilities (soft-deleted: p -> p / 2 where p < tau). The critic (a
copy of the pretrained model, `deepiot.masked`) runs with those masks; one forward pass
gives both updates:

- the critic takes an ordinary gradient step on its loss (the run's own: cross-entropy, or
  an RDeepSense run's proper scoring rule, `deepiot.objective`; + L2), Adam with the
  released code's betas;
- the compressor takes a REINFORCE step, ``grad log p(z) * (loss - ema_mean) /
  max(1, ema_std)`` per window, where ema_mean and ema_std are moving averages (decay 0.9)
  of the batch mean and standard deviation of the loss, RMSProp as in the original code.

At the end of every threshold step the kept set (p >= tau) is priced with `deepiot.cost`
and, when it changed, the deterministic masked model (kept units scaled by p, BatchNorm
recalibrated for that mask) is scored on validation data (accuracy; MAE for regression).
Compression stops when the trainable parameters fall to the target (the threshold is then
lowered to the least one that meets it), when validation accuracy falls under a floor (the
last state above it is restored), or some steps after the schedule ends (by default the
threshold then rises past its final value until the target is met).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import keras
import numpy as np
import tensorflow as tf

from deepiot.batchnorm import recalibrate
from deepiot.compressor import build_compressor, group_matrix
from deepiot.cost import parameter_fraction
from deepiot.masked import MaskedNetwork, masked_inputs
from deepiot.masks import (Masks, full_masks, keep_mask, kept_widths,
                           threshold_for_budget)
from deepiot.objective import Objective
from deepiot.schedule import CompressionSchedule, ExtendedSchedule
from deepiot.structure import PrunableStructure, read_structure

#: Probabilities are kept in [EPSILON, 1 - EPSILON] inside log p(z).
EPSILON = 1e-6
#: The threshold never rises past this while training (see CompressSettings.extend_steps).
MAX_THRESHOLD = 0.99

STOP_TARGET = "target reached"
STOP_EXTENDED = "target reached past the schedule"
STOP_FLOOR = "accuracy floor"
STOP_SCHEDULE = "schedule ended above target"


@dataclass(frozen=True)
class CompressSettings:
    """Knobs of the compression phase.

    Attributes:
        target_params: stop when the trainable parameters left are at most this fraction.
        min_accuracy: stop (and keep the last state above it) when validation accuracy of
            the masked model falls under this floor; None: no floor (classification only).
        batch_size: windows per iteration (the released code: 64; 32 runs 2.4 times as
            many iterations per second on a 2-core CPU).
        critic_learning_rate: Adam step of the critic (beta 0.5 / 0.9, as released).
        compressor_learning_rate: RMSProp step of the compressor. The released code uses
            1e-3 with 500 iterations per threshold step (16,500 in all); a 30-minute
            budget on 2 cores affords 40 or so per step. At 1e-3 and 12 per step the keep
            probabilities barely leave their initial 0.50 +- 0.02 (the cheap per-sensor
            convs least), so the rising threshold removes whole layers at once (1 of 64
            filters left in the first convs, 0.43 accuracy after fine-tuning against the
            L1-norm baseline's 1.00 on synthetic activity). 1e-2 lets them separate within
            the shorter run (BENCHMARKS.md, DeepIoT).
        ema_decay: decay of the moving loss mean and standard deviation (0.9, as released).
        hidden_units: compressor LSTM width (64 in the paper).
        patience_steps: threshold steps to wait for the target after the schedule ends.
        extend_steps: if the target is still not met then, keep raising the threshold by
            the schedule's last increment, one step per interval, for at most this many
            steps (0: none), training on as before, so the critic adapts to each cut.
        extend_threshold: if the target is still not met after those, raise the threshold
            at once, just far enough to meet it (the compressor's probabilities still rank
            the units).
        scale_by_probability: kept units are scaled by their keep probability (the
            original code's inference) rather than by 1.
        seed: seeds the batches, the masks and the compressor's initial weights.
    """

    target_params: float = 0.07
    min_accuracy: float | None = None
    batch_size: int = 32
    critic_learning_rate: float = 1e-4
    compressor_learning_rate: float = 1e-2
    ema_decay: float = 0.9
    hidden_units: int = 64
    patience_steps: int = 2
    extend_steps: int = 0
    extend_threshold: bool = True
    scale_by_probability: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.0 < self.target_params < 1.0:
            raise ValueError("target_params expected a fraction in (0, 1). "
                             f"Received: target_params={self.target_params}")
        if self.min_accuracy is not None and not 0.0 <= self.min_accuracy <= 1.0:
            raise ValueError("min_accuracy expected a fraction in [0, 1]. "
                             f"Received: min_accuracy={self.min_accuracy}")
        if self.patience_steps < 0 or self.extend_steps < 0:
            raise ValueError("patience_steps and extend_steps expected integers >= 0. "
                             f"Received: {self.patience_steps}, {self.extend_steps}")
        for name in ("batch_size", "hidden_units"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} expected a positive integer. "
                                 f"Received: {name}={getattr(self, name)}")
        for name in ("critic_learning_rate", "compressor_learning_rate"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} expected a positive number. "
                                 f"Received: {name}={getattr(self, name)}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay expected [0, 1). Received: ema_decay={self.ema_decay}")


@dataclass
class CompressionResult:
    """What compression found.

    Attributes:
        critic: the trained critic (a DeepSense with all units; `masks` prune it).
        masks: unit group -> (n_units,) scales, 0 = removed.
        probabilities: unit group -> (n_units,) final keep probabilities.
        threshold: the threshold that made `masks`.
        stop_reason: STOP_TARGET, STOP_EXTENDED, STOP_FLOOR or STOP_SCHEDULE.
        iterations: compression iterations run.
        seconds: wall time of the compression phase.
        history: one record per threshold step: iteration, threshold, parameter fraction,
            validation score of the masked model (``validation_accuracy``, or
            ``validation_mae`` for regression), mean critic loss and batch score.
    """

    critic: keras.Model
    masks: Masks
    probabilities: dict[str, np.ndarray]
    threshold: float
    stop_reason: str
    iterations: int
    seconds: float
    history: list[dict] = field(default_factory=list)


def masked_score(network: MaskedNetwork, x: np.ndarray, y: np.ndarray, masks: Masks,
                 objective: Objective) -> float:
    """The objective's score (accuracy, or MAE) of the masked model with fixed `masks`
    (inference mode)."""
    return objective.score(y, network.predict(x, masks))


def _batches(n: int, batch_size: int, rng: np.random.Generator):
    """Endless shuffled index batches of exactly `batch_size` (reshuffled every pass)."""
    if n < batch_size:
        raise ValueError(f"compression needs at least batch_size={batch_size} training windows. "
                         f"Received: {n}")
    while True:
        order = rng.permutation(n)
        for start in range(0, n - batch_size + 1, batch_size):
            yield order[start:start + batch_size]


def _make_step(masked: keras.Model, critic: keras.Model, compressor: keras.Model,
               structure: PrunableStructure, settings: CompressSettings, objective: Objective):
    """The tf.function of one iteration: (x, y, tau) -> (critic loss, batch score)."""
    names = [g.name for g in structure.groups]
    critic_optimizer = keras.optimizers.Adam(settings.critic_learning_rate, beta_1=0.5, beta_2=0.9)
    compressor_optimizer = keras.optimizers.RMSprop(settings.compressor_learning_rate)
    ema_mean = tf.Variable(np.nan, dtype=tf.float32, trainable=False)
    ema_std = tf.Variable(np.nan, dtype=tf.float32, trainable=False)
    critic_variables = masked.trainable_variables
    compressor_variables = compressor.trainable_variables
    decay = settings.ema_decay
    seeds = keras.random.SeedGenerator(settings.seed)
    loss_fn = objective.loss()

    @tf.function(reduce_retracing=True)
    def step(x, y, tau):
        batch = tf.shape(x)[0]
        with tf.GradientTape(persistent=True) as tape:
            probs = compressor([group_matrix(critic, structure, name) for name in names])
            soft = [tf.clip_by_value(tf.where(p < tau, 0.5 * p, p), EPSILON, 1.0 - EPSILON)
                    for p in probs]
            sampled = [tf.cast(keras.random.uniform((batch, p.shape[0]), seed=seeds) < p,
                               tf.float32) for p in soft]
            outputs = masked(masked_inputs(x, dict(zip(names, sampled))), training=True)
            losses = loss_fn(y, outputs)
            critic_loss = tf.reduce_mean(losses) + tf.add_n([0.0] + masked.losses)
            log_prob = tf.add_n([tf.reduce_sum(z * tf.math.log(p) + (1 - z) * tf.math.log(1 - p),
                                               axis=1) for z, p in zip(sampled, soft)])
            mean = tf.where(tf.math.is_nan(ema_mean), tf.reduce_mean(losses), ema_mean)
            std = tf.where(tf.math.is_nan(ema_std), tf.math.reduce_std(losses), ema_std)
            advantage = tf.stop_gradient((losses - mean) / tf.maximum(1.0, std))
            compressor_loss = tf.reduce_mean(log_prob * advantage)
        critic_optimizer.apply_gradients(
            zip(tape.gradient(critic_loss, critic_variables), critic_variables))
        compressor_optimizer.apply_gradients(
            zip(tape.gradient(compressor_loss, compressor_variables), compressor_variables))
        del tape
        ema_mean.assign(decay * mean + (1 - decay) * tf.reduce_mean(losses))
        ema_std.assign(decay * std + (1 - decay) * tf.math.reduce_std(losses))
        return critic_loss, tf.reduce_mean(objective.batch_score(y, outputs))

    return step


def compress(model: keras.Model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
             y_val: np.ndarray, *, schedule: CompressionSchedule,
             settings: CompressSettings = CompressSettings(),
             objective: Objective = Objective("activity"),
             progress: Callable[[dict], None] | None = None) -> CompressionResult:
    """Find which units of a trained DeepSense model to remove.

    Args:
        model: the pretrained DeepSense (softmax outputs, or an RDeepSense head); it is
            copied, not changed.
        x, y: training windows (n, T, F) float32 and class indices (n,) or regression
            targets (n,) / (n, k).
        x_val, y_val: validation windows and labels, for the stop rules.
        schedule: the pruning threshold per iteration.
        settings: see CompressSettings.
        objective: the critic's loss and the validation score (the run's head and task).
        progress: called with each threshold step's history record.

    Returns:
        CompressionResult; thin `result.critic` with `result.masks` (`deepiot.thin`).
    """
    if objective.regression and settings.min_accuracy is not None:
        raise ValueError("min_accuracy is a classification floor; regression runs have none")
    started = time.perf_counter()
    keras.utils.set_random_seed(settings.seed)
    critic = keras.models.clone_model(model)
    critic.set_weights(model.get_weights())
    structure = read_structure(critic)
    network = MaskedNetwork(critic, structure)
    compressor = build_compressor(critic, structure, settings.hidden_units, seed=settings.seed)
    step = _make_step(network.model, critic, compressor, structure, settings, objective)
    names = [g.name for g in structure.groups]
    batches = _batches(len(x), settings.batch_size, np.random.default_rng(settings.seed))
    y = objective.targets(y)
    score_key = f"validation_{objective.score_name}"

    def probabilities() -> dict[str, np.ndarray]:
        probs = compressor([group_matrix(critic, structure, name) for name in names])
        return {name: np.asarray(p) for name, p in zip(names, probs)}

    history: list[dict] = []
    # masks, probabilities, threshold and critic weights of the last check above the floor
    unpruned = full_masks(structure)
    accepted = (unpruned, dict(unpruned), 0.0, critic.get_weights())
    run = ExtendedSchedule(schedule, settings.patience_steps, settings.extend_steps,
                           MAX_THRESHOLD)

    iteration, losses, accuracies = 0, [], []
    evaluated_widths, val_accuracy = kept_widths(unpruned), float("nan")
    stop_reason = STOP_SCHEDULE
    while True:
        tau = run(iteration)
        rows = next(batches)
        loss, accuracy = step(tf.constant(x[rows]), tf.constant(y[rows]),
                              tf.constant(tau, tf.float32))
        losses.append(float(loss))
        accuracies.append(float(accuracy))
        iteration += 1
        if not run.is_check(iteration):
            continue
        probs = probabilities()
        threshold = tau
        masks = keep_mask(probs, threshold, scale_by_probability=settings.scale_by_probability)
        fraction = parameter_fraction(structure, kept_widths(masks))
        reached = fraction <= settings.target_params
        extended = None
        if not reached and iteration >= run.end_iteration and settings.extend_threshold:
            extended = threshold_for_budget(structure, probs, settings.target_params, 1.0)
        if reached or extended is not None:  # the least threshold that meets the target
            threshold = extended if extended is not None else threshold_for_budget(
                structure, probs, settings.target_params, tau)
            masks = keep_mask(probs, threshold,
                              scale_by_probability=settings.scale_by_probability)
            fraction = parameter_fraction(structure, kept_widths(masks))
        last = reached or iteration >= run.end_iteration
        if len(x_val) and (kept_widths(masks) != evaluated_widths or last or
                           np.isnan(val_accuracy)):
            recalibrate(network, x, masks, seed=settings.seed)
            val_accuracy = masked_score(network, x_val, y_val, masks, objective)
            evaluated_widths = kept_widths(masks)
        record = {"iteration": iteration, "threshold": round(threshold, 4),
                  "parameter_fraction": round(fraction, 5),
                  "kept_units": int(sum(kept_widths(masks).values())),
                  score_key: round(val_accuracy, 4),
                  "critic_loss": round(float(np.mean(losses)), 4),
                  f"batch_{objective.score_name}": round(float(np.mean(accuracies)), 4),
                  "seconds": round(time.perf_counter() - started, 1)}
        history.append(record)
        losses, accuracies = [], []
        if progress:
            progress(record)
        if settings.min_accuracy is not None and val_accuracy < settings.min_accuracy:
            stop_reason = STOP_FLOOR
            masks, probs, threshold, weights = accepted
            critic.set_weights(weights)
            break
        accepted = (masks, probs, threshold, critic.get_weights())
        if reached or extended is not None:
            stop_reason = STOP_TARGET if reached else STOP_EXTENDED
        if last:
            break
    recalibrate(network, x, masks, seed=settings.seed)
    return CompressionResult(critic, masks, probs, threshold, stop_reason, iteration,
                             time.perf_counter() - started, history)
