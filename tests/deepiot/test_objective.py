import numpy as np
import pytest

from deepiot.finetune import distillation_loss, gaussian_kl
from deepiot.objective import Objective


def test_the_critic_loss_is_the_runs_scoring_rule():
    probs = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]], np.float32)
    y = np.array([0, 1])
    w = 0.25
    nll = -np.log(probs[[0, 1], y])
    brier = np.sum((probs - np.eye(3)[y]) ** 2, axis=1)
    loss = np.asarray(Objective("activity", "rdeepsense", w).loss()(y, probs))
    np.testing.assert_allclose(loss, w * nll + (1 - w) * brier, rtol=1e-5)
    plain = np.asarray(Objective("activity").loss()(y, probs))
    np.testing.assert_allclose(plain, nll, rtol=1e-5)


def test_regression_needs_the_gaussian_head():
    with pytest.raises(ValueError, match="Gaussian"):
        Objective("regression", "softmax")
    objective = Objective("regression", "rdeepsense", 0.5)
    outputs = np.array([[1.0, 0.5], [3.0, 2.0]], np.float32)
    assert objective.score(np.array([2.0, 3.0]), outputs) == pytest.approx(0.5)


def test_gaussian_distillation_is_zero_only_at_the_teachers_distribution():
    teacher = np.array([[1.0, 0.5], [-2.0, 3.0]], np.float32)
    np.testing.assert_allclose(gaussian_kl(teacher, teacher), 0.0, atol=1e-6)
    wider = teacher * np.array([1.0, 2.0], np.float32)
    assert np.all(np.asarray(gaussian_kl(teacher, wider)) > 0)
    loss = distillation_loss(Objective("regression", "rdeepsense", 0.5), 1.0, 1.0)
    packed = np.concatenate([np.array([[0.0], [0.0]], np.float32), teacher], axis=1)
    np.testing.assert_allclose(loss(packed, teacher), 0.0, atol=1e-6)
