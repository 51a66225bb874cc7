"""Run configuration: typed, frozen dataclasses loaded from one TOML file plus overrides.

Sections: ``[features]`` (how windows are made, fixed at `prepare` time), ``[model]``,
``[train]``, ``[compress]`` (DeepIoT, read by `compress`). Unknown keys or values of the
wrong type raise ConfigError, naming the key. Every run (`train` and `compress`) writes its
resolved configuration as ``config.resolved.toml``. `load_section` reads any other section
with the same rules (``[gateway]``: `gateway.config.GatewayConfig`).
"""

from __future__ import annotations

import dataclasses
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, TypeVar

from deepsense.data.features import FeatureConfig
from deepsense.errors import ConfigError

TASKS = ("activity", "user", "regression")
#: Rotation augmentation by task when train.rotate_degrees is unset. Activity and
#: regression must work on new users: 0.960 -> 0.971 and 0.963 -> 0.975 on HAPT's UCI test
#: subjects (seeds 0, 1). UserID learns how each person carries the phone, which rotations
#: hide: HAPT UserID 0.433 with 20 degrees, 0.483 without (seed 0; README, "Training").
ROTATE_DEGREES_BY_TASK = {"activity": 20.0, "regression": 20.0, "user": 0.0}
#: Turns about gravity by task when train.yaw_degrees is unset: activity 180, any heading
#: around the body (HAPT's UCI test subjects: walking taken for stairs 12-14 -> 2-9 errors per
#: run, accuracy 0.970 -> 0.971 over three seeds; README, "Training"); regression and UserID
#: were not measured with it: off.
YAW_DEGREES_BY_TASK = {"activity": 180.0, "regression": 0.0, "user": 0.0}
HEADS = ("softmax", "rdeepsense")
T = TypeVar("T")


