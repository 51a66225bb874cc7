"""Pruning-threshold schedules (the shape of tfmot's PruningSchedule).

A schedule maps a compression iteration to DeepIoT's threshold tau: a unit whose keep
probability is below tau is soft-deleted while compressing (its probability is halved) and
removed when compression stops. It also owns "when": `is_check(iteration)` says after which
iterations compression prices the kept set and applies its stop rules (the end of every
threshold step), as tfmot's ``PruningSchedule.__call__(step) -> (should_prune, sparsity)``
does. `ExtendedSchedule` is what compression runs: a schedule, then some steps of patience at
its final threshold, then (optionally) more steps of the same increment.

```python
schedule = ThresholdSchedule(final=0.825, n_steps=33, step_interval=500)  # the paper's
schedule(0), schedule(500), schedule.end_iteration  # 0.0, 0.025, 16500
ThresholdSchedule.from_config(schedule.get_config()) == schedule
```
"""

from __future__ import annotations

import abc
from typing import Any


class CompressionSchedule(abc.ABC):
    """Threshold tau as a function of the compression iteration."""

    @abc.abstractmethod
    def __call__(self, iteration: int) -> float:
        """Threshold tau in [0, 1) at `iteration` (0-based)."""

    @property
    @abc.abstractmethod
    def end_iteration(self) -> int:
        """First iteration at which the threshold has its final value."""

    @property
    @abc.abstractmethod
    def step_interval(self) -> int:
        """Iterations between threshold changes; compression checks its stop rules at
        this pace."""

    @abc.abstractmethod
    def get_config(self) -> dict[str, Any]:
        """Constructor arguments, JSON-serializable."""

    def is_check(self, iteration: int) -> bool:
        """Whether compression checks after `iteration` iterations (1-based count): at the
        end of every threshold step, and at every iteration from `end_iteration` on."""
        return iteration % self.step_interval == 0 or iteration >= self.end_iteration

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "CompressionSchedule":
        return cls(**config)

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.get_config() == other.get_config()


class ThresholdSchedule(CompressionSchedule):
    """DeepIoT's staircase: tau rises from `start` to `final` in `n_steps` equal steps, one
    every `step_interval` iterations (the paper: 0 -> 0.825 in 33 steps of 500 iterations).

    Args:
        start: threshold at iteration 0.
        final: threshold after the last step, below 1.
        n_steps: number of increments.
        step_interval: iterations between increments; our runs are far shorter than the
            paper's, so this is the knob that sets the length of compression.
    """

    def __init__(self, start: float = 0.0, final: float = 0.825, n_steps: int = 33,
                 step_interval: int = 500) -> None:
        if not 0.0 <= start <= final < 1.0:
            raise ValueError("ThresholdSchedule expected 0 <= start <= final < 1. "
                             f"Received: start={start}, final={final}")
        for name, value in (("n_steps", n_steps), ("step_interval", step_interval)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ThresholdSchedule expected a positive integer. "
                                 f"Received: {name}={value!r}")
        self.start = float(start)
        self.final = float(final)
        self.n_steps = n_steps
        self._step_interval = step_interval

    def __call__(self, iteration: int) -> float:
        if iteration < 0:
            raise ValueError(f"iteration expected >= 0. Received: iteration={iteration}")
        step = min(iteration // self.step_interval, self.n_steps)
        return self.start + step * (self.final - self.start) / self.n_steps

    @property
    def end_iteration(self) -> int:
        return self.n_steps * self.step_interval

    @property
    def step_interval(self) -> int:
        return self._step_interval

    def get_config(self) -> dict[str, Any]:
        return {"start": self.start, "final": self.final, "n_steps": self.n_steps,
                "step_interval": self.step_interval}

    def __repr__(self) -> str:
        return f"ThresholdSchedule({self.get_config()})"


class ExtendedSchedule(CompressionSchedule):
    """`base`, then `patience_steps` steps at its final threshold, then up to
    `extend_steps` further steps of its last increment (capped at `max_threshold`).

    Compression stops at `end_iteration` at the latest: the base schedule's end, plus the
    patience and extension steps.

    Args:
        base: the threshold staircase (e.g. `ThresholdSchedule`).
        patience_steps: steps to wait at the final threshold for the target.
        extend_steps: steps that keep raising the threshold (0: none; none either when
            the base schedule's last step did not raise it).
        max_threshold: the threshold never rises past this.
    """

    def __init__(self, base: CompressionSchedule, patience_steps: int = 2, extend_steps: int = 0,
                 max_threshold: float = 0.99) -> None:
        if patience_steps < 0 or extend_steps < 0:
            raise ValueError("ExtendedSchedule expected patience_steps and extend_steps >= 0. "
                             f"Received: {patience_steps}, {extend_steps}")
        self.base = base
        self.patience_steps = patience_steps
        self.max_threshold = float(max_threshold)
        interval = base.step_interval
        self.final = base(base.end_iteration)
        self.increment = self.final - base(max(0, base.end_iteration - interval))
        self.extend_steps = extend_steps if self.increment > 0 else 0
        self._extend_from = base.end_iteration + patience_steps * interval

    def __call__(self, iteration: int) -> float:
        if iteration < self._extend_from:
            return self.base(iteration)
        steps = min(self.extend_steps, (iteration - self._extend_from) // self.step_interval + 1)
        return min(self.final + steps * self.increment, self.max_threshold)

    @property
    def end_iteration(self) -> int:
        return self._extend_from + self.extend_steps * self.step_interval

    @property
    def step_interval(self) -> int:
        return self.base.step_interval

    def get_config(self) -> dict[str, Any]:
        return {"base": {"class_name": type(self.base).__name__,
                         "config": self.base.get_config()},
                "patience_steps": self.patience_steps, "extend_steps": self.extend_steps,
                "max_threshold": self.max_threshold}
