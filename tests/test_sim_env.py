"""The simulated SO-101 env: spaces, real rendering, determinism, physics, bounds, episode ends, bad input."""

import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from actors.robots.contract import GRIPPER_CLOSE, GRIPPER_OPEN, JOINT_RANGES_RAD, gripper_percent
from actors.robots.sim import ik, scene
from actors.robots.sim.env import FRONT, GRIPPER_STEP_DEG, STATE, WRIST, SO101SimEnv
from configs.env import EnvConfig, GripperConfig, ProcessorConfig, ResetConfig
from configs.errors import UserError


def _cfg(**reset) -> EnvConfig:
    cfg = EnvConfig()
    cfg.processor = ProcessorConfig(reset=ResetConfig(**reset))
    return cfg


def _drive_to(env, goal, gripper=1.0, steps=15):
    """Proportional end-effector moves toward ``goal``; returns the last (obs, reward, term, trunc, info)."""
    out = None
    for _ in range(steps):
        ref = env._ee_target
        move = np.clip((np.asarray(goal) - ref) / env.step_sizes, -1, 1)
        out = env.step(np.array([*move, gripper], dtype=np.float32))
    return out


@pytest.fixture(scope="module")
def env():
    env = SO101SimEnv(image_size=64)
    yield env
    env.close()


def test_spaces_keys_dtypes_and_shapes(env):
    obs, info = env.reset(seed=0)
    assert set(obs) == {FRONT, WRIST, STATE}
    assert obs[FRONT].shape == obs[WRIST].shape == (64, 64, 3)
    assert obs[FRONT].dtype == obs[WRIST].dtype == np.uint8
    assert obs[STATE].shape == (18,) and obs[STATE].dtype == np.float32
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (4,) and env.action_space.dtype == np.float32
    assert env.action_space.low.tolist() == [-1, -1, -1, 0] and env.action_space.high.tolist() == [1, 1, 1, 2]
    for key in ("is_success", "cube_pos", "ee_pos", "grasped", "cube_yaw", "jaw_axis"):
        assert key in info
    # State layout: joints (deg, gripper 0-100), joint velocities, end-effector xyz = the site, its velocity.
    np.testing.assert_allclose(obs[STATE][:5], env.joint_positions()[:5], atol=1e-4)
    np.testing.assert_allclose(obs[STATE][5], gripper_percent(env.joint_positions()[5]), atol=1e-4)
    np.testing.assert_allclose(obs[STATE][12:15], info["ee_pos"], atol=1e-6)
    obs, reward, terminated, truncated, info = env.step(np.array([1, 0, 0, 1], dtype=np.float32))
    assert env.observation_space.contains(obs)
    assert isinstance(reward, float) and reward == 0.0
    assert terminated is False and truncated is False
    assert obs[STATE][15] > 0.01  # moving +x shows up as end-effector velocity


def test_gymnasium_env_checker():
    env = SO101SimEnv(image_size=32)
    try:
        check_env(env, skip_render_check=False)
    finally:
        env.close()


def test_reset_with_a_seed_is_bitwise_reproducible(env):
    actions = [np.array([0.5, -0.3, -1.0, 0], dtype=np.float32), np.array([-1, 1, 0.2, 2], dtype=np.float32)]

    def rollout(seed):
        frames = [env.reset(seed=seed)[0]]
        frames += [env.step(a)[0] for a in actions]
        return frames

    first, second = rollout(7), rollout(7)
    for a, b in zip(first, second, strict=True):
        for key in a:
            assert np.array_equal(a[key], b[key]), key
    other = env.reset(seed=8)[1]["cube_pos"]
    assert not np.allclose(other, env.reset(seed=7)[1]["cube_pos"])


def test_cube_pose_is_randomised_within_the_spawn_area(env):
    poses = np.array([[*env.reset(seed=s)[1]["cube_pos"][:2], env.cube_yaw()] for s in range(12)])
    assert poses[:, 0].std() > 0.01 and poses[:, 1].std() > 0.02 and poses[:, 2].std() > 0.1
    assert (poses[:, 0] > 0.15).all() and (poses[:, 0] < 0.29).all() and (np.abs(poses[:, 1]) < 0.12).all()


def test_cameras_render_the_scene(env, tmp_path):
    obs, _ = env.reset(seed=0, options={"cube_xy": (0.2, 0.0), "cube_yaw": 0.3})
    front, wrist = obs[FRONT], obs[WRIST]
    for image in (front, wrist):
        assert image.std() > 10  # not blank
        red = (image[..., 0] > 150) & (image[..., 1] < 80) & (image[..., 2] < 80)
        assert red.sum() >= 4  # the red cube is in view of both cameras
    assert np.abs(front.astype(int) - wrist.astype(int)).mean() > 10
    moved = _drive_to(env, (0.25, 0.08, 0.15), steps=6)[0]
    assert np.abs(moved[FRONT].astype(int) - front.astype(int)).sum() > 0  # the arm moved in view
    assert np.array_equal(env.render(), env.observation()[FRONT])


