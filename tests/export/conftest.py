"""Fixtures for export and edge-runtime tests: tiny trained runs of every kind, and bundles."""

from __future__ import annotations

import pytest

from deepsense.cli import main
from deepsense.data.features import FeatureConfig
from deepsense.data.prepared import load_prepared, prepare_recordings, save_prepared
from deepsense.data.synthetic import ACTIVITIES, SyntheticSpec, make_recordings

TINY_MODEL = ["--set", "model.conv_filters=4", "--set", "model.merge_filters=4",
              "--set", "model.gru_units=[6, 6]"]


@pytest.fixture(scope="session")
def edge_work(tmp_path_factory):
    """A prepared tiny synthetic dataset (3 users, 6 activities, speed targets)."""
    spec = SyntheticSpec(n_users=3, devices=("nexus4_1",), seconds_per_activity=12.0, n_gaps=1,
                         max_gap_s=1.0, seed=0)
    dataset = prepare_recordings(make_recordings(spec), FeatureConfig(stride_s=1.0),
                                 activity_names=list(ACTIVITIES))
    work = tmp_path_factory.mktemp("edge")
    save_prepared(dataset, work / "data")
    return work


@pytest.fixture(scope="session")
def edge_data(edge_work):
    return load_prepared(edge_work / "data")


def _train(work, name: str, *flags: str):
    out = work / name
    if not out.exists():
        assert main(["train", "--data", str(work / "data"), "--out", str(out), "--epochs", "2",
                     "--split", "loso:b", *TINY_MODEL, *flags]) == 0
    return out


@pytest.fixture(scope="session")
def runs(edge_work):
    """Run directories by kind: plain, rdeepsense (classification), regression, and
    DeepIoT-thinned plain, rdeepsense and regression runs."""
    made = {"plain": _train(edge_work, "plain"),
            "rdeepsense": _train(edge_work, "rdeepsense", "--head", "rdeepsense"),
            "regression": _train(edge_work, "regression", "--head", "rdeepsense",
                                 "--task", "regression")}
    for kind, source in (("thinned", "plain"), ("thinned-rdeepsense", "rdeepsense"),
                         ("thinned-regression", "regression")):
        made[kind] = edge_work / kind
        assert main(["compress", "--model", str(made[source]), "--out", str(made[kind]),
                     "--target-params", "0.5", "--step-interval", "2",
                     "--fine-tune-epochs", "1"]) == 0
    return made


@pytest.fixture(scope="session")
def bundles(runs, edge_work):
    """A float32 bundle directory (and .zip) per run kind, with NumPy weights and LiteRT."""
    from deepsense.export import export_bundle

    return {kind: export_bundle(run, edge_work / "bundles" / kind, formats=("numpy", "tflite"))
            for kind, run in runs.items()}
