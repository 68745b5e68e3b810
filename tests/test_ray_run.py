"""The HIL-SERL run on a real local Ray: the whole graph, fault injection, placement, refusals.

One Ray session for the module (``ray.init(address="local", num_cpus=2)``); the two-node placement
test builds its own ``ray.cluster_utils.Cluster`` after it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from configs.errors import UserError
from tests.rl_fixtures import tiny_config, write_classifier

pytestmark = [pytest.mark.ray, pytest.mark.slow]

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def local_ray():
    from cluster.ray_session import start_ray

    started = start_ray(num_cpus=2, quiet=True)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return write_classifier(tmp_path_factory.mktemp("clf") / "pretrained_model")


def _wait(predicate, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _release(runner) -> None:
    """Kill a RayRunner's actors and wait until their names are free: the module's later runs reuse
    them, and actors whose handles were merely dropped are reaped whenever Ray gets to it."""
    for handle in [*runner.robots, runner.reward, runner.replay, runner.learner]:
        if handle is not None:
            ray.kill(handle, no_restart=True)
    prefix = f"{runner.folder.name}-"
    _wait(
        lambda: not any(n.startswith(prefix) for n in ray.util.list_named_actors()), 120, "the actors' names"
    )


def test_whole_graph_survives_killing_each_actor_and_loses_nothing(local_ray, classifier, tmp_path, request):
    from actors.roles.rundir import prepare_run_dir
    from cluster.rl_run import RayRunner

    # A budget the kills cannot outrun: the run must still be going when the last actor is killed.
    cfg = tiny_config(tmp_path, classifier, steps=600, chunk_size=4, checkpoint_every=8).resolve()
    runner = RayRunner(cfg, prepare_run_dir(cfg))
    request.addfinalizer(lambda: _release(runner))
    digest_before = ray.get(runner.reward.weights_digest.remote())
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(runner.run()), daemon=True)
    thread.start()

    from cluster.ray_roles import PEER_ERRORS

    def added() -> int:
        for _ in range(120):  # the replay may be restarting
            try:
                return ray.get(runner.replay.sizes.remote(), timeout=60)["added"]
            except PEER_ERRORS:
                time.sleep(1)
        raise AssertionError("the replay actor did not come back")

    killed = []
    for name in ("replay", "learner", "reward", "robot"):  # each actor killed once, mid-run
        mark = added()
        _wait(lambda mark=mark: added() >= mark + 12, 240, f"progress before killing the {name}")
        if name == "learner":  # a checkpoint to resume from
            _wait(lambda: (runner.folder / "checkpoints" / "latest").is_file(), 240, "a learner checkpoint")
        handle = runner.robots[0] if name == "robot" else getattr(runner, name)
        ray.kill(handle, no_restart=False)  # SIGKILL of its process; Ray restarts it
        killed.append(name)
    thread.join(600)
    assert not thread.is_alive(), "the run did not finish after the kills"

    robot = result["robots"][0]
    sizes = ray.get(runner.replay.sizes.remote())
    # Nothing acknowledged is lost: the replay holds every transition the robot saw acknowledged.
    # (The killed robot's counters restart with it; the replay's count is the run's.)
    assert sizes["online"] >= robot.acked and sizes["added"] >= cfg.runtime.total_env_steps
    assert killed == ["replay", "learner", "reward", "robot"]
    assert result["restarts"]["robot"] >= 1 and result["restarts"]["learner"] >= 1
    # The learner resumed from its checkpoint and kept pushing; the robot acted with new weights.
    assert result["learner"].resumed_from is not None and result["learner"].updates > 0
    assert robot.policy_version > 0
    # The restarted reward actor reloaded the same frozen classifier.
    assert result["classifier_digest_after"] == digest_before


@pytest.fixture(scope="module")
def lockstep_ray_runs(local_ray, classifier, tmp_path_factory):
    """A lock-step run on Ray: its summary (in a list) and the config maker. (Ray runs of one seed are
    identical because each equals the in-process run, which test_lockstep shows is a function of
    its seed.)"""
    from cluster.rl_run import run

    tmp = tmp_path_factory.mktemp("lockstep")

    def config(name):
        cfg = tiny_config(
            tmp / name, classifier, steps=32, pace="lockstep", eval_every=16, eval_every_episodes=1
        )
        cfg.run_name = name
        return cfg

    return [run(config("ray-1"))], config


def test_a_lockstep_run_on_ray_matches_the_in_process_run_bit_for_bit(lockstep_ray_runs):
    from actors.roles.local import LocalRunner
    from tests.test_lockstep import weights_sha256

    summaries, config = lockstep_ray_runs
    results = []
    for summary in summaries:
        robot = summary["robots"][0]
        evals = [{k: v for k, v in p.items() if k != "eval_wall_s"} for p in robot.evals]
        results.append((robot.transitions_sha256, weights_sha256(summary["export"]["state_dict"]), evals))
    runner = LocalRunner(config("local"))
    summary = runner.run()
    robot = summary["robots"][0]
    evals = [{k: v for k, v in p.items() if k != "eval_wall_s"} for p in robot.evals]
    local = (
        robot.transitions_sha256,
        weights_sha256(runner.learner.agent.policy.trainable_state_dict()),
        evals,
    )
    assert results[0] == local  # the same transitions, weights and evaluation points
    assert [p["env_steps"] for p in local[2]] == [0, 16, 32] and summary["learner"].updates == 32 - 16


def _exported(run: str, names: set[str], timeout_s: float = 90.0) -> dict[str, set[str]]:
    """Series name -> run labels in this node's Prometheus text (Ray's metrics agent), polled until
    every one of ``names`` is there for ``run`` (the agent exports every few seconds)."""
    import re
    import urllib.request

    port = ray.nodes()[0]["MetricsExportPort"]
    deadline = time.monotonic() + timeout_s
    while True:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
        labelled: dict[str, set[str]] = {}
        for line in text.splitlines():
            match = re.match(r"(ray_hilserl_\w+)\{(.*)\} ", line)
            if match:
                label = re.search(r'run="([^"]*)"', match.group(2))
                labelled.setdefault(match.group(1), set()).add(label.group(1) if label else "")
        if all(run in labelled.get(n, ()) for n in names) or time.monotonic() > deadline:
            return labelled
        time.sleep(1.0)


def test_every_grafana_panel_queries_a_series_the_run_exports_with_its_run_label(lockstep_ray_runs):
    import json
    import re

    from cluster.metrics import DASHBOARD

    summaries, _ = lockstep_ray_runs
    last = Path(summaries[-1]["folder"]).name  # a new run's metrics replace the last one's in this driver
    dashboard = json.loads(DASHBOARD.read_text())
    assert len(dashboard["panels"]) >= 12
    queried = {
        name.removesuffix("_bucket") + ("_bucket" if name.endswith("_bucket") else "")
        for panel in dashboard["panels"]
        for t in panel["targets"]
        for name in re.findall(r"ray_hilserl_\w+", t["expr"])
    }
    labelled = _exported(last, queried | {"ray_hilserl_control_period_ms_count"})
    missing = sorted(n for n in queried if last not in labelled.get(n, ()))
    assert not missing, f"panel queries name series the run {last} did not export: {missing}"
    assert all("" not in runs for runs in labelled.values()), labelled  # every series names its run


def test_run_seeds_runs_each_seed_and_summarizes_them(local_ray, tmp_path, capsys):
    import json

    from cluster.rl_run import main

    cfg = tiny_config(tmp_path, steps=20, pace="lockstep", eval_every=10, eval_every_episodes=1)
    path = tmp_path / "cfg.json"
    from configs.parsing import save_config

    save_config(cfg, path)
    assert (
        main(["--config_path", str(path), "--seeds", "3,4", "--run_name=s", "--runtime.eval_episodes=1"]) == 0
    )
    out = capsys.readouterr().out
    assert "s: 2 seeds, final success" in out and "report: " in out
    for seed in (3, 4):
        saved = json.loads((tmp_path / "runs" / f"s-seed{seed}" / "config.json").read_text())
        assert saved["seed"] == seed and saved["seeds"] is None
    report = (tmp_path / "runs" / "s-seeds" / "report.md").read_text()
    assert "| s | 2 (3, 4) |" in report and "plots/eval_curve.png" in report
    with pytest.raises(UserError, match="s-seeds already exists"):  # nothing is overwritten
        main(["--config_path", str(path), "--seeds", "3,4", "--run_name=s"])


def test_a_resource_no_node_offers_is_one_line(local_ray, tmp_path):
    from cluster.rl_run import run

    cfg = tiny_config(tmp_path, steps=8, robot_resource="so101", resource_timeout_s=1)
    with pytest.raises(UserError, match=r"so101.*ray start --address=<head>:6379 --resources") as err:
        run(cfg)
    assert "\n" not in str(err.value)


def test_reservations_the_cluster_cannot_hold_are_one_line(local_ray, tmp_path):
    from cluster.rl_run import run

    cfg = tiny_config(tmp_path, steps=8, num_robots=4, resource_timeout_s=1)  # 4 x 0.5 + 0.5 + 0.25 > 2
    with pytest.raises(
        UserError, match=r"reserve 2.75 CPUs and the cluster has 2: .*runtime.robot_cpus"
    ) as err:
        run(cfg)
    assert "\n" not in str(err.value)


def test_a_mismatched_checkpoint_is_refused_before_anything_starts(local_ray, tmp_path):
    from cluster.rl_run import run

    wrong = write_classifier(tmp_path / "wrong", size=64)
    cfg = tiny_config(tmp_path, wrong, steps=8)
    start = time.monotonic()
    with pytest.raises(UserError, match="64x64"):
        run(cfg)
    assert time.monotonic() - start < 30


def test_the_robot_lands_on_the_node_with_the_arm(classifier, tmp_path):
    """Two nodes; only one offers {"so101": 1}: the robot actor is placed there."""
    from ray.cluster_utils import Cluster

    from actors.roles.rundir import prepare_run_dir
    from cluster.rl_run import RayRunner, wait_for_resources

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    arm_node = cluster.add_node(num_cpus=1, resources={"so101": 1})
    try:
        ray.init(address=cluster.address, logging_level="ERROR")
        cfg = tiny_config(tmp_path, classifier, steps=8, robot_resource="so101").resolve()
        wait_for_resources(cfg)
        folder = prepare_run_dir(cfg)
        runner = RayRunner(cfg, folder)
        node = ray.get(runner.robots[0].node_id.remote())
        assert node == arm_node.node_id
        # Each actor reserves the CPU it uses: robot 0.5 (arm node), learner 0.5, reward and replay 0.25.
        _wait(
            lambda: ray.available_resources().get("CPU", 0.0) == pytest.approx(2.0 - 1.5),
            30,
            "the reservations",
        )
        # The actors carry the run's name (the dashboard's Actors page): <run>-<role>[-<i>].
        for role in ("reward", "replay", "learner", "robot-0"):
            ray.get_actor(f"{folder.name}-{role}")
        summary = runner.run()
        assert summary["robots"][0].env_steps >= 8
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_a_loop_that_fails_again_at_once_ends_the_run_instead_of_restarting_forever():
    """A robot (or learner) loop that fails LOOP_FAILURES times without a step in between is a
    bug or a broken device, not a crash a restart cures: the run ends, naming the error."""
    from cluster.rl_run import LOOP_FAILURES, RayRunner

    runner = object.__new__(RayRunner)  # only the bookkeeping of _failing, no cluster
    runner._failures, runner.failure, runner.stop_requested = {}, None, threading.Event()
    failed = {"running": False, "error": "KeyError: 'success'"}
    assert not runner._failing("robot-0", {"running": False, "error": None}, 0)  # Ray restarted it
    for _ in range(LOOP_FAILURES - 1):
        assert not runner._failing("robot-0", failed, 5)
    assert not runner._failing("robot-0", failed, 6)  # it made progress: the count starts again
    for _ in range(LOOP_FAILURES - 2):
        assert not runner._failing("robot-0", failed, 6)
    assert runner._failing("robot-0", failed, 6) and runner.stop_requested.is_set()
    assert (
        f"robot-0's loop failed {LOOP_FAILURES} times in a row" in runner.failure
        and "KeyError" in runner.failure
    )