@dataclass(frozen=True)
class ModelConfig:
    """DeepSense architecture; defaults follow the released HHAR code (deepSense_HHAR_tf.py).

    Attributes:
        conv_filters: filters of every per-sensor conv (64).
        sensor_conv1_bins: FFT bins spanned by the first per-sensor conv; its kernel is
            bins * n_axes * 2 wide with stride n_axes * 2 (3 -> kernel 18, stride 6).
        sensor_kernel_sizes: widths of the 2nd and 3rd per-sensor convs ((3, 3)).
        merge_filters: filters of every merge conv (64).
        merge_kernel_sizes: (sensor, position) kernels of the merge convs, 'same' padding;
            released code (2, 8), (2, 6), (2, 4). The paper's 472.5K parameters match
            (2, 8), (1, 6), (1, 4) instead (see README).
        gru_units: hidden units of each stacked GRU ((120, 120)).
        conv_dropout: channel dropout rate of the convs (0.2: keep 0.8).
        gru_dropout: dropout rate on each GRU's outputs (0.5).
        weight_decay: L2 coefficient of the released code, 5e-4 * sum(w^2) / 2, on kernels.
    """

    conv_filters: int = 64
    sensor_conv1_bins: int = 3
    sensor_kernel_sizes: tuple[int, ...] = (3, 3)
    merge_filters: int = 64
    merge_kernel_sizes: tuple[tuple[int, int], ...] = ((2, 8), (2, 6), (2, 4))
    gru_units: tuple[int, ...] = (120, 120)
    conv_dropout: float = 0.2
    gru_dropout: float = 0.5
    weight_decay: float = 5e-4

    def __post_init__(self) -> None:
        for name in ("conv_filters", "sensor_conv1_bins", "merge_filters"):
            _check_positive(name, getattr(self, name))
        if not self.gru_units:
            raise ConfigError("model.gru_units expected at least one GRU. Received: []")
        for name in ("sensor_kernel_sizes", "gru_units"):
            for value in getattr(self, name):
                _check_positive(name, value)
        for kernel in self.merge_kernel_sizes:
            if len(kernel) != 2:
                raise ConfigError(f"model.merge_kernel_sizes expected pairs. Received: {kernel}")
            for value in kernel:
                _check_positive("merge_kernel_sizes", value)
        for name in ("conv_dropout", "gru_dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ConfigError(f"model.{name} expected a rate in [0, 1). Received: {value}")
        if self.weight_decay < 0:
            raise ConfigError(f"model.weight_decay expected >= 0. Received: {self.weight_decay}")


@dataclass(frozen=True)
class TrainConfig:
    """Training settings; optimiser defaults are the released code's.

    Attributes:
        task: "activity", "user" (UserID) or "regression" (the recordings' target).
        split: how test data is held out: "source" (the file's own train/test),
            "loso:<user>" (leave one user out, HHAR protocol), "users:<u1>,<u2>,..." (hold out
            a group of users), "device:<device>",
            "random:<fraction>", or "time:<fraction>" (the last fraction of each recording;
            the UserID protocol); any of them may end in "+val:<u1>,<u2>,..." to validate on
            those users, never fitted (deepsense.data.splits).
        validation_fraction: share of training windows held out for early stopping (when
            the split names no validation users).
        epochs: maximum epochs (an epoch is at least `MIN_STEPS_PER_EPOCH` = 50 steps, see
            steps_per_epoch).
        batch_size: 64, as released.
        learning_rate: Adam's step size, 1e-3: the released code's 1e-4 is tuned for HHAR
            augmented x10 (millions of steps); with 1e-4 a few hundred windows reached 0.87
            held-out accuracy in 1,500 steps where 1e-3 reached 0.94 (README, "Training").
        beta_1, beta_2: Adam 0.5, 0.9, as released.
        ema_momentum: momentum of the exponential moving average of the weights that
            validation judges and the run keeps (deepsense.averaging; 0.99: the average of
            the last ~100 optimiser steps); 0: the last step's weights. HAPT's UCI test
            subjects: 0.971 -> 0.980 over three seeds (README, "Training").
        early_stopping_patience: epochs without validation improvement before stopping.
        lr_plateau_patience: epochs without validation improvement before the learning rate
            is halved (down to 1/32 of `learning_rate`); 0 keeps it constant. Halving lets
            a run settle instead of stopping while it still oscillates (README, "Training").
        augment: use the augmented copies written by `prepare --augment` for training.
        rotate_degrees: rotate each training window's 3-axis sensors by a random rotation of
            up to this angle (deepsense.rotate: how a phone sits differently on each user);
            0: off; data whose sensors are not 3-axis is not rotated. None (default): by
            task, `ROTATE_DEGREES_BY_TASK` (read `rotation_degrees`).
        yaw_degrees: before that, turn each training window about its own gravity direction
            (mean acceleration) by up to this angle either way: the phone elsewhere around
            the body, at the same tilt; data without an "acc" sensor is not turned. None
            (default): by task, `YAW_DEGREES_BY_TASK` (read `yaw_rotation_degrees`).
        seed: seeds Python, NumPy and TensorFlow.
        steps_per_epoch: batches per epoch; None: one pass over the training windows, but at
            least 50 batches (small datasets are repeated, so that an epoch, the unit of
            validation, early stopping and checkpoints, moves the weights enough to judge);
            cap it for datasets far larger than an epoch should be.
        head: output head and loss: "softmax" (plain DeepSense: softmax + cross-entropy, or
            linear + MSE for regression) or "rdeepsense" (uncertainty head trained with a
            proper scoring rule; see rdeepsense/).
        scoring_weight: rdeepsense only: weight w of the negative log-likelihood in the loss
            w * NLL + (1 - w) * Brier (classification) or w * NLL + (1 - w) * MSE
            (regression); 0.25. In BENCHMARKS.md "Calibrated uncertainty", chosen per seed
            on validation users, 0.25 won on HAPT in 1 of 2 seeds (0.109 vs 0.142 and 0.137
            vs 0.112), on synthetic data in 1 of 3 by noise-sized margins: neither is better.
    """

    task: str = "activity"
    split: str = "random:0.2"
    validation_fraction: float = 0.1
    epochs: int = 60
    batch_size: int = 64
    learning_rate: float = 1e-3
    beta_1: float = 0.5
    beta_2: float = 0.9
    ema_momentum: float = 0.99
    early_stopping_patience: int = 10
    lr_plateau_patience: int = 3
    augment: bool = True
    rotate_degrees: float | None = None
    yaw_degrees: float | None = None
    seed: int = 0
    steps_per_epoch: int | None = None
    head: str = "softmax"
    scoring_weight: float = 0.25

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ConfigError(f"train.task expected one of {TASKS}. Received: {self.task!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ConfigError("train.validation_fraction expected a fraction in [0, 1). "
                              f"Received: {self.validation_fraction}")
        if not 0.0 <= self.ema_momentum < 1.0:
            raise ConfigError("train.ema_momentum expected a momentum in [0, 1). "
                              f"Received: {self.ema_momentum}")
        for name in ("rotate_degrees", "yaw_degrees"):
            value = getattr(self, name)
            if value is not None and not 0.0 <= value <= 180.0:
                raise ConfigError(f"train.{name} expected an angle in [0, 180]. "
                                  f"Received: {value}")
        for name in ("epochs", "batch_size", "early_stopping_patience"):
            _check_positive(name, getattr(self, name))
        if self.steps_per_epoch is not None:
            _check_positive("steps_per_epoch", self.steps_per_epoch)
        if isinstance(self.lr_plateau_patience, bool) or self.lr_plateau_patience < 0:
            raise ConfigError("train.lr_plateau_patience expected an integer >= 0. "
                              f"Received: {self.lr_plateau_patience}")
        if not self.learning_rate > 0:
            raise ConfigError(f"train.learning_rate expected > 0. Received: {self.learning_rate}")
        if self.head not in HEADS:
            raise ConfigError(f"train.head expected one of {HEADS}. Received: {self.head!r}")
        weight = self.scoring_weight
        if not 0.0 <= weight <= 1.0 or (self.task == "regression" and weight == 0.0):
            raise ConfigError("train.scoring_weight expected a weight in [0, 1], > 0 for "
                              "regression (MSE alone never fits the variance). "
                              f"Received: {weight}")

    @property
    def rotation_degrees(self) -> float:
        """The rotation augmentation used: `rotate_degrees`, else the task's default."""
        if self.rotate_degrees is not None:
            return float(self.rotate_degrees)
        return ROTATE_DEGREES_BY_TASK[self.task]

    @property
    def yaw_rotation_degrees(self) -> float:
        """The turn about gravity used: `yaw_degrees`, else the task's default."""
        if self.yaw_degrees is not None:
            return float(self.yaw_degrees)
        return YAW_DEGREES_BY_TASK[self.task]


@dataclass(frozen=True)
class CompressConfig:
    """DeepIoT compression (`deepsense compress`, deepiot/): settings of its three phases.

    Attributes:
        target_params: stop when at most this fraction of the trainable parameters is left.
        min_accuracy: classification only: stop before the validation accuracy of the
            masked model falls under this floor (the last state above it is kept).
        final_threshold: the pruning threshold tau rises from 0 to this (the paper: 0.825)...
        n_steps: ...in this many equal steps (the paper: 33)...
        step_interval: ...one every this many iterations (the paper: 500; 40 fits a
            30-minute run on 2 cores).
        patience_steps: threshold steps to wait for the target after the staircase ends.
        extend_steps: then keep raising the threshold by its last increment for at most
            this many steps (0: none; the threshold is then raised at once to the target).
        batch_size: windows per compression iteration.
        critic_learning_rate: Adam step of the critic (beta 0.5 / 0.9).
        compressor_learning_rate: RMSProp step of the compressor (1e-2: see BENCHMARKS.md,
            DeepIoT: at 1e-3 the keep probabilities barely separate in a short run).
        fine_tune_epochs: maximum epochs of fine-tuning the thinned model.
        fine_tune_learning_rate: its Adam step.
        distill_weight: weight of distilling the original's predictive distribution
            (probabilities, or Gaussian mean and variance) while fine-tuning; 0: labels only.
        distill_temperature: softmax temperature of that distillation (classes only).
        seed: seeds batches, masks, the compressor and fine-tuning.
    """

    target_params: float = 0.07
    min_accuracy: float | None = None
    final_threshold: float = 0.825
    n_steps: int = 33
    step_interval: int = 40
    patience_steps: int = 2
    extend_steps: int = 0
    batch_size: int = 32
    critic_learning_rate: float = 1e-4
    compressor_learning_rate: float = 1e-2
    fine_tune_epochs: int = 30
    fine_tune_learning_rate: float = 1e-3
    distill_weight: float = 0.5
    distill_temperature: float = 2.0
    seed: int = 0


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; [features] is informative here (it is fixed by `prepare`);
    [compress] is read by `compress` only."""

    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    features: FeatureConfig = field(default_factory=FeatureConfig)
    compress: CompressConfig = field(default_factory=CompressConfig)


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{name} expected a positive integer. Received: {name}={value!r}")


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check `value` against a dataclass field annotation; convert lists to tuples."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _coerce(key, value, option)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0])
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} expected a list. Received: {value!r}")
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(key, v, args[0]) for v in value)
        if len(args) != len(value):
            raise ConfigError(f"{key} expected {len(args)} values. Received: {value!r}")
        return tuple(_coerce(key, v, a) for v, a in zip(value, args))
    if annotation is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key} expected a number. Received: {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} expected an integer. Received: {value!r}")
        return value
    if annotation in (str, bool):
        if not isinstance(value, annotation):
            raise ConfigError(f"{key} expected a {annotation.__name__}. Received: {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported setting type {annotation}")


def _build(cls: type, section: str, values: Mapping[str, Any]) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(f"unknown key(s) {[f'{section}.{k}' for k in unknown]}; "
                          f"[{section}] accepts {sorted(known)}")
    kwargs = {k: _coerce(f"{section}.{k}", v, hints[k]) for k, v in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except ValueError as exc:
        raise ConfigError(f"[{section}] {exc}") from None


SECTIONS = {"model": ModelConfig, "train": TrainConfig, "features": FeatureConfig,
            "compress": CompressConfig}


def parse_override(text: str) -> tuple[str, str, Any]:
    """Parse ``section.key=value`` (value in TOML syntax, bare words taken as strings)."""
    if "=" not in text or "." not in text.split("=", 1)[0]:
        raise ConfigError(f"--set expected section.key=value. Received: {text!r}")
    dotted, raw = text.split("=", 1)
    section, key = dotted.strip().split(".", 1)
    if section not in SECTIONS:
        raise ConfigError(f"--set {dotted}: unknown section '{section}'; expected {sorted(SECTIONS)}")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return section, key, value


def load_config(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (),
                base: RunConfig | None = None) -> RunConfig:
    """Build a RunConfig from defaults (or `base`), a TOML file, then ``--set`` overrides."""
    base = base or RunConfig()
    values: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    for name in SECTIONS:
        values[name].update(_plain(getattr(base, name)))
    if path is not None:
        for section, entries in read_toml(path).items():
            if section not in SECTIONS or not isinstance(entries, dict):
                raise ConfigError(f"{path}: unknown section [{section}]; expected {sorted(SECTIONS)}")
            values[section].update(entries)
    for text in overrides:
        section, key, value = parse_override(text)
        values[section][key] = value
    return RunConfig(**{name: _build(cls, name, values[name]) for name, cls in SECTIONS.items()})


def config_from_dict(values: Mapping[str, Mapping[str, Any]]) -> RunConfig:
    """A RunConfig from `config_to_dict`'s output (checked as a TOML file is)."""
    unknown = sorted(set(values) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"unknown section(s) {unknown}; expected {sorted(SECTIONS)}")
    return RunConfig(**{name: _build(cls, name, values.get(name, {}))
                        for name, cls in SECTIONS.items()})


def read_toml(path: str | Path) -> dict[str, Any]:
    """A TOML file as a dict of sections.

    Raises:
        ConfigError: the file is missing, unreadable or not valid TOML.
    """
    try:
        return tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigError(f"config file {path}: {exc}") from None


def load_section(cls: type[T], section: str, path: str | Path | None = None,
                 overrides: Mapping[str, Any] | None = None) -> T:
    """One typed section of a TOML file: `cls`'s defaults, then the file's ``[section]``
    table (other sections are ignored), then `overrides` (None values ignored).

    Raises:
        ConfigError: an unreadable file, an unknown key or a value of the wrong type (both
            named ``section.key``), or a value `cls` refuses.
    """
    values: dict[str, Any] = {}
    if path is not None:
        entries = read_toml(path).get(section, {})
        if not isinstance(entries, dict):
            raise ConfigError(f"{path}: [{section}] expected a table. Received: {entries!r}")
        values.update(entries)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return _build(cls, section, values)


def _plain(obj: Any) -> Any:
    """Dataclass -> dict of TOML-friendly values (tuples as lists)."""
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def config_to_dict(config: RunConfig) -> dict[str, dict[str, Any]]:
    return _plain(config)


def config_to_toml(config: RunConfig) -> str:
    """Serialise a RunConfig as TOML (values are scalars or nested lists; None is omitted)."""
    lines = []
    for section, entries in config_to_dict(config).items():
        lines.append(f"[{section}]")
        for key, value in entries.items():
            if value is not None:
                lines.append(f"{key} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)
