"""Deadline-based control rate: hold a loop at ``fps`` without drift and report how well it did.

    rate = RateKeeper(fps=10)
    rate.restart()                 # after env.reset(): the reset motion is not a control step
    while running:
        ...observe, act, step...
        rate.sleep()               # sleeps to the next deadline (start + k / fps)
    rate.stats()                   # RateStats(steps, period_p50_s, period_p99_s, period_max_s, overruns)

Deadlines are ``start + k * period`` rather than ``now + period``, so a late step never shifts the
rest of the schedule (no accumulated drift). A step that finishes after its deadline is an overrun:
it is counted, and the schedule skips the deadlines already missed instead of running a burst of
short steps to catch up (a robot must not receive several commands back to back).

``fps=None`` keeps no deadline (free-running, e.g. the simulator driven by the scripted human) but
still measures the step period. The clock and the sleep function are injectable so the deadline
logic is tested without the real clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

PERIOD_BUCKETS_MS = (50.0, 90.0, 100.0, 105.0, 110.0, 120.0, 150.0, 200.0, 500.0)
"""Upper bounds (ms) of the control-period histogram's buckets (a 10 Hz loop's steps sit near 100)."""


@dataclass
class RateStats:
    """Step period statistics of a control loop."""

    steps: int
    """Measured step periods (sleep-to-sleep intervals)."""
    target_period_s: float | None
    """1 / fps, or None when free-running."""
    period_p50_s: float
    period_p99_s: float
    period_max_s: float
    overruns: int
    """Steps that finished after their deadline."""

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        target = f"{self.target_period_s * 1e3:.1f} ms" if self.target_period_s else "free-running"
        return (
            f"step period p50 {self.period_p50_s * 1e3:.1f} ms, p99 {self.period_p99_s * 1e3:.1f} ms, "
            f"max {self.period_max_s * 1e3:.1f} ms (target {target}), overruns {self.overruns}/{self.steps}"
        )


class RateKeeper:
    """Sleeps each loop iteration to the next deadline; counts overruns; records step periods."""

    def __init__(
        self,
        fps: float | None,
        clock: Callable[[], float] = time.perf_counter,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if fps is not None and fps <= 0:
            raise ValueError(f"fps must be positive, got {fps}")
        self.period = 1.0 / fps if fps else None
        self._clock = clock
        self._sleep = sleep
        self._start = 0.0
        self._k = 0  # index of the next deadline
        self._last_tick: float | None = None
        self.periods: list[float] = []
        self.overruns = 0
        self.restart()

    def restart(self) -> None:
        """Start a new schedule now (after a reset or any pause that is not a control step)."""
        self._start = self._clock()
        self._k = 1
        self._last_tick = self._start

    @property
    def next_deadline(self) -> float | None:
        return None if self.period is None else self._start + self._k * self.period

    def sleep(self) -> bool:
        """End one step: wait for its deadline. Returns False if the step overran its deadline."""
        now = self._clock()
        on_time = True
        if self.period is not None:
            deadline = self._start + self._k * self.period
            if now <= deadline:
                self._sleep(deadline - now)
                self._k += 1
            else:
                # Overrun: skip every deadline already missed, keep the phase of the schedule.
                on_time = False
                self.overruns += 1
                missed = math.floor((now - self._start) / self.period)
                self._k = missed + 1
            now = self._clock()
        if self._last_tick is not None:
            self.periods.append(now - self._last_tick)
        self._last_tick = now
        return on_time

    def period_counts(self, bounds_ms: tuple[float, ...] = PERIOD_BUCKETS_MS) -> list[int]:
        """Step periods so far per bucket: ``len(bounds_ms) + 1`` counts, bucket i holding the periods
        in (bounds_ms[i-1], bounds_ms[i]] and the last one those above every bound."""
        periods_ms = np.asarray(self.periods, dtype=np.float64) * 1e3
        index = np.searchsorted(np.asarray(bounds_ms), periods_ms, side="left")
        return np.bincount(index, minlength=len(bounds_ms) + 1).astype(int).tolist()

    def stats(self) -> RateStats:
        periods = np.asarray(self.periods, dtype=np.float64)
        if periods.size == 0:
            periods = np.zeros(1)
        return RateStats(
            steps=len(self.periods),
            target_period_s=self.period,
            period_p50_s=float(np.percentile(periods, 50)),
            period_p99_s=float(np.percentile(periods, 99)),
            period_max_s=float(periods.max()),
            overruns=self.overruns,
        )
