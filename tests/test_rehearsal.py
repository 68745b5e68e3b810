"""The rehearsal (``--rehearse``): the real-arm presets on simulated hardware, through the real entry points.

The follower is a simulated STS3215 bus driving the MuJoCo scene (LeRobot's SO101Follower over the
Feetech SDK), the leader a second bus that the scripted person moves and LeRobot's SO101Leader reads
back, the success key a key event in the leader source's keyboard logic. Slow: LeRobot's robot
classes, MuJoCo in the bus process, and (for the run) two local Ray nodes.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from actors.robots.servo_sim.arm import sim_calibration, write_calibration_file
from configs.errors import UserError
from tests.rl_fixtures import KEYS, SIZE, write_classifier

pytestmark = pytest.mark.slow
ROOT = Path(__file__).parents[1]
CAMERAS = {"width": 64, "height": 48, "fps": 30}  # small frames (rendered at this size, resized to SIZE)
TINY_LEARNER = {
    "image_keys": list(KEYS),
    "batch_size": 8,
    "hidden_dims": [32, 32],
    "latent_dim": 16,
    "state_latent_dim": 8,
    "image_embedding_pooling_dim": 2,
    "allow_random_vision_weights": True,
    "online_capacity": 2000,
    "demo_capacity": 2000,
    "device": "cpu",
    "bc_weight": 1.0,
}


def calibration_dir(tmp_path: Path) -> Path:
    """The user's calibration files, as lerobot-calibrate leaves them (here: the simulated arm's)."""
    folder = tmp_path / "calib"
    for arm in ("follower", "leader"):
        write_calibration_file(folder / f"{arm}.json", sim_calibration())
    return folder


def preset(name: str, tmp_path: Path, env_changes) -> Path:
    """A copy of ``configs/<name>`` with tiny sizes and the test's calibration folder."""
    cfg = json.loads((ROOT / "configs" / name).read_text())
    env = cfg.get("env", cfg)
    env["image_size"] = SIZE
    for camera in env["robot"]["cameras"].values():
        camera.update(CAMERAS)
    calib = str(calibration_dir(tmp_path))
    env["robot"]["calibration_dir"] = env["teleop"]["calibration_dir"] = calib
    env_changes(env)
    path = tmp_path / name
    path.write_text(json.dumps(cfg, indent=2))
    return path


# ----- the config check: every problem, one line each -----
def test_the_config_check_names_each_problem_in_one_line(tmp_path):
    from actors.robots.preflight import check_env, raise_problems
    from configs.env import EnvConfig
    from configs.parsing import parse_config

    good = parse_config(
        EnvConfig, ["--config_path", str(preset("so101_record.json", tmp_path, lambda e: None))]
    )
    assert check_env(good) == []

    bad = copy.deepcopy(good)
    bad.fps = 0
    bad.robot.cameras.pop("wrist")
    bad.robot.cameras["front"].width = 16  # below image_size
    bad.robot.end_effector_bounds = {"min": [0.12, -0.2, -0.05], "max": [0.6, 0.2, 0.22]}
    bad.processor.reset.fixed_reset_joint_positions = [-0.4, -104.84, 97.05, 44.09, 89.45, 4.35]
    bad.teleop.calibration_dir = str(tmp_path / "nowhere")
    problems = check_env(bad)
    expected = [
        "env.fps is 0",
        f"calibration file {tmp_path / 'nowhere' / 'leader.json'} is missing",
        "shoulder_lift at -104.84 degrees, outside its calibrated range",
        "elbow_flex at 97.05 degrees, outside its calibrated range",
        "no 'wrist' camera",
        "robot.cameras.front is 16x48 but env.image_size is 32",
        "min z is -0.05: below the table",
        "out of the SO-101's reach",
        "cannot step from",
    ]
    assert len(problems) == len(expected), problems
    for problem, text in zip(problems, expected, strict=True):
        assert text in problem and "\n" not in problem
    with pytest.raises(UserError) as err:
        raise_problems(problems, "rehearsal refused")
    assert "\n" not in str(err.value) and f"{len(expected)} problems in the config: (1) env.fps is 0" in str(
        err.value
    )


