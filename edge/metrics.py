"""Evaluation metrics in plain NumPy (shared by `evaluate` and the edge `predict`)."""

from __future__ import annotations

import numpy as np


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(n_classes, n_classes) int64 counts; rows are true classes, columns predictions."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, np.intp), np.asarray(y_pred, np.intp)), 1)
    return matrix


def classification_metrics(y_true: np.ndarray, probs: np.ndarray,
                           class_names: list[str]) -> dict:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix.

    Args:
        y_true: (n,) class indices.
        probs: (n, n_classes) predicted probabilities.
        class_names: names of the n_classes classes.
    """
    y_pred = np.argmax(probs, axis=1)
    n_classes = len(class_names)
    matrix = confusion_matrix(y_true, y_pred, n_classes)
    tp = np.diag(matrix).astype(float)
    predicted = matrix.sum(axis=0).astype(float)
    support = matrix.sum(axis=1).astype(float)
    precision = np.divide(tp, predicted, out=np.zeros(n_classes), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros(n_classes), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros(n_classes), where=denom > 0)
    present = support > 0
    per_class = {name: {"precision": round(float(precision[i]), 4),
                        "recall": round(float(recall[i]), 4), "f1": round(float(f1[i]), 4),
                        "support": int(support[i])} for i, name in enumerate(class_names)}
    return {"n_windows": int(len(y_true)),
            "accuracy": round(float(np.mean(y_pred == y_true)), 4) if len(y_true) else None,
            "macro_f1": round(float(f1[present].mean()), 4) if present.any() else None,
            "per_class": per_class, "class_names": list(class_names),
            "confusion_matrix": matrix.tolist()}


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict:
    """MAE and RMSE (units of the target) over n windows."""
    error = np.asarray(y_pred, float).reshape(-1) - np.asarray(y_true, float).reshape(-1)
    return {"n_windows": int(error.size), "mae": round(float(np.mean(np.abs(error))), 4),
            "rmse": round(float(np.sqrt(np.mean(error ** 2))), 4)}
