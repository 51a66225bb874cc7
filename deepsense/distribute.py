"""Which tf.distribute strategy `fit` runs under, and who writes the run directory.

One machine, one device: the default strategy. Several GPUs: MirroredStrategy.
``TF_CONFIG`` naming several workers (set by `deepsense train --workers`, or injected by a
cluster manager such as Kubernetes): MultiWorkerMirroredStrategy, every worker running the
same `fit` on the same data; gradients are all-reduced, so ``train.batch_size`` is the
global batch.

Keras 3 (up to 3.15 at least) cannot `fit` under MultiWorkerMirroredStrategy as shipped
(keras-team/keras#20585): its first symbolic build all-reduces a data batch, and its
metric reduction asks for axis 0 of scalars. `prepare_multi_worker_fit` works around both,
touching two private Keras hooks; the multi-worker test guards them.
"""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as keras_tf_trainer


def _tf_config() -> dict:
    return json.loads(os.environ.get("TF_CONFIG") or "{}")


def distribution_strategy() -> tf.distribute.Strategy:
    """MultiWorkerMirroredStrategy when TF_CONFIG names several workers, MirroredStrategy
    on a machine with several GPUs, else the default (one device) strategy.

    Call it before any other TensorFlow op: collective ops are set up at start-up.
    """
    cluster = _tf_config().get("cluster", {})
    if len(cluster.get("worker", [])) + len(cluster.get("chief", [])) > 1:
        return tf.distribute.MultiWorkerMirroredStrategy()
    if len(tf.config.list_logical_devices("GPU")) > 1:
        return tf.distribute.MirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief() -> bool:
    """The process that writes the run directory: the chief, or worker 0 without one."""
    config = _tf_config()
    task = config.get("task", {})
    if not task or "chief" in config.get("cluster", {}):
        return task.get("type", "chief") == "chief"
    return task.get("type") == "worker" and int(task.get("index", 0)) == 0


_original_reduce_per_replica = keras_tf_trainer.reduce_per_replica


def _reduce_per_replica(values, strategy, reduction):
    """Keras's reduction, with scalar means across workers reduced over no axis."""
    if reduction in ("auto", "mean") and isinstance(
            strategy, tf.distribute.MultiWorkerMirroredStrategy):
        def mean(value):
            if isinstance(value, tf.distribute.DistributedValues):
                return strategy.reduce("MEAN", value, axis=None)
            return value
        return tf.nest.map_structure(mean, values)
    return _original_reduce_per_replica(values, strategy, reduction)


def prepare_multi_worker_fit(model: keras.Model, strategy: tf.distribute.Strategy,
                             data: tf.data.Dataset) -> None:
    """Make `model.fit` work under MultiWorkerMirroredStrategy (keras-team/keras#20585).

    Builds the optimizer and metrics from a local batch (every worker does the same), so
    `fit` skips its cross-worker build, and reduces per-worker metric scalars correctly.
    """
    with strategy.scope():
        model._symbolic_build(data_batch=next(iter(data.take(1))))
    model._maybe_symbolic_build = lambda iterator=None, data_batch=None: None
    keras_tf_trainer.reduce_per_replica = _reduce_per_replica
