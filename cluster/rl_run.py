"""`hilserl run`: the HIL-SERL run on Ray (robot, reward, replay and learner actors).

    hilserl run --config_path configs/sim_rl.json --env.processor.reward_classifier.pretrained_path=DIR
    hilserl run --config_path configs/sim_rl.json --reward.source=sparse --runtime.num_robots=2
    ray job submit --working-dir . -- hilserl run --config_path configs/so101_rl.json --runtime.ray_address=auto
    hilserl run --config_path configs/so101_rl.json --rehearse   # the same, the arm simulated (no hardware)
    hilserl runs outputs/rl                                  # past runs, one line each

The driver reads like the loop it runs::

    folder  = prepare_run_dir(cfg)                  # config.json, classifier.json, run.json
    start_ray(...)                                  # private local Ray + dashboard, or join a cluster
    reward, replay, learner, robots = make_actors() # placed by resources; missing ones fail in one line
    while budget left: poll statuses -> TensorBoard, Ray metrics, progress line; restart dead loops
    stop robots (safe) -> final learner checkpoint -> replay snapshot -> evaluation episodes

Ctrl-C or `ray job stop` (SIGTERM; raise ``RAY_JOB_STOP_WAIT_TIME_S`` so the stop can finish) stop
the robots safely and write the final checkpoint.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from actors.roles.rundir import RunMonitor, list_runs, prepare_run_dir, record_classifier
from actors.roles.stats import LearnerStats, RewardStats, RobotStats
from configs.errors import UserError
from configs.parsing import parse_config
from configs.rl import TrainRLConfig

logger = logging.getLogger(__name__)

POLL_S = 1.0
LOOP_FAILURES = 3
"""A role whose loop failed this many times in a row, making no progress in between, ends the run:
a fault that comes back at once (a bug, a broken device) is not cured by starting the loop again."""


def actor_cpus(cfg: TrainRLConfig) -> float:
    """CPUs all the run's actors reserve together."""
    runtime = cfg.runtime
    reward = runtime.reward_cpus if cfg.reward.source == "classifier" else 0.0
    return runtime.num_robots * runtime.robot_cpus + runtime.learner_cpus + reward + runtime.replay_cpus


def _needs(cfg: TrainRLConfig) -> dict[str, float]:
    """Custom resources, GPUs and CPUs the actors ask for."""
    needs: dict[str, float] = {"CPU": actor_cpus(cfg)}
    resource = robot_resource(cfg)
    if resource:
        needs[resource] = float(cfg.runtime.num_robots)
    if cfg.runtime.learner_gpus:
        needs["GPU"] = float(cfg.runtime.learner_gpus)
    return needs


def robot_resource(cfg: TrainRLConfig) -> str | None:
    if cfg.runtime.robot_resource is not None:
        return cfg.runtime.robot_resource or None
    from actors.robots.factory import backend

    return "so101" if backend(cfg.env) == "real" else None


def wait_for_resources(cfg: TrainRLConfig) -> None:
    """Wait up to ``resource_timeout_s`` for nodes offering what the actors need, else one line."""
    import ray

    needs = _needs(cfg)
    deadline = time.monotonic() + cfg.runtime.resource_timeout_s
    while True:
        have = ray.cluster_resources()
        missing = {k: v for k, v in needs.items() if have.get(k, 0.0) < v}
        if not missing:
            return
        if time.monotonic() >= deadline:
            name, amount = next(iter(missing.items()))
            if name == "CPU":
                raise UserError(
                    f"the run's actors reserve {amount:g} CPUs and the cluster has {have.get(name, 0):g}: add a node "
                    "(`ray start --address=<head>:6379`), or lower runtime.robot_cpus / learner_cpus / reward_cpus / "
                    "replay_cpus"
                )
            flag = "--num-gpus=1" if name == "GPU" else f"--resources='{{\"{name}\": {int(amount)}}}'"
            raise UserError(
                f"no Ray node offers {amount:g} '{name}' (the cluster has {have.get(name, 0):g}) after "
                f"{cfg.runtime.resource_timeout_s:g} s: start that node with `ray start --address=<head>:6379 {flag}`"
                + (" (the node with the USB arm)" if name != "GPU" else "")
            )
        time.sleep(0.5)


