"""Which hidden units of a DeepSense model DeepIoT can prune, and how the layers connect.

A *unit group* is a set of hidden units that share one keep mask: the filters of one conv,
the hidden units of one GRU, or the filters of the last per-sensor convs, which are stacked
along a sensor axis before the merge convs and so must keep the same channels (a tied
group, ``acc_gyro_conv3``). The input and the output layer are never pruned.

Every weighted layer records the group it outputs and the group it reads, which is all that
thinning (`deepiot.thin`) and costing (`deepiot.cost`) need. The structure is read from the
stable layer names that `deepsense.model.build_deepsense` gives; anything else fails loudly.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

#: Kinds of weighted layer: Conv2D/Conv3D + BatchNorm, GRU (reset_after), Dense.
LAYER_KINDS = ("conv", "gru", "dense")


class NotPrunableError(ValueError):
    """The model is not a DeepSense network whose units DeepIoT knows how to prune."""


@dataclass(frozen=True)
class UnitGroup:
    """Hidden units that share one keep mask.

    Attributes:
        name: a layer name, or ``<sensor>_<sensor>_conv<i>`` for tied per-sensor convs.
        layers: the weighted layers whose output units these are (2+ when tied).
        n_units: units per layer before pruning.
    """

    name: str
    layers: tuple[str, ...]
    n_units: int


@dataclass(frozen=True)
class WeightedLayer:
    """One weighted layer and its connections.

    Attributes:
        name: layer name in the model.
        kind: one of `LAYER_KINDS`.
        group: the unit group it outputs, or None for the output layer.
        input_group: the unit group it reads, or None when it reads the network input.
        n_inputs: input channels when `input_group` is None.
        input_repeat: input features per unit of `input_group` (positions x sensors when
            a conv output is flattened into a GRU; channels vary fastest), else 1.
        kernel_size: product of the kernel's spatial dimensions (1 for GRU and Dense).
        n_positions: output positions per window (conv), time steps (GRU), 1 (Dense).
        n_outputs: output units before pruning.
        batch_norm: name of the BatchNormalization layer on its output, if any.
    """

    name: str
    kind: str
    group: str | None
    input_group: str | None
    n_inputs: int
    input_repeat: int
    kernel_size: int
    n_positions: int
    n_outputs: int
    batch_norm: str | None = None


@dataclass(frozen=True)
class PrunableStructure:
    """Unit groups (in forward order, the compressor's sequence) and weighted layers."""

    groups: tuple[UnitGroup, ...]
    layers: tuple[WeightedLayer, ...]

    def group(self, name: str) -> UnitGroup:
        for group in self.groups:
            if group.name == name:
                return group
        raise KeyError(f"no unit group {name!r}; groups are {[g.name for g in self.groups]}")

    def layer(self, name: str) -> WeightedLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no weighted layer {name!r}")

    @property
    def n_units(self) -> int:
        """Prunable units in all groups (a tied group counts once)."""
        return sum(g.n_units for g in self.groups)

    def full_widths(self) -> dict[str, int]:
        """Units per group before pruning."""
        return {g.name: g.n_units for g in self.groups}

    def layer_widths(self, group_widths: dict[str, int]) -> dict[str, int]:
        """Group widths -> widths by layer name (the `widths` of build_deepsense)."""
        return {layer: int(group_widths[g.name]) for g in self.groups for layer in g.layers}

    def to_dict(self) -> dict[str, Any]:
        return {"groups": [asdict(g) for g in self.groups],
                "layers": [asdict(layer) for layer in self.layers]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "PrunableStructure":
        groups = tuple(UnitGroup(g["name"], tuple(g["layers"]), g["n_units"])
                       for g in data["groups"])
        return cls(groups, tuple(WeightedLayer(**layer) for layer in data["layers"]))


def _get(model, name: str):
    try:
        return model.get_layer(name)
    except ValueError:
        raise NotPrunableError(f"not a DeepSense model: no layer named {name!r} "
                               "(build it with deepsense.model.build_deepsense)") from None


def read_structure(model) -> PrunableStructure:
    """The prunable structure of a DeepSense Keras model, from its topology
    (`deepsense.model.read_topology`).

    Raises:
        NotPrunableError: a layer DeepIoT needs is missing or of an unexpected kind.
    """
    import keras

    from deepsense.model import read_topology

    try:
        topology = read_topology(model)
    except ValueError as error:
        raise NotPrunableError(str(error)) from None
    sensors = topology.sensors
    n_convs = len(topology.sensor_convs[0])
    if any(len(convs) != n_convs for convs in topology.sensor_convs):
        raise NotPrunableError(f"sensors {sensors} have different numbers of convs")
    if not topology.merge_convs or not topology.grus:
        raise NotPrunableError("not a DeepSense model: expected merge_conv1.. and gru1..")

    layer_names = {layer.name for layer in model.layers}
    groups: list[UnitGroup] = []
    layers: list[WeightedLayer] = []
    group_of: dict[str, str] = {}

    def conv(name: str, input_group: str | None) -> None:
        layer = _get(model, name)
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv3D)) or not layer.use_bias:
            raise NotPrunableError(f"{name}: expected a Conv2D/Conv3D with a bias")
        kernel = layer.kernel.shape
        if f"{name}_bn" not in layer_names:
            raise NotPrunableError(f"{name}: expected a BatchNormalization '{name}_bn' after it")
        layers.append(WeightedLayer(
            name=name, kind="conv", group=group_of[name], input_group=input_group,
            n_inputs=int(kernel[-2]), input_repeat=1, kernel_size=math.prod(kernel[:-2]),
            n_positions=math.prod(layer.output.shape[1:-1]), n_outputs=int(kernel[-1]),
            batch_norm=f"{name}_bn"))

    for index in range(1, n_convs + 1):
        names = [convs[index - 1] for convs in topology.sensor_convs]
        units = {int(_get(model, name).kernel.shape[-1]) for name in names}
        if index < n_convs:
            for name in names:
                groups.append(UnitGroup(name, (name,), int(_get(model, name).kernel.shape[-1])))
                group_of[name] = name
        else:
            if len(units) != 1:
                raise NotPrunableError(f"the stacked convs {names} have different widths {units}")
            tied = "_".join(sensors) + f"_conv{index}"
            groups.append(UnitGroup(tied, tuple(names), units.pop()))
            group_of.update({name: tied for name in names})
        for sensor, name in zip(sensors, names):
            conv(name, group_of[topology.convs_of(sensor)[index - 2]] if index > 1 else None)
    previous = group_of[topology.sensor_convs[0][-1]]
    for name in topology.merge_convs:
        groups.append(UnitGroup(name, (name,), int(_get(model, name).kernel.shape[-1])))
        group_of[name] = name
        conv(name, previous)
        previous = name

    for name in topology.grus:
        layer = _get(model, name)
        if not isinstance(layer, keras.layers.GRU) or not layer.cell.reset_after \
                or not layer.cell.use_bias:
            raise NotPrunableError(f"{name}: expected a keras GRU with reset_after=True and a bias")
        n_in = int(layer.cell.kernel.shape[0])
        previous_units = groups[-1].n_units
        if n_in % previous_units:
            raise NotPrunableError(f"{name}: {n_in} inputs are not a multiple of the "
                                   f"{previous_units} units of {previous}")
        groups.append(UnitGroup(name, (name,), int(layer.units)))
        layers.append(WeightedLayer(
            name=name, kind="gru", group=name, input_group=previous, n_inputs=n_in,
            input_repeat=n_in // previous_units, kernel_size=1,
            n_positions=int(layer.output.shape[1]), n_outputs=int(layer.units)))
        previous = name

    logits = _get(model, topology.logits)
    if not isinstance(logits, keras.layers.Dense):
        raise NotPrunableError(f"{topology.logits}: expected a Dense output layer")
    layers.append(WeightedLayer(
        name=topology.logits, kind="dense", group=None, input_group=previous,
        n_inputs=int(logits.kernel.shape[0]), input_repeat=1, kernel_size=1, n_positions=1,
        n_outputs=int(logits.kernel.shape[1])))
    return PrunableStructure(tuple(groups), tuple(layers))
