"""The reliability diagram PNG (matplotlib, Agg backend; imported only to write a figure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_reliability_diagram(bins: dict, path: str | Path, title: str = "Reliability") -> Path:
    """Accuracy against confidence per bin, the diagonal, and the share of windows per bin.

    Args:
        bins: `rdeepsense.calibration.reliability_bins` output (edges, count, confidence,
            accuracy).
        path: PNG file to write.
        title: figure title (e.g. with the ECE).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    edges = np.asarray(bins["edges"])
    count = np.asarray(bins["count"])
    width = np.diff(edges)
    full = count > 0
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(5, 6), sharex=True,
                                      gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    top.bar(edges[:-1][full], np.asarray(bins["accuracy"])[full], width=width[full],
            align="edge", edgecolor="black", alpha=0.7, label="accuracy")
    top.plot(np.asarray(bins["confidence"])[full], np.asarray(bins["accuracy"])[full], "o",
             color="red", markersize=3, label="(mean confidence, accuracy)")
    top.set_ylabel("accuracy")
    top.set_ylim(0, 1)
    top.set_title(title)
    top.legend(loc="upper left", fontsize=8)
    bottom.bar(edges[:-1], count / max(count.sum(), 1), width=width, align="edge",
               edgecolor="black", color="grey")
    bottom.set_xlabel("confidence (max probability)")
    bottom.set_ylabel("share")
    bottom.set_xlim(0, 1)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