def test_cube_moves_when_pushed(env):
    env.reset(seed=0, options={"cube_xy": (0.22, 0.0), "cube_yaw": 0.0})
    start = env.cube_position()
    _drive_to(env, (0.22, -0.08, 0.10), gripper=0.0, steps=10)  # beside the cube, gripper closed
    _drive_to(env, (0.22, -0.08, 0.02), gripper=0.0, steps=6)
    _drive_to(env, (0.22, 0.06, 0.02), gripper=0.0, steps=12)  # sweep through it
    assert env.cube_position()[1] - start[1] > 0.02


def test_workspace_bounds_clip_the_end_effector():
    cfg = EnvConfig()
    cfg.robot.end_effector_bounds = {"min": [0.15, -0.05, 0.05], "max": [0.25, 0.05, 0.15]}
    env = SO101SimEnv(cfg, render=False)
    env.reset(seed=0)
    low, high = (np.array(cfg.robot.end_effector_bounds[k]) for k in ("min", "max"))
    for action, bound in (([1, 1, 1, 1], high), ([-1, -1, -1, 1], low)):
        for _ in range(20):
            _, _, _, _, info = env.step(np.array(action, dtype=np.float32))
        np.testing.assert_allclose(info["ee_target"], bound, atol=1e-9)
        np.testing.assert_allclose(info["ee_pos"], bound, atol=0.005)


def test_time_limit_truncates_without_terminating():
    env = SO101SimEnv(_cfg(control_time_s=0.5), render=False)
    env.reset(seed=0)
    ends = [env.step(np.array([0, 0, 0, 1], dtype=np.float32))[2:4] for _ in range(5)]
    assert ends[:4] == [(False, False)] * 4
    assert ends[4] == (False, True)


def test_gripper_commands_move_the_gripper_and_changes_carry_the_penalty():
    cfg = _cfg()
    cfg.processor.gripper = GripperConfig(gripper_penalty=-0.05)
    env = SO101SimEnv(cfg, render=False)
    env.reset(seed=0, options={"cube_xy": (0.27, 0.1)})  # out of the way
    goals, penalties, angles = [env.joint_targets()[5]], [], [env.joint_positions()[5]]
    for command in (0, 0.4, 1, 1.6, 2):  # close, close (rounded), stay, open (rounded), open
        _, _, _, _, info = env.step(np.array([0, 0, 0, command], dtype=np.float32))
        goals.append(env.joint_targets()[5])
        penalties.append(info["discrete_penalty"])
        angles.append(info["gripper_deg"])
    assert np.diff(goals).tolist() == [
        -GRIPPER_STEP_DEG,
        -GRIPPER_STEP_DEG,
        0,
        GRIPPER_STEP_DEG,
        GRIPPER_STEP_DEG,
    ]
    assert penalties == [-0.05, 0.0, 0.0, -0.05, 0.0]
    assert angles[2] < angles[0] - 10 and angles[5] > angles[3] + 10  # the jaw follows


def test_bad_input_gives_one_line_user_errors(env):
    env.reset(seed=0)
    for bad in (np.zeros(3), np.zeros((1, 4)), [0, 0, float("nan"), 1], "left"):
        with pytest.raises(UserError) as err:
            env.step(bad)
        assert "\n" not in str(err.value)
    with pytest.raises(UserError, match=r"expected \(4,\)"):
        env.step(np.zeros(7, dtype=np.float32))
    with pytest.raises(UserError, match="pick_lift"):
        SO101SimEnv(task="stack", render=False)
    cfg = EnvConfig()
    cfg.robot.end_effector_bounds = {"min": [0.1, 0.0, 0.0], "max": [0.3, 0.2]}
    with pytest.raises(UserError, match="end_effector_bounds"):
        SO101SimEnv(cfg, render=False)
    with pytest.raises(UserError, match="6 joint positions"):
        SO101SimEnv(_cfg(fixed_reset_joint_positions=[0.0, 1.0]), render=False)