class RayRunner:
    """Creates the actors, watches them, and stops them safely."""

    def __init__(self, cfg: TrainRLConfig, folder: Path):
        import ray

        from cluster.metrics import RayMetrics
        from cluster.ray_roles import LearnerActor, ReplayActor, RewardActor, RobotActor

        self.cfg, self.folder = cfg, folder
        if cfg.reward.source == "classifier":  # a mismatched checkpoint is refused before anything starts
            from actors.roles.reward import check_checkpoint_matches

            check_checkpoint_matches(
                cfg.classifier().pretrained_path, cfg.learner.image_keys, cfg.env.image_size
            )
        wait_for_resources(cfg)
        # Peers are found by name, not passed as handles: a restarted actor's constructor arguments
        # must not depend on objects its owner holds (and Ray warns about exactly that).
        # Named after the run (the dashboard's Actors page says whose they are): <run>-<role>[-<i>].
        names = {role: f"{folder.name}-{role}" for role in ("reward", "replay", "learner")}
        runtime = cfg.runtime  # each actor reserves about the CPU it uses (the dashboard's cluster page)
        self.reward = None
        if cfg.reward.source == "classifier":
            self.reward = RewardActor.options(name=names["reward"], num_cpus=runtime.reward_cpus).remote(cfg)
        self.replay = ReplayActor.options(name=names["replay"], num_cpus=runtime.replay_cpus).remote(
            cfg, str(folder)
        )
        self.learner = LearnerActor.options(
            name=names["learner"], num_cpus=runtime.learner_cpus, num_gpus=runtime.learner_gpus
        ).remote(cfg, str(folder), names["replay"])
        resource = robot_resource(cfg)
        robot_options = {"num_cpus": runtime.robot_cpus, **({"resources": {resource: 1}} if resource else {})}
        reward_name = names["reward"] if self.reward is not None else None
        self.robots = [
            RobotActor.options(name=f"{folder.name}-robot-{i}", **robot_options).remote(
                cfg, i, reward_name, names["replay"], names["learner"], str(folder)
            )
            for i in range(cfg.runtime.num_robots)
        ]
        others = [a for a in (self.reward, self.replay, self.learner) if a is not None]
        ray.get([a.ready.remote() for a in [*others, *self.robots]])
        identity = ray.get(self.reward.identity.remote()) if self.reward is not None else None
        record_classifier(folder, identity, cfg.allow_classifier_change)
        if cfg.demo_dataset and not cfg.resume:
            added = ray.get(self.replay.import_demos.remote(str(Path(cfg.demo_dataset).resolve())))
            logger.info("demo buffer: %d transitions from %s", added, cfg.demo_dataset)
        self.metrics = RayMetrics(run=folder.name)
        self.monitor = RunMonitor(folder, cfg, extra_sinks=[self.metrics.record])
        if identity is not None:
            self.monitor.writer().add_text("classifier", "```\n" + json.dumps(identity, indent=2) + "\n```")
        self.stop_requested = threading.Event()
        self.restarts = {"robot": 0, "learner": 0}
        self._failures: dict[
            str, tuple[int, int]
        ] = {}  # role -> (progress at its last failure, failures in a row)
        self.failure: str | None = None

    def _statuses(self) -> tuple[list[RobotStats], LearnerStats, RewardStats | None, int]:
        import ray

        from cluster.ray_roles import PEER_ERRORS

        def get(ref, default):
            try:
                return ray.get(ref, timeout=10)
            except PEER_ERRORS:
                return default

        robots = []
        for i, robot in enumerate(self.robots):
            status = get(robot.status.remote(), None)
            if status is None:
                status = self._last_robot.get(i) or RobotStats.empty(i)
            elif not status.running and not status.finished and not self.stop_requested.is_set():
                self.restarts["robot"] += 1  # restarted by Ray, or its loop failed: it starts again
                if self._failing(f"robot-{i}", status.error, status.env_steps):
                    continue
                robot.start.remote()
            self._last_robot[i] = status
            robots.append(status)
        learner = get(self.learner.status.remote(), None) or self._last_learner
        if not learner.running and not self.stop_requested.is_set():
            self.restarts["learner"] += 1
            if not self._failing("learner", learner.error, learner.updates):
                self.learner.start.remote()
        self._last_learner = learner
        reward = get(self.reward.stats.remote(), None) if self.reward is not None else None
        sizes = get(self.replay.sizes.remote(), None) or {"added": learner.replay.get("added", 0)}
        return robots, learner, reward, int(sizes["added"])

    def _failing(self, role: str, error: str | None, progress: int) -> bool:
        """Counts ``role``'s loop failures without progress; at ``LOOP_FAILURES`` the run ends."""
        if not error:
            return False  # a restart by Ray (the actor died), not its loop failing
        last = self._failures.get(role)
        count = last[1] + 1 if last is not None and last[0] == progress else 1
        self._failures[role] = (progress, count)
        if count < LOOP_FAILURES:
            return False
        self.failure = (
            f"{role}'s loop failed {count} times in a row without progress: {error} "
            "(the traceback is in the actor's log: the Ray dashboard's Logs page)"
        )
        logger.error(self.failure)
        self.stop_requested.set()
        return True

    def run(self) -> dict[str, Any]:
        import ray

        self._last_robot: dict[int, RobotStats] = {}
        self._last_learner = LearnerStats()
        ray.get([self.learner.start.remote(), *[r.start.remote() for r in self.robots]])
        budget = self.cfg.runtime.total_env_steps
        added_at_start = None
        try:
            while not self.stop_requested.is_set():
                robots, learner, reward, added = self._statuses()
                added_at_start = added if added_at_start is None else added_at_start
                self.monitor.record(robots, learner, reward)
                self.metrics.record_periods(robots)
                if budget and added - added_at_start >= budget:
                    break
                if all(r.finished for r in robots):  # every robot did its share
                    break
                self.stop_requested.wait(POLL_S)
        finally:
            summary = self.shutdown()
        if self.failure is not None:
            raise UserError(f"{self.failure}; the final checkpoint is in {self.folder}")
        return summary

    def shutdown(self) -> dict[str, Any]:
        """Robots first (safe stop, flush), then the learner's final checkpoint and the replay snapshot."""
        self.stop_requested.set()
        robots = [_retry(lambda r=r: r.close.remote(), 120) for r in self.robots]
        learner = _retry(lambda: self.learner.stop.remote(), 300)
        _retry(lambda: self.learner.checkpoint.remote(), 300)
        export = _retry(lambda: self.learner.export.remote(), 60)
        reward = digest = None
        if self.reward is not None:
            reward = _retry(lambda: self.reward.stats.remote(), 60)
            digest = _retry(lambda: self.reward.weights_digest.remote(), 60)
        self.monitor.record(robots, _retry(lambda: self.learner.status.remote(), 60), reward)
        self.metrics.record_periods(robots)
        replay = _retry(lambda: self.replay.status.remote(), 60)
        self.monitor.close()
        return {
            "folder": str(self.folder),
            "robots": robots,
            "learner": learner,
            "reward": reward,
            "replay": replay,
            "classifier_digest_after": digest,
            "restarts": dict(self.restarts),
            "history": self.monitor.history,
            "export": export,
        }


