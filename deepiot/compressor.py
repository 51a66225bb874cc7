"""The compressor: an LSTM over the layers that emits a keep probability per hidden unit.

For unit group l with weight matrix W_l (rows x n_units_l, see `group_matrix`), the
compressor projects the matrix to a vector ``v_l = (a_l^T W_l) B_l`` (a_l: rows,
B_l: n_units_l x hidden), runs one LSTM step per group in forward order, and maps each
output o_l back to probabilities ``p_l = sigmoid(o_l C_l)`` (C_l: hidden x n_units_l).
a, B, C and the LSTM are the trainable parameters; the critic's weights are read, not
trained, here.
"""

from __future__ import annotations

import math

import keras
from keras import ops

from deepiot.structure import PrunableStructure


def group_matrix(model: keras.Model, structure: PrunableStructure, group: str):
    """The weights that produce a group's units, as one (rows, n_units) tensor.

    Conv: the kernel reshaped to (kernel positions x input channels, units) with the bias
    as a last row; tied convs stack their rows. GRU: for each gate block (z, r, h) the
    kernel, recurrent kernel and both bias rows of that block, stacked:
    (3 * (inputs + units + 2), units).
    """
    parts = []
    for name in structure.group(group).layers:
        layer = model.get_layer(name)
        if structure.layer(name).kind == "conv":
            kernel = ops.reshape(layer.kernel, (-1, layer.kernel.shape[-1]))
            parts += [kernel, ops.expand_dims(layer.bias, 0)]
        else:
            cell = layer.cell
            units = cell.units
            for block in range(3):
                columns = slice(block * units, (block + 1) * units)
                parts += [cell.kernel[:, columns], cell.recurrent_kernel[:, columns],
                          cell.bias[:, columns]]
    return ops.stop_gradient(ops.concatenate(parts, axis=0))


def _glorot(fan_in: int, fan_out: int, seed: keras.random.SeedGenerator):
    return keras.initializers.TruncatedNormal(stddev=math.sqrt(2.0 / (fan_in + fan_out)),
                                              seed=seed)


class Compressor(keras.Model):
    """Keep probabilities for every unit group from the groups' weight matrices.

    Args:
        shapes: per unit group, in forward order, the (rows, n_units) of its matrix.
        hidden_units: LSTM width (64 in the paper).
        seed: seeds the initial projections.

    Call arguments: a list of (rows_l, n_units_l) matrices in the order of `shapes`.
    Returns: a list of (n_units_l,) keep probabilities.
    """

    def __init__(self, shapes: list[tuple[int, int]], hidden_units: int = 64,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        if hidden_units < 1:
            raise ValueError(f"hidden_units expected a positive integer. Received: {hidden_units}")
        self.shapes = [tuple(int(v) for v in shape) for shape in shapes]
        self.hidden_units = hidden_units
        seeds = keras.random.SeedGenerator(seed)
        self.read = [self.add_weight(shape=(rows,), initializer=_glorot(1, rows, seeds),
                                     name=f"read_rows_{i}")
                     for i, (rows, _) in enumerate(self.shapes)]
        self.embed = [self.add_weight(shape=(units, hidden_units),
                                      initializer=_glorot(units, hidden_units, seeds),
                                      name=f"embed_{i}")
                      for i, (_, units) in enumerate(self.shapes)]
        self.emit = [self.add_weight(shape=(hidden_units, units),
                                     initializer=_glorot(hidden_units, units, seeds),
                                     name=f"emit_{i}")
                     for i, (_, units) in enumerate(self.shapes)]
        self.lstm = keras.layers.LSTM(hidden_units, return_sequences=True, seed=seed)

    def call(self, matrices):
        if len(matrices) != len(self.shapes):
            raise ValueError(f"Compressor expected {len(self.shapes)} matrices. "
                             f"Received: {len(matrices)}")
        vectors = [ops.matmul(ops.matmul(ops.expand_dims(a, 0), w), b)  # (1, hidden)
                   for a, w, b in zip(self.read, matrices, self.embed)]
        outputs = self.lstm(ops.expand_dims(ops.concatenate(vectors, axis=0), 0))[0]
        return [ops.sigmoid(ops.matmul(outputs[i:i + 1], c))[0] for i, c in enumerate(self.emit)]


def build_compressor(model: keras.Model, structure: PrunableStructure, hidden_units: int = 64,
                     seed: int | None = None) -> Compressor:
    """A Compressor sized for `model`'s unit groups."""
    shapes = [tuple(group_matrix(model, structure, g.name).shape) for g in structure.groups]
    return Compressor(shapes, hidden_units, seed=seed)
