"""Lock-step pacing and periodic evaluation on the in-process runner (the Ray twin is in test_ray_run).

A lock-step run is a function of its config and seed: the same seed gives bit-identical
transitions, weights and evaluation points; another seed gives others. Periodic evaluation adds
points to the learning curve and nothing to the training replay or counts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import pytest
import torch

from actors.roles.local import LocalRunner
from actors.roles.replay import ReplayRole
from configs.errors import ConfigError
from tests.rl_fixtures import SIZE, tiny_config


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for key in sorted(state_dict):
        h.update(key.encode())
        h.update(state_dict[key].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def lockstep_run(tmp_path, name: str, seed: int, steps: int = 40, **runtime) -> dict:
    cfg = tiny_config(
        tmp_path / name, steps=steps, pace="lockstep", eval_every=16, eval_every_episodes=2, **runtime
    )
    cfg.seed = seed
    runner = LocalRunner(cfg)
    summary = runner.run()
    robot = summary["robots"][0]
    return {
        "folder": summary["folder"],
        "transitions": robot.transitions_sha256,
        "weights": weights_sha256(runner.learner.agent.policy.trainable_state_dict()),
        "evals": robot.evals,
        "updates": summary["learner"].updates,
        "cfg": cfg,
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lockstep")
    return {name: lockstep_run(tmp, name, seed) for name, seed in (("a", 0), ("b", 0), ("c", 1))}


def _strip_timing(points: list[dict]) -> list[dict]:
    return [{k: v for k, v in p.items() if k != "eval_wall_s"} for p in points]


def test_same_seed_same_run_bit_for_bit(runs):
    a, b = runs["a"], runs["b"]
    assert a["transitions"] == b["transitions"]
    assert a["weights"] == b["weights"]
    assert _strip_timing(a["evals"]) == _strip_timing(b["evals"])
    # the learner did exactly max_updates_per_env_step updates per env step after learning_starts
    assert a["updates"] == b["updates"] == 40 - 16


def test_another_seed_another_run(runs):
    a, c = runs["a"], runs["c"]
    assert a["transitions"] != c["transitions"]
    assert a["weights"] != c["weights"]


def test_periodic_evaluation_adds_points_and_nothing_to_the_replay(runs):
    a = runs["a"]
    assert [p["env_steps"] for p in a["evals"]] == [0, 16, 32]
    assert all(p["eval_episodes"] == 2 for p in a["evals"])
    role = ReplayRole(a["cfg"].learner, f"{a['folder']}/replay")
    try:  # 3 evaluations of 2 episodes ran, and the replay holds the 40 training steps alone
        assert role.sizes()["added"] == 40
    finally:
        role.close()
    lines = [json.loads(line) for line in open(f"{a['folder']}/history.jsonl")]
    points = [line for line in lines if "eval_success_rate" in line]
    assert [p["env_steps"] for p in points] == [0, 16, 32]
    assert points[1]["robot_time_s"] == pytest.approx(16 / a["cfg"].env.fps)
    monitor = [line for line in lines if "eval_success_rate" not in line]
    assert monitor[-1]["env_steps"] == 40 and monitor[-1]["episodes"] >= 1
    run = json.loads(open(f"{a['folder']}/run.json").read())
    assert [e["env_steps"] for e in run["evals"]] == [0, 16, 32]
    assert run["transitions_sha256"] == [a["transitions"]]
    from actors.roles.rundir import list_runs

    row = next(r for r in list_runs(a["cfg"].output_dir) if r["run"] == a["folder"])
    assert row["eval"] == run["evals"][-1]  # `hilserl runs` shows the last point


def test_tensorboard_names_the_run_and_logs_its_config_settings_and_frames(runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from actors.roles.evaluate import EVAL_FRAMES

    a = runs["a"]
    folder = Path(a["folder"])
    assert folder.name == "tiny" and list(folder.glob("events.out.tfevents.*"))  # the run folder is the run
    events = EventAccumulator(str(folder), size_guidance={"images": 0, "tensors": 0}).Reload()
    tags = events.Tags()
    assert "config/text_summary" in tags["tensors"]
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert '"total_env_steps": 40' in config  # the resolved config, as saved in config.json
    hparams = events.PluginTagToContent("hparams")  # the run's settings, for TensorBoard's HParams tab
    assert (
        b"reach_grasp" in hparams["_hparams_/session_start_info"]
        and b"sparse" in hparams["_hparams_/session_start_info"]
    )
    # A few frames of each periodic evaluation's first episode, per camera, at its env step.
    for camera in ("front", "wrist"):
        images = events.Images(f"eval_frames/{camera}")
        assert [i.step for i in images] == [0, 16, 32]
        assert (images[0].width, images[0].height) == (EVAL_FRAMES * SIZE, SIZE)  # one row of frames
    assert {"eval/success_rate", "success_rate"} <= set(tags["scalars"])


@pytest.mark.parametrize(
    "change, message",
    [
        ({"num_robots": 2}, "lockstep runs one robot"),
        ({"max_updates_per_env_step": 0.0}, "max_updates_per_env_step > 0"),
        ({"pace": "fast"}, "runtime.pace 'fast'"),
        ({"eval_every_episodes": 0}, "eval_every_episodes=0"),
    ],
)
def test_pace_and_evaluation_settings_are_checked_in_one_line(tmp_path, change, message):
    runtime = {"pace": "lockstep", **change}
    with pytest.raises(ConfigError, match=message) as err:
        tiny_config(tmp_path, **runtime).resolve()
    assert "\n" not in str(err.value)


def test_lockstep_and_a_separate_evaluation_env_need_a_simulated_robot(tmp_path):
    cfg = tiny_config(tmp_path, pace="lockstep")
    cfg.env.robot.type = "so101"
    with pytest.raises(ConfigError, match="lockstep needs a simulated robot"):
        cfg.resolve()
    cfg = tiny_config(tmp_path, eval_every=100, eval_env="separate")
    cfg.env.robot.type = "so101"
    with pytest.raises(ConfigError, match="eval_env=shared"):
        cfg.resolve()
    cfg = tiny_config(tmp_path, eval_every=100)
    cfg.env.robot.type = "so101"
    cfg.resolve()
    assert cfg.runtime.eval_env == "shared"  # a real arm evaluates between training episodes


def test_shared_evaluation_runs_between_training_episodes(tmp_path):
    cfg = tiny_config(tmp_path, steps=30, eval_every=10, eval_every_episodes=1, eval_env="shared")
    summary = LocalRunner(cfg).run()
    robot = summary["robots"][0]
    steps = [p["env_steps"] for p in robot.evals]
    # at step 0, then at the end of the 20-step episode in which 10 and 20 were crossed; the run
    # ends at 30, inside the next episode (the final evaluation covers the end)
    assert steps == [0, 20]
    assert robot.env_steps == 30 and robot.episodes >= 1


def test_seeds_on_the_command_line():
    from configs.parsing import parse_config
    from configs.rl import TrainRLConfig, seeds_argv

    assert seeds_argv(["--seeds", "0,1,2", "--seed=3"]) == ["--seeds=[0, 1, 2]", "--seed=3"]
    assert seeds_argv(["--seeds=[4, 5]"]) == ["--seeds=[4, 5]"]
    assert parse_config(TrainRLConfig, seeds_argv(["--seeds=7,8"])).seeds == [7, 8]
    with pytest.raises(ConfigError, match="integers separated by commas"):
        seeds_argv(["--seeds", "a,b"])
    cfg = parse_config(TrainRLConfig, seeds_argv(["--seeds=1,1", "--reward.source=sparse"]))
    with pytest.raises(ConfigError, match="must be distinct"):
        cfg.resolve()


def test_evaluation_points_reach_the_gauges_once_and_alone(tmp_path):
    from actors.roles.rundir import RunMonitor, prepare_run_dir
    from actors.roles.stats import LearnerStats, RobotStats

    cfg = tiny_config(tmp_path).resolve()
    seen: list[dict] = []
    monitor = RunMonitor(prepare_run_dir(cfg), cfg, extra_sinks=[seen.append])
    point = {
        "env_steps": 500,
        "eval_policy_version": 7,
        "eval_success_rate": 0.4,
        "eval_successes": 4,
        "eval_episodes": 10,
    }
    robot = dataclasses.replace(RobotStats.empty(0), env_steps=510, evals=[point])
    monitor.record([robot], LearnerStats(updates=3))
    monitor.record([robot], LearnerStats(updates=4))  # the same point again: written once
    monitor.close()
    evals = [s for s in seen if "eval_success_rate" in s]
    assert evals == [{k: v for k, v in point.items() if k.startswith("eval_")}]  # no env_steps/wall_s gauges
    assert [s["env_steps"] for s in seen if "eval_success_rate" not in s] == [510, 510]
    lines = [json.loads(line) for line in (monitor.folder / "history.jsonl").read_text().splitlines()]
    assert [line["env_steps"] for line in lines] == [510, 500, 510]
    assert lines[1]["robot_time_s"] == 50.0 and lines[1]["eval_successes"] == 4


def test_run_help_prints(capsys):
    from cluster.rl_run import main

    with pytest.raises(SystemExit) as exit_:  # a '%' in a field's docstring breaks argparse's help
        main(["--help"])
    assert exit_.value.code == 0 and "--runtime.pace" in capsys.readouterr().out