def _retry(submit, timeout_s: float) -> Any:
    """``ray.get(submit())``, submitting again while the actor restarts (up to ``timeout_s``)."""
    import ray

    from cluster.ray_roles import PEER_ERRORS

    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return ray.get(submit(), timeout=max(1.0, deadline - time.monotonic()))
        except PEER_ERRORS:
            if time.monotonic() >= deadline:
                raise
            time.sleep(1.0)


def run(cfg: TrainRLConfig) -> dict[str, Any]:
    """The whole run: folder, Ray, actors, monitoring, safe stop, optional evaluation."""
    import ray

    from cluster.ray_session import start_ray

    cfg.resolve()
    resources = None
    if cfg.env.rehearse:
        from actors.robots.preflight import check_run, raise_problems

        raise_problems(check_run(cfg), "rehearsal refused")
        resource = robot_resource(cfg)
        # A private local Ray holds the rehearsal's simulated arm itself: it offers the arm's resource.
        resources = {resource: float(cfg.runtime.num_robots)} if resource else None
    # Ray first: a cluster that is not there is refused before the run folder exists.
    num_cpus = cfg.runtime.num_cpus
    if num_cpus is None and cfg.runtime.ray_address is None:  # a private Ray holds every actor's reservation
        num_cpus = max(os.cpu_count() or 1, math.ceil(actor_cpus(cfg)))
    started = start_ray(
        address=cfg.runtime.ray_address,
        num_cpus=num_cpus,
        dashboard=cfg.runtime.dashboard,
        resources=resources,
    )
    from cluster.metrics import install_grafana_dashboard

    install_grafana_dashboard()
    try:
        folder = prepare_run_dir(cfg)
    except BaseException:
        if started:
            ray.shutdown()
        raise
    runner = None
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum, frame):  # `ray job stop`: stop like Ctrl-C
        if runner is not None:
            runner.stop_requested.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, on_sigterm)
    try:
        if started and cfg.runtime.dashboard:
            context = ray.get_runtime_context()
            url = getattr(context, "dashboard_url", None) or ray.worker.get_dashboard_url()
            if url:
                logger.info("Ray dashboard: http://%s", url)
        runner = RayRunner(cfg, folder)
        try:
            summary = runner.run()
        except KeyboardInterrupt:
            summary = runner.shutdown() if not runner.stop_requested.is_set() else {"folder": str(folder)}
        if cfg.runtime.eval_episodes and "export" in summary:
            from actors.roles.evaluate import EVAL_EPISODES, evaluate_policy

            record_root = folder / EVAL_EPISODES if cfg.runtime.eval_record else None
            summary["eval"] = evaluate_policy(
                cfg, summary["export"], cfg.runtime.eval_episodes, record_root=record_root
            )
            (folder / "eval.json").write_text(json.dumps(summary["eval"], indent=2) + "\n")
        return summary
    finally:
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, previous)
        if started:
            ray.shutdown()


