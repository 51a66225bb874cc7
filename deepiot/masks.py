"""Unit masks: keep probabilities -> per-unit scales, widths and parameter budgets (NumPy).

A mask maps each unit group name to a (n_units,) float32 vector of *scales*: 0 removes the
unit, a positive value keeps it and multiplies its output (DeepIoT's inference-time
``x * keep_prob``; thinning folds it into the next layer's weights). Every group keeps at
least one unit, so the thinned model is always a valid network.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from deepiot.cost import parameter_fraction
from deepiot.structure import PrunableStructure

Masks = dict[str, np.ndarray]


def full_masks(structure: PrunableStructure) -> Masks:
    """Every unit kept with scale 1 (the unpruned model)."""
    return {g.name: np.ones(g.n_units, np.float32) for g in structure.groups}


def check_masks(structure: PrunableStructure, masks: Mapping[str, np.ndarray]) -> None:
    """Raise ValueError unless `masks` has one finite, non-negative vector per group with
    at least one kept unit."""
    names = [g.name for g in structure.groups]
    if sorted(masks) != sorted(names):
        raise ValueError(f"masks expected one vector per unit group {names}. "
                         f"Received: {sorted(masks)}")
    for group in structure.groups:
        scales = np.asarray(masks[group.name])
        if scales.shape != (group.n_units,):
            raise ValueError(f"mask {group.name!r} expected shape ({group.n_units},). "
                             f"Received: {scales.shape}")
        if not np.all(np.isfinite(scales)) or np.any(scales < 0):
            raise ValueError(f"mask {group.name!r} expected finite scales >= 0")
        if not np.any(scales > 0):
            raise ValueError(f"mask {group.name!r} removes every unit; keep at least one")


def kept_widths(masks: Mapping[str, np.ndarray]) -> dict[str, int]:
    """Kept units per group."""
    return {name: int(np.count_nonzero(scales)) for name, scales in masks.items()}


def keep_mask(probs: Mapping[str, np.ndarray], threshold: float, *,
              scale_by_probability: bool = True) -> Masks:
    """Keep the units whose probability is at least `threshold` (and each group's likeliest).

    Args:
        probs: group -> (n_units,) keep probabilities.
        threshold: DeepIoT's pruning threshold tau.
        scale_by_probability: scale kept units by their probability (the expected value of
            the sampled mask, as the original code's inference); else by 1.

    Returns:
        group -> (n_units,) float32 scales.
    """
    masks = {}
    for name, p in probs.items():
        p = np.asarray(p, np.float32)
        kept = p >= threshold
        kept[np.argmax(p)] = True
        masks[name] = np.where(kept, p if scale_by_probability else 1.0, 0.0).astype(np.float32)
    return masks


def threshold_for_budget(structure: PrunableStructure, probs: Mapping[str, np.ndarray],
                         target_fraction: float, max_threshold: float) -> float | None:
    """The lowest threshold <= `max_threshold` that leaves at most `target_fraction` of the
    trainable parameters, or None if even `max_threshold` leaves more.

    The kept set only changes at the probabilities themselves, so the candidates are the
    probabilities (and `max_threshold`); the fraction falls as the threshold rises, which
    makes a bisection over the sorted candidates exact.
    """
    def fraction(threshold: float) -> float:
        return parameter_fraction(structure, kept_widths(keep_mask(probs, threshold)))

    if fraction(max_threshold) > target_fraction:
        return None
    values = np.concatenate([np.asarray(p, np.float32) for p in probs.values()])
    candidates = np.unique(np.append(values[values < max_threshold], np.float32(max_threshold)))
    low, high = 0, len(candidates) - 1  # fraction(candidates[high]) <= target
    while low < high:
        middle = (low + high) // 2
        if fraction(float(candidates[middle])) <= target_fraction:
            high = middle
        else:
            low = middle + 1
    return float(candidates[high])