def test_the_run_check_compares_the_classifier_with_the_cameras(tmp_path):
    from actors.robots.preflight import check_run
    from configs.parsing import parse_config
    from configs.rl import TrainRLConfig

    classifier = write_classifier(tmp_path / "clf" / "pretrained_model", size=SIZE + 8, keys=(KEYS[0],))
    path = preset("so101_rl.json", tmp_path, lambda e: None)
    argv = [
        "--config_path",
        str(path),
        "--demo_dataset=null",
        "--learner.image_keys=[observation.images.front,observation.images.side]",
    ]
    cfg = parse_config(
        TrainRLConfig, [*argv, f"--env.processor.reward_classifier.pretrained_path={classifier}"]
    )
    problems = check_run(cfg)
    assert any("learner.image_keys has 'observation.images.side'" in p for p in problems), problems
    assert any(f"trained on {SIZE + 8}x{SIZE + 8} 'observation.images.front' images" in p for p in problems)
    cfg = parse_config(
        TrainRLConfig, [*argv, f"--env.processor.reward_classifier.pretrained_path={tmp_path}/none"]
    )
    assert any(f"classifier checkpoint {tmp_path}/none does not exist" in p for p in check_run(cfg))


# ----- `hilserl record --rehearse`: the person drives, presses success, hands back -----
def test_record_rehearsal_through_the_entry_point(tmp_path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from actors.loop.record import main as record_main

    def env_changes(env):
        env["processor"]["reset"]["control_time_s"] = 4.0
        env["number_of_steps_after_success"] = 20

    root = tmp_path / "dataset"
    argv = ["--config_path", str(preset("so101_record.json", tmp_path, env_changes)), "--rehearse"]
    assert record_main([*argv, "--num_episodes=1", "--video=false", f"--dataset_root={root}"]) == 0
    dataset = LeRobotDataset("local/so101_reach_grasp_cube_reward", root=root, video_backend="pyav")
    assert dataset.num_episodes == 1
    rewards = [float(dataset[i]["next.reward"]) for i in range(dataset.num_frames)]
    interventions = [
        bool(dataset[i]["complementary_info.is_intervention"]) for i in range(dataset.num_frames)
    ]
    assert sum(rewards) == 21 and rewards[-1] == 1.0  # the success key, then 20 more frames
    assert interventions[1] and not interventions[-1]  # the leader took over, and was handed back
    assert dataset[0]["observation.images.front"].shape == (3, SIZE, SIZE)


# ----- `hilserl run --rehearse` on two local Ray nodes, the robot on the one with the arm -----
def two_nodes(cluster_class, attempts: int = 3):
    """A head (no robot resource) and a node offering {"so101": 1}. Ray gives a raylet a fixed 30 s
    to register; a saturated machine can miss that, so the cluster is built again (as start_ray does)."""
    for attempt in range(attempts):
        cluster = cluster_class(
            initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False}
        )
        try:
            return cluster, cluster.add_node(num_cpus=1, resources={"so101": 1})
        except Exception:
            cluster.shutdown()
            if attempt == attempts - 1:
                raise