def run_seeds(cfg: TrainRLConfig) -> dict[str, Any]:
    """One run per seed of ``cfg.seeds`` (folders ``<run_name>-seed<s>``), then a report of them all
    in ``<run_name>-seeds/`` (curves, mean/min/max of final success and steps to 90 %)."""
    import copy

    from cluster.report import seed_summary, write_report

    base = cfg.run_name or time.strftime("%Y%m%d-%H%M%S")
    report_dir = Path(cfg.output_dir) / f"{base}-seeds"
    folders = [Path(cfg.output_dir) / f"{base}-seed{s}" for s in cfg.seeds]
    taken = [p for p in [report_dir, *folders] if p.exists() and not cfg.resume]
    if taken:
        raise UserError(
            f"run folder {taken[0]} already exists: pick another --run_name (nothing was written)"
        )
    summaries = []
    for seed, folder in zip(cfg.seeds, folders, strict=True):
        one = copy.deepcopy(cfg)
        one.seeds, one.seed, one.run_name = None, seed, folder.name
        logger.info("seed %d of %s: %s", seed, cfg.seeds, folder)
        summaries.append(run(one))
    report = write_report(report_dir, {base: folders}, None)
    return {
        "seeds": list(cfg.seeds),
        "runs": summaries,
        "summary": seed_summary(folders),
        "report": str(report),
    }


def _print_run(summary: dict[str, Any]) -> None:
    learner = summary.get("learner") or LearnerStats()
    robots = summary.get("robots", [])
    print(
        f"run {summary['folder']}: {sum(r.env_steps for r in robots)} env steps, "
        f"{learner.updates} learner updates, success {robots[0].success_rate:.0%} (last episodes)"
        if robots
        else f"run {summary['folder']}"
    )
    for robot in robots:
        if robot.fault:  # its arm stopped safely; the run ended with its final checkpoint
            print(f"{robot.robot} stopped: {robot.fault}", file=sys.stderr)
    if "eval" in summary:
        ev = summary["eval"]
        print(
            f"evaluation: success {ev['successes']}/{ev['episodes']} ({ev['success_rate']:.0%}) without intervention"
        )


def main(argv: list[str]) -> int:
    """``hilserl run --config_path CFG.json [overrides]`` (``--seeds 0,1,2``: a run per seed;
    ``--rehearse``: the real-arm config on simulated hardware, ``actors.robots.rehearsal``)."""
    from cluster.report import format_seed_summary
    from configs.env import rehearse_argv
    from configs.rl import seeds_argv

    cfg = parse_config(
        TrainRLConfig, seeds_argv(rehearse_argv(argv, "--env.rehearse=true")), prog="hilserl run"
    )
    if cfg.seeds:
        cfg.resolve()
        out = run_seeds(cfg)
        for summary in out["runs"]:
            _print_run(summary)
        print(format_seed_summary(cfg.run_name or "seeds", out["summary"]))
        print(f"report: {out['report']}")
        return 0
    summary = run(cfg)
    _print_run(summary)
    return 0


def runs_main(argv: list[str]) -> int:
    """``hilserl runs [DIR] [--json]``: past runs, newest last."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="hilserl runs", description="List past runs: date, classifier, env steps, success, checkpoint."
    )
    parser.add_argument(
        "root", nargs="?", default="outputs/rl", help="the output_dir of your runs (default outputs/rl)"
    )
    parser.add_argument("--json", action="store_true", help="print the rows as JSON")
    args = parser.parse_args(argv)
    root = args.root
    if not Path(root).is_dir():
        raise UserError(f"no runs folder at {root}; pass the output_dir of your runs (default outputs/rl)")
    rows = list_runs(root)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    header = (
        f"{'run':<28} {'started':<20} {'classifier':<14} {'steps':>7} {'success':>8} {'interv.':>8} "
        f"{'eval':>13}  checkpoint"
    )
    print(header)
    for row in rows:
        if "unreadable" in row:
            print(
                f"{Path(row['run']).name:<28} (its run.json or classifier.json is unreadable: {row['unreadable']})"
            )
            continue
        rate = lambda v: "-" if v is None else f"{v:.0%}"  # noqa: E731
        ev = row.get("eval")
        last_eval = f"{ev['success_rate']:.0%} @{ev['env_steps']}" if ev else "-"
        print(
            f"{Path(row['run']).name:<28} {str(row['started']):<20} {row['classifier_sha256'] or 'sparse':<14} "
            f"{row['env_steps']:>7} {rate(row['success_rate']):>8} {rate(row['intervention_rate']):>8} "
            f"{last_eval:>13}  {row['last_checkpoint'] or '-'}"
        )
    if not rows:
        print(f"(no runs under {root})", file=sys.stderr)
    return 0
