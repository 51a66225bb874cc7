import pytest

from deepiot.schedule import CompressionSchedule, ThresholdSchedule


def test_threshold_staircase_follows_the_paper():
    schedule = ThresholdSchedule(final=0.825, n_steps=33, step_interval=500)
    assert schedule(0) == 0.0
    assert schedule(499) == 0.0
    assert schedule(500) == pytest.approx(0.025)
    assert schedule(schedule.end_iteration) == pytest.approx(0.825)
    assert schedule(10 * schedule.end_iteration) == pytest.approx(0.825)
    assert schedule.end_iteration == 16_500


def test_schedule_config_round_trip():
    schedule = ThresholdSchedule(start=0.1, final=0.8, n_steps=7, step_interval=3)
    config = schedule.get_config()
    assert config == {"start": 0.1, "final": 0.8, "n_steps": 7, "step_interval": 3}
    clone = ThresholdSchedule.from_config(config)
    assert clone == schedule
    assert [clone(i) for i in range(30)] == [schedule(i) for i in range(30)]
    assert isinstance(clone, CompressionSchedule)


@pytest.mark.parametrize("kwargs", [{"final": 1.0}, {"start": 0.5, "final": 0.4},
                                    {"n_steps": 0}, {"step_interval": 1.5}])
def test_schedule_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="ThresholdSchedule expected"):
        ThresholdSchedule(**kwargs)
