import pytest

from deepiot.schedule import CompressionSchedule, ExtendedSchedule, ThresholdSchedule


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


def test_the_schedule_owns_when_compression_checks():
    base = ThresholdSchedule(final=0.4, n_steps=4, step_interval=5)  # +0.1 every 5
    run = ExtendedSchedule(base, patience_steps=2, extend_steps=3, max_threshold=0.65)
    assert run.end_iteration == 20 + 2 * 5 + 3 * 5
    assert [run(i) for i in (0, 19, 20, 29)] == pytest.approx([0.0, 0.3, 0.4, 0.4])
    assert [run(i) for i in (30, 35, 40, 1000)] == pytest.approx([0.5, 0.6, 0.65, 0.65])
    # every step's end, then every iteration once the schedule is over
    assert [i for i in range(1, 50) if run.is_check(i)] == list(range(5, 45, 5)) + \
        list(range(45, 50))
    assert not ExtendedSchedule(ThresholdSchedule(final=0.0, n_steps=1, step_interval=5),
                                extend_steps=3).extend_steps  # nothing to extend
