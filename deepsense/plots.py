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
