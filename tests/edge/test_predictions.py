import ast
import inspect

import numpy as np
import pytest

import edge.predictions as predictions
import edge.stats as stats
from edge.predictions import summarize


def test_classification_summary_carries_probabilities_label_and_entropy():
    [first, second] = summarize(np.array([[0.7, 0.2, 0.1], [1 / 3, 1 / 3, 1 / 3]]), "activity",
                                ["walk", "sit", "bike"])
    assert first["label"] == "walk" and first["label_index"] == 0
    assert first["probs"] == pytest.approx({"walk": 0.7, "sit": 0.2, "bike": 0.1})
    assert first["max_prob"] == pytest.approx(0.7)
    assert second["entropy"] == pytest.approx(np.log(3))
    assert 0 < first["entropy"] < second["entropy"]


def test_regression_summary_carries_mean_std_and_a_95_interval():
    [summary] = summarize(np.array([[2.0, 0.25]]), "regression", ["speed_m_s"])
    assert summary["mean"] == {"speed_m_s": 2.0}
    assert summary["std"] == {"speed_m_s": 0.5}
    low, high = summary["interval_95"]["speed_m_s"]
    assert (low, high) == pytest.approx((2.0 - 1.959964 * 0.5, 2.0 + 1.959964 * 0.5))
    [plain] = summarize(np.array([[2.0]]), "regression", ["speed_m_s"])
    assert plain["std"] is None and plain["interval_95"] is None


@pytest.mark.parametrize("outputs, task, names", [
    (np.array([[0.5, 0.5]]), "activity", ["a", "b", "c"]),
    (np.array([[1.0, 2.0, 3.0]]), "regression", ["speed"]),
    (np.array([[1.0, -1.0]]), "regression", ["speed"]),
    (np.array([[np.nan, 1.0]]), "activity", ["a", "b"]),
])
def test_summarize_rejects_outputs_that_do_not_fit(outputs, task, names):
    with pytest.raises(ValueError):
        summarize(outputs, task, names)


def _imports(module) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(inspect.getsource(module))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_predictions_module_imports_numpy_only():
    """The gateway publishes these dicts: no TensorFlow or Keras behind them."""
    assert _imports(predictions) == {"__future__", "numpy", "edge.stats"}
    assert _imports(stats) == {"__future__", "math", "numpy"}
