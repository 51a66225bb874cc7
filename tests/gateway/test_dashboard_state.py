"""The dashboard's state: what the page is sent, without a broker or a browser."""

from __future__ import annotations

import pytest

from gateway.dashboard import DashboardState


def prediction(device: str, max_prob: float, version: str = "1") -> dict:
    rest = (1.0 - max_prob) / 2
    return {"device_id": device, "label": "walk", "probs": {"walk": max_prob, "sit": rest,
                                                            "bike": rest},
            "max_prob": max_prob, "entropy": 0.5, "model": {"name": "har", "version": version}}


def regression(device: str, mean: float, half_width: float) -> dict:
    return {"device_id": device, "mean": {"speed": mean}, "std": {"speed": half_width / 1.96},
            "interval_95": {"speed": [mean - half_width, mean + half_width]},
            "model": {"name": "speed", "version": "1"}}


def test_state_frames_carry_only_what_changed():
    state = DashboardState()
    state.add_prediction(prediction("a", 0.9), 100.0)
    state.add_prediction(prediction("b", 0.9), 100.5)
    version, first = state.frame_since(0)
    assert [d["device_id"] for d in first["devices"]] == ["a", "b"]
    assert all(d["reset"] for d in first["devices"])
    assert state.frame_since(version) == (version, None)
    state.add_prediction(prediction("b", 0.4), 101.0)
    state.add_prediction(prediction("b", 0.8, version="2"), 102.0)
    _, delta = state.frame_since(version)
    (b,) = delta["devices"]
    assert b["device_id"] == "b" and not b["reset"] and b["n"] == 3
    assert [p[1:] for p in b["points"]] == [[0.4, 0.5, True], [0.8, 0.5, False]]
    assert b["events"] == [[102000, "har 2"]]                 # the model changed
    assert b["last"]["uncertain"] is False and b["last"]["label"] == "walk"


def test_state_marks_unusually_wide_regression_intervals():
    state = DashboardState()
    for t, half in enumerate([1.0, 1.1, 0.9, 1.0, 3.0]):
        state.add_prediction(regression("car", 10.0, half), float(t))
    points = state.frame_since(0)[1]["devices"][0]["points"]
    assert [p[4] for p in points] == [False, False, False, False, True]
    assert points[-1][1:4] == [10.0, 7.0, 13.0]


def test_state_gateway_is_degraded_when_it_starts_dropping():
    state = DashboardState()
    status = {"state": "online", "model": {"sha256": "a"}, "predictions_dropped": 0,
              "counters": {"queue_full": 0, "refused_malformed_json": 2}}
    state.add_status("gw1", status, 1.0)
    state.add_status("gw1", {**status, "counters": {"queue_full": 5}}, 2.0)
    gw = state.frame_since(0)[1]["gateways"][0]
    assert gw["state"] == "degraded" and gw["refusals"] == {"queue_full": 5}
    state.add_status("gw1", {**status, "counters": {"queue_full": 5},
                             "model": {"sha256": "b", "name": "har", "version": "2"}}, 3.0)
    gw = state.frame_since(0)[1]["gateways"][0]
    assert gw["state"] == "online" and gw["events"] == [[3000, "har 2"]]
    state.add_status("gw1", {**status, "state": "offline"}, 4.0)
    assert state.frame_since(0)[1]["gateways"][0]["state"] == "offline"


def test_state_rejects_a_threshold_outside_0_1():
    with pytest.raises(ValueError, match="uncertain_below"):
        DashboardState(uncertain_below=1.5)
