"""Training: tf.data pipelines, callbacks and the run directory (see `deepsense.run`).

No argparse here. Re-running `fit` with the same run directory resumes an interrupted run.
"""

from __future__ import annotations

import itertools
import dataclasses
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from deepsense.config import RunConfig, TrainConfig, config_to_dict, config_to_toml
from deepsense.errors import ConfigError
from deepsense.data.prepared import PreparedDataset
from deepsense.data.shards import ShardedWindows
from deepsense.run import CONFIG_FILE, MODEL_FILE, RunInfo, split_rows

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (after quieting TensorFlow's C++ logging)
import tensorflow as tf  # noqa: E402

from deepsense.averaging import AveragedWeights  # noqa: E402
from deepsense.batchnorm import PreciseBatchNorm, sample_rows  # noqa: E402
from deepsense.distribute import distribution_strategy, is_chief, prepare_multi_worker_fit  # noqa: E402
from deepsense.model import build_deepsense, count_parameters  # noqa: E402
from deepsense.rotate import rotation_augmenter  # noqa: E402

#: Shards a streaming pipeline holds at once (their windows are shuffled together).
SHARDS_IN_MEMORY = 4
#: Fewest optimiser steps in an epoch (the unit of validation, early stopping and
#: checkpoints): a small dataset is repeated so that an epoch moves the weights enough to
#: judge (BasicMotions' 36 training windows would otherwise make epochs of one step).
MIN_STEPS_PER_EPOCH = 50


@dataclass
class TrainResult:
    run_dir: Path
    model: keras.Model
    history: dict[str, list[float]]
    info: RunInfo


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (keras.utils.set_random_seed)."""
    keras.utils.set_random_seed(seed)


def _batched(dataset: tf.data.Dataset, batch_size: int) -> tf.data.Dataset:
    options = tf.data.Options()  # every worker reads all and keeps its part of each batch
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE).with_options(options)


def make_tf_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, *, shuffle: bool,
                    seed: int = 0) -> tf.data.Dataset:
    """Batches of (x (b, T, F) float32, y (b,) int32 or (b, 1) float32), prefetched."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    return _batched(dataset, batch_size)


def sharded_tf_dataset(x: ShardedWindows, rows: np.ndarray, y: np.ndarray, batch_size: int, *,
                       shuffle: bool, seed: int = 0) -> tf.data.Dataset:
    """`make_tf_dataset` streaming from shards: memory bounded by SHARDS_IN_MEMORY shards.

    Each epoch visits the shards in a new random order, SHARDS_IN_MEMORY at a time, and
    shuffles the selected windows of those shards together (without `shuffle`: row order).
    """
    owner = np.searchsorted(x.offsets, rows, side="right") - 1
    shards = np.unique(owner)
    epochs = itertools.count()

    def windows():
        rng = np.random.default_rng([seed, next(epochs)])
        order = rng.permutation(shards) if shuffle else shards
        for start in range(0, len(order), SHARDS_IN_MEMORY):
            group = order[start:start + SHARDS_IN_MEMORY]
            loaded = {int(i): x.shard(int(i)) for i in group}  # read-only from here on
            picked = np.flatnonzero(np.isin(owner, group))
            for p in rng.permutation(picked) if shuffle else picked:
                yield loaded[int(owner[p])][rows[p] - x.offsets[owner[p]]], y[p]

    signature = (tf.TensorSpec(x.shape[1:], tf.float32), tf.TensorSpec(y.shape[1:], y.dtype))
    return _batched(tf.data.Dataset.from_generator(windows, output_signature=signature),
                    batch_size)


def window_dataset(ds: PreparedDataset, rows: np.ndarray, task: str, batch_size: int, *,
                   shuffle: bool, seed: int = 0) -> tf.data.Dataset:
    """Batches of the windows `rows` and their labels, in memory or streamed from shards."""
    y = _targets(ds, rows, task)
    if isinstance(ds.x, ShardedWindows):
        return sharded_tf_dataset(ds.x, rows, y, batch_size, shuffle=shuffle, seed=seed)
    return make_tf_dataset(ds.x[rows], y, batch_size, shuffle=shuffle, seed=seed)


def _targets(ds: PreparedDataset, rows: np.ndarray, task: str) -> np.ndarray:
    labels = ds.labels(task)[rows]
    return labels.astype(np.float32)[:, None] if task == "regression" else labels.astype(np.int32)


def make_optimizer(t: TrainConfig) -> keras.optimizers.Adam:
    """Adam with the released code's settings, keeping a moving average of the weights
    when `t.ema_momentum` > 0 (`fit` then judges and keeps it: deepsense.averaging)."""
    return keras.optimizers.Adam(t.learning_rate, beta_1=t.beta_1, beta_2=t.beta_2,
                                 use_ema=t.ema_momentum > 0, ema_momentum=t.ema_momentum)


def compile_model(model: keras.Model, config: RunConfig) -> None:
    """`make_optimizer`; cross-entropy or MSE."""
    t = config.train
    optimizer = make_optimizer(t)
    if t.task == "regression":
        model.compile(optimizer, loss="mse", metrics=[keras.metrics.MeanAbsoluteError(name="mae")])
    else:
        model.compile(optimizer, loss="sparse_categorical_crossentropy",
                      metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")])


ModelBuilder = Callable[[PreparedDataset, RunConfig, int], keras.Model]


def build_compiled_deepsense(ds: PreparedDataset, config: RunConfig, n_outputs: int) -> keras.Model:
    """The default ModelBuilder: plain DeepSense, compiled with the released optimiser."""
    model = build_deepsense(ds.features, n_outputs, config.train.task, config.model)
    compile_model(model, config)
    return model


def fit(ds: PreparedDataset, config: RunConfig, run_dir: str | Path, *,
        data_path: str | Path | None = None, verbose: int | None = None,
        build_model: ModelBuilder = build_compiled_deepsense, kind: str = "deepsense",
        extra_info: dict | None = None) -> TrainResult:
    """Train DeepSense on the training side of `config.train.split` and write a run directory.

    Re-running with the same `run_dir` after an interruption resumes from the last epoch.

    Args:
        ds: prepared windows.
        config: model and training settings (config.features is replaced by ds.features).
        run_dir: output directory.
        data_path: recorded in run.json so `evaluate` can find the data again.
        verbose: Keras verbosity; default 1 (progress bar) on a terminal, else 2 (a line per epoch).
        build_model: returns the compiled model to train, given the data, the config and the
            number of outputs (other packages plug in heads and losses here).
        kind: model family recorded in run.json (e.g. "deepsense", "rdeepsense").
        extra_info: `RunInfo` fields to set (e.g. the outputs layout of another head).
    """
    t = config.train
    strategy = distribution_strategy()  # first: collective ops are set up at TF start-up
    chief = is_chief()
    run = Path(run_dir) if chief else Path(tempfile.mkdtemp(prefix="deepsense-worker-"))
    run.mkdir(parents=True, exist_ok=True)
    config = RunConfig(model=config.model, train=t, features=ds.features)
    seed_everything(t.seed)

    fit_rows, val_rows, test_rows = split_rows(ds, t)
    class_names = ds.class_names(t.task)
    if t.task != "regression":
        unseen = set(ds.labels(t.task)[test_rows].tolist()) - set(
            ds.labels(t.task)[fit_rows].tolist())
        if unseen:
            raise ConfigError(
                f"split {t.split!r} tests {t.task} classes never seen in training: "
                f"{sorted(class_names[i] for i in unseen)} (for UserID use a time split, "
                "e.g. --split time:0.3)")
    n_outputs = 1 if t.task == "regression" else len(class_names)
    if t.head != "softmax" and build_model is build_compiled_deepsense:
        raise ConfigError(f"train.head={t.head!r} needs its own model builder: use "
                          "rdeepsense.train.fit_rdeepsense or `deepsense train --head rdeepsense`")

    with strategy.scope():
        model = build_model(ds, config, n_outputs)
    train_data = window_dataset(ds, fit_rows, t.task, t.batch_size, shuffle=True, seed=t.seed)
    yaw = t.yaw_rotation_degrees if "acc" in ds.features.sensors else 0.0
    if (t.rotation_degrees or yaw) and ds.features.n_axes == 3:
        train_data = train_data.map(rotation_augmenter(ds.features, t.rotation_degrees, yaw),
                                    num_parallel_calls=tf.data.AUTOTUNE)
    val_data = (window_dataset(ds, val_rows, t.task, t.batch_size, shuffle=False)
                if len(val_rows) else None)
    if isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        prepare_multi_worker_fit(model, strategy, train_data)
    monitor = "val_loss" if val_data is not None else "loss"

    (run / "checkpoints").mkdir(exist_ok=True)
    (run / CONFIG_FILE).write_text(config_to_toml(config))
    callbacks = [
        *([AveragedWeights()] if model.optimizer.use_ema else []),  # first: all judge it
        keras.callbacks.BackupAndRestore(str(run / "backup")),
        PreciseBatchNorm(ds.x[sample_rows(fit_rows, seed=t.seed)]),  # before what judges it
        keras.callbacks.ModelCheckpoint(str(run / MODEL_FILE), monitor=monitor,
                                        save_best_only=True),
        keras.callbacks.ModelCheckpoint(str(run / "checkpoints" / "last.keras")),
        keras.callbacks.EarlyStopping(monitor=monitor, patience=t.early_stopping_patience,
                                      restore_best_weights=True),
        *([keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=0.5,
                                             patience=t.lr_plateau_patience,
                                             min_lr=t.learning_rate / 32)]
          if t.lr_plateau_patience else []),
        keras.callbacks.CSVLogger(str(run / "history.csv"), append=True),
        keras.callbacks.TensorBoard(str(run / "logs"), write_graph=False),
    ]
    if verbose is None:
        verbose = 1 if sys.stdout.isatty() else 2
    started = time.perf_counter()
    steps_per_epoch = epoch_steps(len(fit_rows), t.batch_size, t.steps_per_epoch)
    history = model.fit(train_data.repeat(), validation_data=val_data, epochs=t.epochs,
                        steps_per_epoch=steps_per_epoch, callbacks=callbacks,
                        verbose=verbose, shuffle=False)
    seconds = time.perf_counter() - started
    n_epochs = len(history.epoch)
    windows_per_epoch = steps_per_epoch * t.batch_size
    model.save(run / MODEL_FILE)  # EarlyStopping restored the best weights

    info = RunInfo(
        kind=kind,
        head=t.head,
        outputs=({"layout": "values", "width": n_outputs} if t.task == "regression"
                 else {"layout": "probabilities", "width": n_outputs}),
        task=t.task,
        class_names=class_names,
        features=ds.features.to_dict(),
        data_path=str(Path(data_path).resolve()) if data_path else None,
        split=t.split,
        n_train_windows=int(len(fit_rows)),
        n_validation_windows=int(len(val_rows)),
        n_test_windows=int(len(test_rows)),
        parameters=count_parameters(model),
        epochs_run=n_epochs,
        steps_per_epoch=steps_per_epoch,
        train_seconds=round(seconds, 2),
        train_windows_per_s=round(windows_per_epoch * max(n_epochs, 1) / max(seconds, 1e-9), 1),
        distribution={"strategy": type(strategy).__name__,
                      "replicas": int(strategy.num_replicas_in_sync)},
        config=config_to_dict(config),
    )
    info = dataclasses.replace(info, **(extra_info or {}))
    info.write(run)
    return TrainResult(run, model, {k: [float(v) for v in vals]
                                    for k, vals in history.history.items()}, info)


def epoch_steps(n_windows: int, batch_size: int, configured: int | None) -> int:
    """Optimiser steps per epoch: `configured`, else one pass over `n_windows` but at least
    MIN_STEPS_PER_EPOCH."""
    return configured or max(math.ceil(n_windows / batch_size), MIN_STEPS_PER_EPOCH)
