"""The run's scalars as Ray metrics (``ray.util.metrics``), for the dashboard's Metrics tab and Prometheus.

    metrics = RayMetrics(run="20261207-101500-classifier")
    metrics.record({"env_steps_per_s": 9.8, "loss/critic_loss": 0.01, ...})   # a gauge per scalar
    metrics.record_periods(robot_statuses)                                     # the control periods

Every scalar of ``actors.roles.rundir.RunMonitor`` becomes a gauge ``hilserl_<name>`` (``/`` and
other characters turned into ``_``), exported as ``ray_hilserl_<name>``; counters for env steps and
learner updates; a histogram of every control-loop step period, per robot. Every series carries
the run's name as the label ``run`` (the histogram also ``robot``), so a finished run's series
never mix with the live one's. ``cluster/grafana/hilserl.json`` is a Grafana dashboard of them;
``install_grafana_dashboard`` puts it where Ray's Grafana provisioning looks (docs/cluster.md,
Monitoring).
"""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

from ray.util import metrics as ray_metrics

from actors.loop.rate import PERIOD_BUCKETS_MS
from actors.roles.stats import RobotStats

logger = logging.getLogger(__name__)

COUNTERS = {"env_steps": "hilserl_env_steps_total", "learner_updates": "hilserl_learner_updates_total"}
PERIOD_HISTOGRAM = "hilserl_control_period_ms"
DASHBOARD = Path(__file__).parent / "grafana" / "hilserl.json"


def metric_name(key: str) -> str:
    return "hilserl_" + re.sub(r"[^a-zA-Z0-9_]", "_", key)


def _bucket_value(index: int) -> float:
    """A period (ms) inside bucket ``index`` of ``PERIOD_BUCKETS_MS``: its middle (the last: 1.5 x the top bound)."""
    if index >= len(PERIOD_BUCKETS_MS):
        return PERIOD_BUCKETS_MS[-1] * 1.5
    low = PERIOD_BUCKETS_MS[index - 1] if index else 0.0
    return (low + PERIOD_BUCKETS_MS[index]) / 2


class RayMetrics:
    def __init__(self, run: str):
        self.tags = {"run": run}
        self.gauges: dict[str, ray_metrics.Gauge] = {}
        self.counters = {
            k: self._labelled(ray_metrics.Counter(v, description=f"{k} (cumulative)", tag_keys=("run",)))
            for k, v in COUNTERS.items()
        }
        self.last = {k: 0.0 for k in COUNTERS}
        self.period = ray_metrics.Histogram(
            PERIOD_HISTOGRAM,
            description="control-loop step period (ms) of each robot, every step",
            boundaries=list(PERIOD_BUCKETS_MS),
            tag_keys=("run", "robot"),
        )
        self._period_seen: dict[str, list[int]] = {}

    def _labelled(self, metric):
        metric.set_default_tags(self.tags)
        return metric

    def record(self, scalars: dict[str, float]) -> None:
        for key, value in scalars.items():
            if key not in self.gauges:
                self.gauges[key] = self._labelled(
                    ray_metrics.Gauge(metric_name(key), description=key, tag_keys=("run",))
                )
            self.gauges[key].set(float(value))
        for key, counter in self.counters.items():
            delta = scalars.get(key, 0.0) - self.last[key]
            if delta > 0:
                counter.inc(delta)
                self.last[key] = scalars[key]

    def record_periods(self, robots: list[RobotStats]) -> int:
        """Observe each robot's step periods since the last call (from its cumulative bucket counts;
        a restarted robot's counts start again). Each period is observed at its bucket's middle, so
        the histogram's buckets are exact and its sum approximate. Returns the periods observed."""
        observed = 0
        for robot in robots:
            counts = robot.period_counts
            if not counts:
                continue
            seen = self._period_seen.get(robot.robot)
            if (
                seen is None
                or len(seen) != len(counts)
                or any(c < s for c, s in zip(counts, seen, strict=True))
            ):
                seen = [0] * len(counts)
            tags = {**self.tags, "robot": str(robot.robot)}
            for index, (count, before) in enumerate(zip(counts, seen, strict=True)):
                for _ in range(count - before):
                    self.period.observe(_bucket_value(index), tags=tags)
                observed += count - before
            self._period_seen[robot.robot] = list(counts)
        return observed


def install_grafana_dashboard() -> Path | None:
    """Copy the run's Grafana dashboard into this Ray session's provisioned dashboards folder (the head
    node's ``<session>/metrics/grafana/dashboards``, which Ray's grafana.ini provisions). None when
    this process is not on the head (the folder is not here)."""
    import ray

    try:
        session = Path(ray._private.worker._global_node.get_session_dir_path())
    except AttributeError:
        return None
    folder = session / "metrics" / "grafana" / "dashboards"
    if not folder.is_dir():
        return None
    target = folder / DASHBOARD.name
    try:
        shutil.copyfile(DASHBOARD, target)
    except OSError as err:  # a convenience: the run goes on without its Grafana panel
        logger.warning("Grafana dashboard not installed (%s): the run goes on without it", err)
        return None
    logger.info("Grafana dashboard 'HIL-SERL run' installed: %s", target)
    return target
