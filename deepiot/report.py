"""The compression report: units kept per layer, size, FLOPs, accuracy, calibration (NumPy).

`summarize_model` describes one model on the test windows; `compression_report` puts the
original and the compressed model side by side; `format_report` prints it as the table of
the paper (units kept per layer, then the totals); `plot_tradeoff` draws accuracy against
the parameters left.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from deepiot.cost import model_cost
from deepiot.masks import kept_widths
from deepiot.structure import PrunableStructure


#: Metrics reported for classifiers and for Gaussian regression models.
CLASSIFICATION_METRICS = ("accuracy", "nll", "ece", "brier")
REGRESSION_METRICS = ("mae", "nll", "coverage_50", "coverage_90", "coverage_95")


def calibration(y: np.ndarray, outputs: np.ndarray, regression: bool = False) -> dict[str, float]:
    """Accuracy, NLL, ECE and Brier of class probabilities (n, C); for regression, MAE, NLL
    (nats per value) and the coverage of the central 50/90/95% intervals of [mean (k),
    variance (k)] outputs (n, 2k) (edge.calibration)."""
    from edge.calibration import classification_calibration, regression_calibration

    if regression:
        k = outputs.shape[-1] // 2
        metrics = regression_calibration(np.asarray(y, np.float32).reshape(len(y), k),
                                         outputs[:, :k], outputs[:, k:])
        return {name: round(float(metrics[name]), 4) for name in REGRESSION_METRICS}
    metrics = classification_calibration(y, outputs)
    return {name: round(float(metrics[name]), 4) for name in CLASSIFICATION_METRICS}


def summarize_model(structure: PrunableStructure, widths: Mapping[str, int] | None,
                    y: np.ndarray, outputs: np.ndarray, regression: bool = False) -> dict:
    """Size, cost and test metrics of a DeepSense with group `widths` (None: unpruned).

    Args:
        y: (n,) test classes, or (n,) / (n, k) regression targets.
        outputs: (n, n_classes) the model's probabilities, or (n, 2k) [mean, variance].
        regression: `outputs` are Gaussian (see `calibration`).
    """
    cost = model_cost(structure, widths)
    return {"parameters": cost["trainable"], "parameters_total": cost["total"],
            "bytes": cost["bytes"], "flops": cost["flops"],
            **calibration(y, outputs, regression)}


def units_table(structure: PrunableStructure, masks: Mapping[str, np.ndarray]) -> list[dict]:
    """Per unit group: its layers, units before and after, and the kept share in %."""
    kept = kept_widths(masks)
    return [{"group": g.name, "layers": list(g.layers), "units": g.n_units,
             "kept": kept[g.name], "kept_percent": round(100.0 * kept[g.name] / g.n_units, 1)}
            for g in structure.groups]


def compression_report(structure: PrunableStructure, masks: Mapping[str, np.ndarray],
                       models: Mapping[str, dict], **details) -> dict:
    """The report: units per group, model summaries by name (the first is the reference,
    e.g. "original", "compressed"), and any further details (settings, history, timings)."""
    reference = next(iter(models.values()))
    def change(m: dict) -> dict:
        if "accuracy" in m:
            return {"accuracy_change_points": round(100 * (m["accuracy"] - reference["accuracy"]),
                                                    2)}
        return {"mae_change": round(m["mae"] - reference["mae"], 4)}

    ratios = {name: {"parameters": round(m["parameters"] / reference["parameters"], 5),
                     "flops": round(m["flops"] / reference["flops"], 5), **change(m)}
              for name, m in models.items()}
    return {"units": units_table(structure, masks), "models": dict(models),
            "relative_to_original": ratios, **details}


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.3f} MB"


def format_report(report: dict) -> str:
    """The report as two plain-text tables: units kept per layer, then the models."""
    lines = [f"{'layer':<20}{'units':>7}{'kept':>7}{'kept %':>9}"]
    for row in report["units"]:
        lines.append(f"{row['group']:<20}{row['units']:>7}{row['kept']:>7}"
                     f"{row['kept_percent']:>8.1f}%")
    names = list(report["models"])
    lines += ["", f"{'':<22}" + "".join(f"{name:>24}" for name in names)]
    rows = [("parameters", lambda m: f"{m['parameters']:,}"),
            ("float32 size", lambda m: _megabytes(m["bytes"])),
            ("FLOPs / window", lambda m: f"{m['flops']:,}")]
    regression = "mae" in report["models"][names[0]]
    if regression:
        rows += [("MAE / NLL", lambda m: f"{m['mae']:.3f} / {m['nll']:.3f}"),
                 ("cover 50/90/95 %", lambda m: f"{100 * m['coverage_50']:.0f} / "
                  f"{100 * m['coverage_90']:.0f} / {100 * m['coverage_95']:.0f}")]
    else:
        rows += [("accuracy", lambda m: f"{m['accuracy']:.4f}"),
                 ("NLL / ECE / Brier",
                  lambda m: f"{m['nll']:.3f} / {m['ece']:.3f} / {m['brier']:.3f}")]
    for label, cell in rows:
        lines.append(f"{label:<22}" + "".join(f"{cell(report['models'][n]):>24}" for n in names))
    ratios = report["relative_to_original"]
    lines.append(f"{'parameters left':<22}" + "".join(
        f"{100 * ratios[n]['parameters']:>23.2f}%" for n in names))
    if regression:
        lines.append(f"{'MAE change':<22}" + "".join(
            f"{ratios[n]['mae_change']:>+24.4f}" for n in names))
    else:
        lines.append(f"{'accuracy change (pt)':<22}" + "".join(
            f"{ratios[n]['accuracy_change_points']:>+24.2f}" for n in names))
    return "\n".join(lines)


def plot_tradeoff(series: Mapping[str, Sequence[tuple[float, float]]], path: str | Path,
                  title: str = "Accuracy against parameters left", ylabel: str = "accuracy",
                  more_panels: Mapping[str, Mapping[str, Sequence[tuple[float, float]]]]
                  | None = None) -> Path:
    """A score (y: `ylabel`) against the percentage of parameters left (x, log scale), one
    marker style per series; a series of one point is drawn as a single marker.

    Args:
        series: name -> [(parameter fraction, score)].
        more_panels: further panels side by side, y label -> series (e.g. "NLL", "ECE"
            of the original and the compressed model).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {ylabel: series, **(more_panels or {})}
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 + 3.2 * (len(panels) - 1), 4.2),
                             squeeze=False)
    for ax, (label, panel) in zip(axes[0], panels.items()):
        for name, points in panel.items():
            if not points:
                continue
            x, y = zip(*points)
            ax.plot(100 * np.asarray(x), y, marker="o", markersize=4 if len(points) > 1 else 8,
                    linestyle="-" if len(points) > 1 else "none", label=name)
        ax.set_xscale("log")
        ax.set_xlabel("parameters left (% of the original, log scale)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
