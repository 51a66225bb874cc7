"""The live demo: held-out recordings through a local broker give the offline accuracy."""

from __future__ import annotations

import pytest

from deepsense.data.synthetic import SyntheticSpec, make_recording
from gateway.demo import run_live_demo


@pytest.mark.slow
@pytest.mark.broker
def test_live_demo_accuracy_equals_offline(bundle, mosquitto_binary, tmp_path):
    spec = SyntheticSpec(n_users=3, devices=("nexus4_1",), seconds_per_activity=16.0, seed=0)
    recordings = [make_recording(spec, "b", "nexus4_1", a) for a in ("walk", "sit", "bike")]
    lines = []
    summary = run_live_demo(bundle, recordings, tmp_path / "live", n_show=3,
                            print_fn=lines.append)
    assert summary["broker"] == "Mosquitto"
    assert summary["n_predictions"] == summary["n_windows"] >= 6
    assert summary["live_accuracy"] == pytest.approx(summary["offline_accuracy"])
    assert 0 <= summary["live_ece"] == pytest.approx(summary["offline_ece"], abs=1e-4)
    assert len(lines) == 3 and "live" in lines[0]
    assert summary["model_bytes"] > 0
