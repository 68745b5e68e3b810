"""The run's scalars as Ray metrics (``ray.util.metrics``), for the dashboard's Metrics tab and Prometheus.

    metrics = RayMetrics()
    metrics.record({"env_steps_per_s": 9.8, "loss/critic_loss": 0.01, ...})   # a gauge per scalar

Every scalar of ``actors.roles.rundir.RunMonitor`` becomes a gauge ``hilserl_<name>`` (``/`` and
other characters turned into ``_``); counters for env steps and learner updates; a histogram of the
control period p99. The dashboard shows them once Prometheus scrapes the head (docs/cluster.md, Monitoring).
"""

from __future__ import annotations

import re

from ray.util import metrics as ray_metrics

COUNTERS = {"env_steps": "hilserl_env_steps_total", "learner_updates": "hilserl_learner_updates_total"}


def metric_name(key: str) -> str:
    return "hilserl_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


class RayMetrics:
    def __init__(self):
        self.gauges: dict[str, ray_metrics.Gauge] = {}
        self.counters = {
            k: ray_metrics.Counter(v, description=f"{k} (cumulative)") for k, v in COUNTERS.items()
        }
        self.last = {k: 0.0 for k in COUNTERS}
        self.period = ray_metrics.Histogram(
            "hilserl_control_period_p99_ms_hist",
            description="control-loop period p99 (ms) of the robots, per monitor record",
            boundaries=[90, 100, 105, 110, 120, 150, 200, 500],
        )

    def record(self, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            if key not in self.gauges:
                self.gauges[key] = ray_metrics.Gauge(metric_name(key), description=key)
            self.gauges[key].set(float(value))
        for key, counter in self.counters.items():
            delta = scalars.get(key, 0.0) - self.last[key]
            if delta > 0:
                counter.inc(delta)
                self.last[key] = scalars[key]
        if scalars.get("control_period_p99_ms"):
            self.period.observe(scalars["control_period_p99_ms"])
