"""The deadline rate keeper, driven by a fake clock (no assertion on the real clock)."""

import pytest

from actors.loop.rate import RateKeeper


class FakeClock:
    """A clock whose time moves only when the loop 'works' or the keeper sleeps."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds

    def work(self, seconds: float) -> None:
        self.now += seconds


def test_sleeps_to_each_deadline_without_drift():
    clock = FakeClock()
    rate = RateKeeper(10, clock=clock, sleep=clock.sleep)
    start = clock.now
    for i in range(50):
        clock.work(0.03 + 0.001 * (i % 7))  # uneven work, always under the 100 ms period
        assert rate.sleep() is True
    # Deadlines are start + k * period: after 50 steps the loop is exactly 5 s in, not 5 s + jitter.
    assert clock.now == pytest.approx(start + 5.0, abs=1e-9)
    stats = rate.stats()
    assert stats.steps == 50 and stats.overruns == 0
    assert stats.period_p50_s == pytest.approx(0.1) and stats.period_max_s == pytest.approx(0.1)


def test_overrun_is_counted_and_missed_deadlines_are_skipped():
    clock = FakeClock(start=0.0)
    rate = RateKeeper(10, clock=clock, sleep=clock.sleep)
    clock.work(0.05)
    assert rate.sleep()  # deadline 0.1
    clock.work(0.25)  # now 0.35: deadlines 0.2 and 0.3 missed
    assert rate.sleep() is False
    assert rate.overruns == 1
    # The schedule keeps its phase: next deadline is 0.4 (not 0.45, not a burst at 0.2, 0.3).
    assert rate.next_deadline == pytest.approx(0.4)
    clock.work(0.01)
    assert rate.sleep()
    assert clock.now == pytest.approx(0.4)
    stats = rate.stats()
    assert stats.overruns == 1
    assert stats.period_max_s == pytest.approx(0.25)
    assert stats.period_p99_s > stats.period_p50_s


def test_restart_excludes_reset_time():
    clock = FakeClock(start=0.0)
    rate = RateKeeper(10, clock=clock, sleep=clock.sleep)
    clock.work(0.02)
    rate.sleep()
    clock.work(3.0)  # a 3 s reset motion
    rate.restart()
    clock.work(0.02)
    assert rate.sleep()
    assert rate.overruns == 0
    assert max(rate.periods) == pytest.approx(0.1)


def test_free_running_measures_but_never_sleeps():
    clock = FakeClock(start=0.0)
    rate = RateKeeper(None, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        clock.work(0.004)
        assert rate.sleep()
    assert clock.sleeps == []
    stats = rate.stats()
    assert stats.target_period_s is None and stats.overruns == 0
    assert stats.period_p50_s == pytest.approx(0.004)
    assert "free-running" in stats.summary()


def test_rejects_bad_fps():
    with pytest.raises(ValueError):
        RateKeeper(0)


def test_period_counts_bucket_every_step_and_the_metrics_observe_each_once():
    from actors.roles.stats import RobotStats
    from cluster.metrics import RayMetrics

    clock = FakeClock(start=0.0)
    rate = RateKeeper(None, clock=clock, sleep=clock.sleep)  # free-running: the periods are the work
    for work in (0.02, 0.095, 0.099, 0.099, 0.3, 0.7):
        clock.work(work)
        rate.sleep()
    bounds = (50.0, 100.0, 500.0)
    assert rate.period_counts(bounds) == [1, 3, 1, 1]  # (.., 50], (50, 100], (100, 500], above
    assert sum(rate.period_counts()) == 6

    metrics = RayMetrics(run="r")  # Ray's metric objects record without a cluster (nothing exported)
    first = RobotStats("robot-0", period_counts=rate.period_counts())
    assert metrics.record_periods([first]) == 6
    assert metrics.record_periods([first]) == 0  # the same counts again: nothing new
    clock.work(0.1)
    rate.sleep()
    assert metrics.record_periods([RobotStats("robot-0", period_counts=rate.period_counts())]) == 1
    restarted = RateKeeper(None, clock=clock, sleep=clock.sleep)  # a restarted robot counts from 0
    clock.work(0.1)
    restarted.sleep()
    assert metrics.record_periods([RobotStats("robot-0", period_counts=restarted.period_counts())]) == 1