def test_rl_rehearsal_on_two_nodes_through_the_entry_point(tmp_path):
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    from cluster.rl_run import TrainRLConfig, _print_run, parse_config, run
    from configs.env import rehearse_argv

    def env_changes(env):
        env["processor"]["reset"]["control_time_s"] = 6.0
        env["teleop"].update({"schedule": "always"})  # the person drives every episode: takeover, success

    classifier = write_classifier(tmp_path / "clf" / "pretrained_model")
    config = preset("so101_rl.json", tmp_path, env_changes)
    if ray.is_initialized():
        ray.shutdown()
    cluster, arm_node = two_nodes(Cluster)
    try:
        argv = [
            "--config_path",
            str(config),
            "--rehearse",
            "--demo_dataset=null",
            f"--output_dir={tmp_path / 'runs'}",
            "--run_name=rehearsal",
            f"--env.processor.reward_classifier.pretrained_path={classifier}",
            f"--learner.vision_model_name={tmp_path / 'no-weights'}",
            f"--runtime.ray_address={cluster.address}",
            "--runtime.learner_gpus=0",
            "--runtime.total_env_steps=70",
            "--runtime.learning_starts=16",
            "--runtime.chunk_size=4",
            "--runtime.weight_push_every=2",
            "--runtime.progress=false",
            "--runtime.dashboard=false",
        ]
        argv += [
            f"--learner.{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in TINY_LEARNER.items()
        ]
        # `hilserl run`'s main is parse + run + print; run's summary also says where each robot ran.
        summary = run(parse_config(TrainRLConfig, rehearse_argv(argv, "--env.rehearse=true")))
        _print_run(summary)
        assert summary["robots"][0].node_id == arm_node.node_id  # on the node offering 'so101'
        assert summary["robots"][0].env_steps >= 70
        # The scene's truth judges the classifier on the policy's frames (before each takeover and
        # after each hand-back), as the simulator's does: a rehearsal's learning figure has a truth.
        agreement = summary["robots"][0].agreement
        assert agreement["tp"] + agreement["fp"] + agreement["fn"] + agreement["tn"] > 0
        folder = tmp_path / "runs" / "rehearsal"
        report = json.loads((folder / "rehearsal-robot-0.json").read_text())
        person = report["person"]
        assert person["takeovers"] >= 1 and person["leader_steps"] >= 1  # automatic takeover, read back
        assert person["success_keys"] >= 1  # the success key, through the keyboard logic
        assert person["leader_releases"] >= 1  # the leader's torque was off after each reset
        assert report["exit_torques"] == {"leader": [0] * 6, "follower": [0] * 6}
    finally:
        ray.shutdown()
        cluster.shutdown()


# ----- faults during an RL run: a safe stop, one line, a clean end with the final checkpoint -----
FAULTS = {
    "servo": (lambda rig: rig.follower.inject_fault(4, "overheat"), "wrist_flex (id 4) reports overheat"),
    "bus": (lambda rig: rig.follower.unplug(), "vanished"),
    "leader": (lambda rig: rig.leader.unplug(), "vanished while reading the leader arm"),
    "camera": (lambda rig: rig.lose_camera("wrist"), "camera 'wrist' returned no frame"),
}


@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_fault_mid_run_stops_the_arm_safely_and_ends_the_run_cleanly(tmp_path, fault):
    from actors.roles.local import LocalRunner
    from cluster.rl_run import TrainRLConfig, parse_config
    from configs.env import rehearse_argv

    inject, expected = FAULTS[fault]
    config = preset("so101_rl.json", tmp_path, lambda env: env["teleop"].update({"schedule": "always"}))
    argv = ["--config_path", str(config), "--rehearse", "--demo_dataset=null", "--reward.source=sparse"]
    argv += [
        f"--output_dir={tmp_path / 'runs'}",
        "--run_name=fault",
        f"--learner.vision_model_name={tmp_path / 'w'}",
    ]
    argv += [
        "--runtime.total_env_steps=200",
        "--runtime.learning_starts=8",
        "--runtime.chunk_size=4",
        "--runtime.progress=false",
    ]
    argv += [f"--learner.{k}={json.dumps(v) if isinstance(v, list) else v}" for k, v in TINY_LEARNER.items()]
    runner = LocalRunner(parse_config(TrainRLConfig, rehearse_argv(argv, "--env.rehearse=true")))
    robot = runner.robots[0]
    rig = robot.env.rehearsal

    def fault_at_step_12() -> None:
        if robot.steps == 12:
            inject(rig)

    robot.on_step.append(fault_at_step_12)
    summary = runner.run()
    status = summary["robots"][0]
    assert expected in status.fault and "\n" not in status.fault  # one line, naming the problem
    assert status.finished and 12 <= status.env_steps < 200  # its share ended there
    assert status.acked == status.env_steps  # every transition it made was acknowledged
    assert (Path(summary["folder"]) / "checkpoints" / "latest").exists()  # the final checkpoint
    report = json.loads((Path(summary["folder"]) / "rehearsal-robot-0.json").read_text())
    assert report["exit_torques"] == {"leader": [0] * 6, "follower": [0] * 6}  # nothing left driven