def test_joint_targets_drive_the_scene_and_reset_pose_is_honoured():
    fixed = [10.0, -20.0, 15.0, 80.0, 45.0, 30.0]
    env = SO101SimEnv(_cfg(fixed_reset_joint_positions=fixed), render=False)
    env.reset(seed=0)
    # The gripper entry is in the real arm's 0-100 units.
    np.testing.assert_allclose(env.joint_positions()[:5], fixed[:5], atol=1.0)
    np.testing.assert_allclose(gripper_percent(env.joint_positions()[5]), fixed[5], atol=1.0)
    goal = np.array([-15.0, 0.0, 20.0, 60.0, 0.0, 50.0])
    env.set_joint_targets(goal)
    env.step_physics(1.0)
    np.testing.assert_allclose(env.joint_positions(), goal, atol=1.5)
    np.testing.assert_allclose(env.joint_targets(), goal)
    np.testing.assert_allclose(env.ee_position(), ik.ee_position(env.joint_positions()), atol=1e-6)
    # A step after servo-style driving continues from there rather than jumping back.
    _, _, _, _, info = env.step(np.array([0, 0, 0, 1], dtype=np.float32))
    assert np.linalg.norm(info["ee_pos"] - ik.ee_position(goal)) < 0.01
    env.set_joint_targets([500, 0, 0, 0, 0, 0])  # out of range: clipped to the joint limit
    assert env.joint_targets()[0] == scene.JOINT_RANGES_DEG["shoulder_pan"][1]


def test_ik_round_trip_keeps_fingers_down():
    q = np.array([0.0, -10.0, 10.0, 85.0, 90.0, 30.0])
    start = ik.ee_position(q)
    for delta in ([0.02, 0.0, 0.0], [0.0, -0.03, -0.02], [-0.01, 0.02, 0.03]):
        target = ik.solve_delta(q, delta)
        np.testing.assert_allclose(ik.ee_position(target), start + delta, atol=1e-3)
        assert target[4] == q[4] and target[5] == q[5]  # wrist_roll and gripper untouched
    kin = ik.ArmKinematics(iterations=40)
    low = kin.solve_position(q, [0.22, 0.05, 0.02])
    assert kin.finger_direction(low)[2] < -0.99


def test_bench_env_prints_the_json_keys(capsys, monkeypatch):
    from benchmarks import env as bench

    # machine_info() imports torch (seconds); the slow side-by-side test below runs the real one.
    monkeypatch.setattr(bench, "machine_info", lambda: {"cores": 2})
    assert (
        bench.main(["--json", "--skip-gym-hil", "--windows", "1", "--ours-steps", "3", "--warmup", "1"]) == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert {"ours_steps_per_s", "gym_hil_steps_per_s", "ratio", "machine"} <= set(result)
    assert result["ours_steps_per_s"] > 0
    assert bench.main(["--windows", "0"]) == 2


@pytest.mark.slow
def test_bench_env_times_gym_hil_side_by_side(capsys):
    from benchmarks import env as bench

    args = ["--json", "--windows", "1", "--ours-steps", "2", "--gym-hil-steps", "1", "--warmup", "0"]
    assert bench.main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["gym_hil_steps_per_s"] > 0 and result["ratio"] > 0
    assert result["gym_hil"]["env"] == "gym_hil/PandaPickCubeBase-v0"


def test_gripper_state_is_on_the_real_arms_0_100_scale():
    """Sim and real arm report the gripper in one unit: 0 = closed at range_min, 100 = fully open."""
    env = SO101SimEnv(_cfg(), render=False)
    obs, _ = env.reset(seed=0)
    low, high = (np.rad2deg(v) for v in JOINT_RANGES_RAD["gripper"])
    degrees = env.joint_positions()[5]
    assert obs[STATE][5] == pytest.approx((degrees - low) / (high - low) * 100.0, abs=1e-3)
    assert 0.0 < obs[STATE][5] < 100.0
    for _ in range(6):  # close fully: the state approaches 0, not the joint's negative degrees
        obs, *_ = env.step(np.array([0, 0, 0, GRIPPER_CLOSE], dtype=np.float32))
    assert obs[STATE][5] < 10.0 and env.joint_positions()[5] < 5.0
    assert obs[STATE][11] == pytest.approx(0.0, abs=50.0)  # velocity in the same units
    for _ in range(6):
        obs, *_ = env.step(np.array([0, 0, 0, GRIPPER_OPEN], dtype=np.float32))
    assert obs[STATE][5] > 50.0


def test_an_env_left_open_exits_without_a_gl_traceback(tmp_path):
    """MuJoCo's EGL display is terminated at exit; a renderer still open then failed in its finalizer."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "left_open.py"
    script.write_text(
        "from actors.robots.sim.env import SO101SimEnv\n"
        "env = SO101SimEnv(task='reach_grasp')\n"
        "env.reset(seed=0)\n"
        "env.step(env.action_space.sample())\n"  # no close(): the interpreter exits with it open
    )
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=root, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Exception ignored" not in done.stderr, done.stderr
