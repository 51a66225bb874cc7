"""PNG figures (matplotlib, Agg backend; imported only when a figure is written)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def plot_confusion_matrix(matrix: np.ndarray, class_names: list[str], path: str | Path,
                          title: str = "Confusion matrix") -> Path:
    """Row-normalised confusion matrix with counts, saved as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros(matrix.shape), where=rows > 0)
    size = max(4.0, 0.6 * len(class_names) + 2)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45, ha="right")
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center",
                    color="white" if share[i, j] > 0.5 else "black", fontsize=8)
    fig.colorbar(image, ax=ax, label="share of true class")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def plot_reliability_diagram(bins: dict, path: str | Path, title: str = "Reliability") -> Path:
    """Accuracy against confidence per bin, the diagonal, and the share of windows per bin.

    Args:
        bins: `edge.calibration.reliability_bins` output (edges, count, confidence,
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
