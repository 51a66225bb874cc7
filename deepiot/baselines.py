"""The baselines DeepIoT is compared with, at the same parameter budget.

- `l1_norm_masks`: structured pruning by the L1 norm of each unit's weights (Li et al.,
  ICLR 2017), one keep ratio for every layer, thinned with `deepiot.thin` like DeepIoT.
- `magnitude_prune`: unstructured magnitude pruning with retraining in the manner of
  Dynamic Network Surgery (Guo et al., NIPS 2016; the paper's DyNS baseline): the forward
  pass uses the masked kernels, the gradient updates the dense kernels underneath, and the
  masks are recomputed from those as sparsity rises, so pruned weights can come back. The
  result keeps the original's dense shapes (zeros in place): small only in a sparse format,
  and no faster in a dense runtime.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from deepiot.cost import BYTES_PER_PARAMETER, parameter_fraction
from deepiot.finetune import FineTuneSettings, distillation_loss
from deepiot.masks import Masks
from deepiot.objective import Objective
from deepiot.structure import PrunableStructure

#: Bytes per stored index of a sparse (CSR) matrix: int32.
BYTES_PER_INDEX = 4


def unit_l1_norms(model: keras.Model, structure: PrunableStructure) -> dict[str, np.ndarray]:
    """Per unit group, the L1 norm of each unit's incoming weights (n_units,): all kernel
    entries producing that filter (summed over tied layers), or all gate columns of a GRU
    unit in the kernel and the recurrent kernel."""
    norms = {}
    for group in structure.groups:
        total = np.zeros(group.n_units)
        for name in group.layers:
            layer = model.get_layer(name)
            if structure.layer(name).kind == "conv":
                kernel = layer.kernel.numpy()
                total += np.abs(kernel).reshape(-1, kernel.shape[-1]).sum(axis=0)
            else:
                weights = np.concatenate([layer.cell.kernel.numpy(),
                                          layer.cell.recurrent_kernel.numpy()])
                total += np.abs(weights).reshape(len(weights), 3, group.n_units).sum(axis=(0, 1))
        norms[group.name] = total
    return norms


def l1_norm_masks(model: keras.Model, structure: PrunableStructure,
                  target_fraction: float) -> Masks:
    """Keep the same share r of units in every group, those of largest L1 norm, with the
    largest r that leaves at most `target_fraction` of the trainable parameters (at least
    one unit per group). Scales are 1."""
    norms = unit_l1_norms(model, structure)

    def widths(ratio: float) -> dict[str, int]:
        return {g.name: max(1, int(math.floor(ratio * g.n_units))) for g in structure.groups}

    low, high = 0.0, 1.0
    for _ in range(40):
        middle = (low + high) / 2
        if parameter_fraction(structure, widths(middle)) <= target_fraction:
            low = middle
        else:
            high = middle
    masks = {}
    for name, count in widths(low).items():
        scales = np.zeros(len(norms[name]), np.float32)
        scales[np.argsort(-norms[name], kind="stable")[:count]] = 1.0
        masks[name] = scales
    return masks


def prunable_kernels(model: keras.Model) -> list:
    """The kernels magnitude pruning sparsifies: convs, GRU input and recurrent, Dense."""
    kernels = []
    for layer in model.layers:
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv3D, keras.layers.Dense)):
            kernels.append(layer.kernel)
        elif isinstance(layer, keras.layers.GRU):
            kernels += [layer.cell.kernel, layer.cell.recurrent_kernel]
    return kernels


def magnitude_masks(weights: list[np.ndarray], n_keep: int) -> list[np.ndarray]:
    """Keep the `n_keep` entries of largest magnitude relative to their kernel's RMS.

    Normalising by each kernel's RMS keeps one global threshold from emptying the layers
    whose weights are small by construction (large fan-in).
    """
    scores = [np.abs(w) / max(float(np.sqrt(np.mean(w ** 2))), 1e-12) for w in weights]
    flat = np.concatenate([s.ravel() for s in scores])
    if n_keep >= flat.size:
        return [np.ones_like(w, dtype=np.float32) for w in weights]
    cut = np.partition(flat, flat.size - n_keep)[flat.size - n_keep]
    return [(s >= cut).astype(np.float32) for s in scores]


@dataclass
class MagnitudePruningResult:
    """A magnitude-pruned model and its honest sizes.

    Attributes:
        model: the original architecture with pruned kernel entries set to 0.
        nonzero_parameters: trainable parameters that are not pruned (biases and
            BatchNorm scales/offsets included).
        sparse_bytes: float32 values plus int32 CSR indices of the pruned kernels, plus
            every other weight (BatchNorm statistics included) dense.
        dense_bytes: the model as stored and run: the original's float32 size.
        history: per epoch: loss, accuracy, val_loss, val_accuracy, kept kernel entries.
    """

    model: keras.Model
    nonzero_parameters: int
    sparse_bytes: int
    dense_bytes: int
    history: list[dict]


def _sparse_bytes(model: keras.Model, kernels: list) -> int:
    kernel_ids = {id(k) for k in kernels}
    dense = sum(int(np.prod(w.shape)) for w in model.weights if id(w) not in kernel_ids)
    total = BYTES_PER_PARAMETER * dense
    for kernel in kernels:
        values = kernel.numpy().reshape(-1, kernel.shape[-1])
        nonzero = int(np.count_nonzero(values))
        total += nonzero * (BYTES_PER_PARAMETER + BYTES_PER_INDEX)
        total += (values.shape[0] + 1) * BYTES_PER_INDEX
    return total


def magnitude_prune(model: keras.Model, x: np.ndarray, y: np.ndarray, x_val: np.ndarray,
                    y_val: np.ndarray, n_nonzero: int,
                    settings: FineTuneSettings = FineTuneSettings(), *,
                    teacher: np.ndarray | None = None, ramp_fraction: float = 0.6,
                    update_every: int = 20) -> MagnitudePruningResult:
    """Prune a copy of `model` to `n_nonzero` trainable parameters, retraining as it goes.

    Sparsity rises along Zhu and Gupta's cubic ramp over the first `ramp_fraction` of the
    steps, the masks being recomputed every `update_every` steps from the dense kernels;
    then the masks stay fixed. The epoch of lowest validation loss after the ramp is kept.

    Args:
        model: trained DeepSense classifier (softmax outputs).
        x, y, x_val, y_val: training and validation windows and classes.
        n_nonzero: trainable parameters to keep, the budget of the compared methods.
        settings: epochs, batch size, learning rate (Adam, beta 0.5 / 0.9), seed, and the
            distillation weight and temperature (`deepiot.finetune`).
        teacher: (n, n_classes) the original model's probabilities on x, needed when
            settings.distill_weight > 0.
    """
    keras.utils.set_random_seed(settings.seed)
    pruned = keras.models.clone_model(model)
    pruned.set_weights(model.get_weights())
    kernels = prunable_kernels(pruned)
    kernel_ids = {id(k) for k in kernels}
    n_kernel = sum(int(np.prod(k.shape)) for k in kernels)
    others = [w for w in pruned.trainable_weights if id(w) not in kernel_ids]
    n_other = sum(int(np.prod(w.shape)) for w in others)
    n_keep_final = n_nonzero - n_other
    if n_keep_final < 1:
        raise ValueError(f"a budget of {n_nonzero} parameters leaves no kernel entries "
                         f"({n_other} biases and BatchNorm parameters are kept dense)")
    dense = [keras.Variable(k.numpy(), name=f"dense_{i}") for i, k in enumerate(kernels)]
    masks = [keras.Variable(np.ones(k.shape, np.float32), trainable=False) for k in kernels]
    optimizer = keras.optimizers.Adam(settings.learning_rate, beta_1=0.5, beta_2=0.9)
    targets = kernels + others
    updated = dense + others
    if settings.distill_weight > 0 and teacher is None:
        raise ValueError("distill_weight > 0 needs the teacher's probabilities")
    # targets packed as (class, teacher probabilities), as `deepiot.finetune` does
    packed = np.concatenate([np.asarray(y, np.float32)[:, None],
                             teacher if settings.distill_weight > 0 else
                             np.zeros((len(y), 0), np.float32)], axis=1)
    loss_fn = distillation_loss(Objective("activity"), settings.distill_weight,
                                settings.temperature)

    @tf.function(reduce_retracing=True)
    def train_step(xb, yb):
        for kernel, d, m in zip(kernels, dense, masks):
            kernel.assign(d * m)
        with tf.GradientTape() as tape:
            probs = pruned(xb, training=True)
            loss = tf.reduce_mean(loss_fn(yb, probs)) + tf.add_n([0.0] + pruned.losses)
        optimizer.apply_gradients(zip(tape.gradient(loss, targets), updated))
        correct = tf.equal(tf.argmax(probs, axis=1), tf.cast(yb[:, 0], tf.int64))
        return loss, tf.reduce_mean(tf.cast(correct, tf.float32))

    def set_sparsity(step: int) -> int:
        progress = min(1.0, step / ramp_steps)
        n_keep = int(round(n_kernel - (n_kernel - n_keep_final) * (1 - (1 - progress) ** 3)))
        for m, new in zip(masks, magnitude_masks([d.numpy() for d in dense], n_keep)):
            m.assign(new)
        return n_keep

    rng = np.random.default_rng(settings.seed)
    steps_per_epoch = max(1, len(x) // settings.batch_size)
    ramp_steps = max(1, int(ramp_fraction * settings.epochs * steps_per_epoch))
    history, best, best_loss, step = [], None, np.inf, 0
    for epoch in range(settings.epochs):
        order = rng.permutation(len(x))
        losses, accuracies = [], []
        for start in range(0, steps_per_epoch * settings.batch_size, settings.batch_size):
            if (step % update_every == 0 and step < ramp_steps) or step == ramp_steps:
                n_keep = set_sparsity(step)
            rows = np.sort(order[start:start + settings.batch_size])
            loss, accuracy = train_step(tf.constant(x[rows]), tf.constant(packed[rows]))
            losses.append(float(loss))
            accuracies.append(float(accuracy))
            step += 1
        for kernel, d, m in zip(kernels, dense, masks):
            kernel.assign(d * m)
        val_probs = pruned.predict(x_val, verbose=0, batch_size=256)
        val_loss = float(np.mean(keras.losses.sparse_categorical_crossentropy(y_val, val_probs)))
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)),
                        "accuracy": float(np.mean(accuracies)), "val_loss": val_loss,
                        "val_accuracy": float(np.mean(val_probs.argmax(axis=1) == y_val)),
                        "kept_kernel_entries": n_keep})
        if step > ramp_steps and val_loss < best_loss:
            best, best_loss = pruned.get_weights(), val_loss
    if best is not None:
        pruned.set_weights(best)
    nonzero = n_other + sum(int(np.count_nonzero(k.numpy())) for k in kernels)
    dense_bytes = BYTES_PER_PARAMETER * sum(int(np.prod(w.shape)) for w in pruned.weights)
    return MagnitudePruningResult(pruned, nonzero, _sparse_bytes(pruned, kernels), dense_bytes,
                                  history)
