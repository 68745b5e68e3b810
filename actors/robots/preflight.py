"""Check a real-arm config before anything moves: each problem named in one line, with its fix.

    problems = check_env(cfg.env)            # calibration files, cameras, workspace, reset pose, fps
    problems = check_run(cfg)                # the same, plus the classifier and the demo dataset
    raise_problems(problems, "the rehearsal")   # one UserError naming them all

The rehearsal (``--rehearse``) runs these first; they read files only, so they run anywhere.

    calibration  robot.calibration_dir/<robot.id>.json and teleop.calibration_dir/<teleop.id>.json
                 exist, are LeRobot SO-101 calibrations, and hold the reset pose within their ranges
    cameras      robot.cameras names exactly the cameras the env reads ('front', 'wrist'), each at
                 least env.image_size in both sides (the env resizes frames to that square)
    classifier   its cameras are the robot's and the learner's, at env.image_size
    workspace    end_effector_bounds given, min < max, above the table and within the arm's reach;
                 the reset pose's hand inside them, and a pose the end-effector control can step from
    fps          1-30 Hz (the bus reads six servos twice and renders two cameras per step), and the
                 demo dataset's fps
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np

from actors.robots.contract import MOTORS
from configs.env import EnvConfig, ResetConfig
from configs.errors import UserError

CAMERAS = ("front", "wrist")
MAX_FPS = 30
HOME = (-2.9, -21.9, 12.7, 94.0, 90.0, 50.0)
"""A reset pose the end-effector control steps well from (the simulator's home): the hand 10 cm up."""
REACH_SOLVES, REACH_TOLERANCE_M = 5, 0.01
"""Each corner of the workspace box must be reachable: inverse kinematics, warm-started this many
times, ends within this distance of it."""
MAX_STEP_M = 0.05
SINGULAR_FACTOR = 3.0
"""A reset pose is unusable when one end-effector step from it needs this many times
max_relative_target degrees of some joint (the inverse kinematics jumps branch there)."""


def _calibration(path: Path, kind: str, port: str | None, device_id: str, problems: list[str]) -> dict | None:
    from actors.robots.so101.connect import load_calibration

    try:
        return load_calibration(path, kind, port, device_id)
    except UserError as err:
        problems.append(str(err))
        return None


def _calibrated_degrees(entry: dict[str, Any]) -> tuple[float, float]:
    """A motor's calibrated range in LeRobot degrees (what ``use_degrees`` reads)."""
    half = (entry["range_max"] - entry["range_min"]) / 2 * 360 / 4095
    return -half, half


def check_calibration(cfg: EnvConfig, problems: list[str]) -> None:
    from actors.robots.so101.env import default_calibration_dir
    from actors.robots.so101.leader_arm import default_leader_calibration_dir

    reset = cfg.processor.reset or ResetConfig()
    home = reset.fixed_reset_joint_positions
    robot_dir = Path(cfg.robot.calibration_dir) if cfg.robot.calibration_dir else default_calibration_dir()
    follower = _calibration(
        robot_dir / f"{cfg.robot.id}.json", "follower", cfg.robot.port, cfg.robot.id, problems
    )
    if cfg.teleop.type == "leader":
        teleop_dir = (
            Path(cfg.teleop.calibration_dir)
            if cfg.teleop.calibration_dir
            else default_leader_calibration_dir()
        )
        _calibration(teleop_dir / f"{cfg.teleop.id}.json", "leader", cfg.teleop.port, cfg.teleop.id, problems)
    if follower is None or home is None or len(home) != len(MOTORS):
        return
    for name, value in zip(MOTORS, home, strict=True):
        if name == "gripper":
            continue
        low, high = _calibrated_degrees(follower[name])
        if not low <= value <= high:
            problems.append(
                f"processor.reset.fixed_reset_joint_positions puts {name} at {value:g} degrees, outside its "
                f"calibrated range [{low:.1f}, {high:.1f}] in {robot_dir / (cfg.robot.id + '.json')}: choose a "
                "reset pose inside the range (or recalibrate)"
            )


def check_cameras(cfg: EnvConfig, problems: list[str]) -> None:
    from actors.robots.cameras import ROTATIONS

    cameras = cfg.robot.cameras
    for name in CAMERAS:
        if name not in cameras:
            problems.append(
                f"robot.cameras has no '{name}' camera (it has {sorted(cameras) or 'none'}): the env reads "
                f"'front' and 'wrist'; add robot.cameras.{name}"
            )
    for name, camera in cameras.items():
        if name not in CAMERAS:
            problems.append(
                f"robot.cameras.{name}: the env reads only 'front' and 'wrist'; rename or remove the '{name}' camera"
            )
            continue
        if camera.width < cfg.image_size or camera.height < cfg.image_size:
            problems.append(
                f"robot.cameras.{name} is {camera.width}x{camera.height} but env.image_size is {cfg.image_size}: its "
                f"frames would be upsampled; capture at least {cfg.image_size}x{cfg.image_size} or lower env.image_size"
            )
        if camera.rotation not in ROTATIONS:
            problems.append(f"robot.cameras.{name}.rotation is {camera.rotation}; use one of 0, 90, 180, -90")
        if camera.fps < cfg.fps:
            problems.append(
                f"robot.cameras.{name}.fps is {camera.fps}, below env.fps {cfg.fps}: frames would repeat; "
                f"set robot.cameras.{name}.fps to at least {cfg.fps}"
            )


def check_workspace(cfg: EnvConfig, problems: list[str]) -> None:
    from actors.robots.sim.ik import ArmKinematics

    robot = cfg.robot
    steps = robot.end_effector_step_sizes or {}
    for axis in "xyz":
        value = steps.get(axis, 0.02)
        if not 0 < value <= MAX_STEP_M:
            problems.append(
                f"robot.end_effector_step_sizes.{axis} is {value}: use a step in (0, {MAX_STEP_M}] metres (0.02 is usual)"
            )
    if robot.max_relative_target is None:
        problems.append(
            "robot.max_relative_target is null: nothing bounds a joint's step toward its target; set it (10 degrees)"
        )
    bounds = robot.end_effector_bounds
    if not bounds:
        problems.append(
            'robot.end_effector_bounds is not set: the hand could go anywhere; set {"min": [x, y, z], "max": '
            "[x, y, z]} in metres (configs/so101_rl.json has a table-top box)"
        )
        return
    try:
        low = np.asarray(bounds["min"], dtype=float).reshape(3)
        high = np.asarray(bounds["max"], dtype=float).reshape(3)
    except (KeyError, TypeError, ValueError):
        problems.append(
            f'robot.end_effector_bounds {bounds} is malformed: give {{"min": [x, y, z], "max": [x, y, z]}}'
        )
        return
    if not np.all(low < high):
        problems.append(f"robot.end_effector_bounds: every 'min' must be below its 'max', got {bounds}")
        return
    if low[2] < 0.0:
        problems.append(
            f"robot.end_effector_bounds min z is {low[2]:g}: below the table (z = 0); raise it (0.012 keeps the "
            "fingertips off the table)"
        )
    kinematics = ArmKinematics()
    reset = cfg.processor.reset or ResetConfig()
    home = reset.fixed_reset_joint_positions
    seed = np.asarray(home if home is not None and len(home) == len(MOTORS) else HOME, dtype=float)
    for corner in itertools.product(*zip(low, high, strict=True)):
        joints = seed.copy()
        for _ in range(REACH_SOLVES):
            joints = kinematics.solve_position(joints, np.asarray(corner))
        miss = float(np.linalg.norm(kinematics.ee_position(joints) - np.asarray(corner)))
        if miss > REACH_TOLERANCE_M:
            problems.append(
                f"robot.end_effector_bounds corner {np.round(corner, 3).tolist()} is {miss * 100:.0f} cm out of the "
                "SO-101's reach: shrink the box to where the arm can go"
            )
            break
    if home is None:
        return
    if len(home) != len(MOTORS):
        problems.append(
            f"processor.reset.fixed_reset_joint_positions has {len(home)} values; give 6 (degrees, gripper 0-100)"
        )
        return
    home = np.asarray(home, dtype=float)
    hand = kinematics.ee_position(home)
    if np.any(hand < low - 1e-3) or np.any(hand > high + 1e-3):
        problems.append(
            f"the reset pose puts the hand at {np.round(hand, 3).tolist()}, outside robot.end_effector_bounds: "
            "choose a reset pose inside the box, or widen it"
        )
    limit = float(robot.max_relative_target or 10.0)
    step = np.array([steps.get(a, 0.02) for a in "xyz"])
    worst = 0.0
    for direction in np.vstack([np.eye(3), -np.eye(3)]):
        joints = kinematics.solve_delta(home, direction * step)
        worst = max(worst, float(np.max(np.abs(joints[:5] - home[:5]))))
    if worst > SINGULAR_FACTOR * limit:
        problems.append(
            f"the reset pose {home.tolist()} is one the end-effector control cannot step from: one "
            f"{step.max():g} m step needs {worst:.0f} degrees of a joint (max_relative_target {limit:g}); use a pose "
            f"with the hand above the table, e.g. {list(HOME)}"
        )


def check_fps(cfg: EnvConfig, problems: list[str]) -> None:
    if not 0 < cfg.fps <= MAX_FPS:
        problems.append(
            f"env.fps is {cfg.fps}: the SO-101 loop holds 1-{MAX_FPS} Hz (HIL-SERL runs at 10); set env.fps=10"
        )


def check_env(cfg: EnvConfig) -> list[str]:
    """Every problem of a real-arm env config, one line each (empty: good to go)."""
    problems: list[str] = []
    check_fps(cfg, problems)
    check_calibration(cfg, problems)
    check_cameras(cfg, problems)
    check_workspace(cfg, problems)
    return problems


def check_run(cfg) -> list[str]:
    """``check_env`` plus the run's classifier (cameras, image size) and demo dataset (fps)."""
    env = cfg.env
    problems = check_env(env)
    cameras = [f"observation.images.{name}" for name in CAMERAS if name in env.robot.cameras]
    for key in cfg.learner.image_keys:
        if key not in cameras:
            problems.append(
                f"learner.image_keys has '{key}' but the robot's cameras give {cameras}; make learner.image_keys "
                "the robot's cameras"
            )
    classifier = cfg.classifier()
    if cfg.reward.source == "classifier":
        path = classifier.pretrained_path if classifier is not None else None
        if not path:
            problems.append(
                "reward.source is 'classifier' but env.processor.reward_classifier.pretrained_path is not set: "
                "point it at the trained checkpoint (hilserl train-reward)"
            )
        elif not Path(path).is_dir():
            problems.append(
                f"classifier checkpoint {path} does not exist: train one with hilserl train-reward, or fix "
                "env.processor.reward_classifier.pretrained_path"
            )
        else:
            from actors.roles.reward import check_checkpoint_matches

            try:
                check_checkpoint_matches(path, cameras, env.image_size)
            except UserError as err:
                problems.append(str(err))
    if cfg.demo_dataset:
        info = Path(cfg.demo_dataset) / "meta" / "info.json"
        if not info.is_file():
            problems.append(
                f"demo_dataset {cfg.demo_dataset} is not a LeRobot dataset (no meta/info.json): record one with "
                "hilserl record, or unset demo_dataset"
            )
        else:
            fps = json.loads(info.read_text()).get("fps")
            if fps is not None and int(fps) != int(env.fps):
                problems.append(
                    f"demo_dataset {cfg.demo_dataset} was recorded at {fps} fps but env.fps is {env.fps}: record the "
                    "demos at the run's rate (or set env.fps)"
                )
    return problems


def raise_problems(problems: list[str], what: str) -> None:
    """One UserError naming every problem (one line: ``N problems: (1) ...; (2) ...``)."""
    if not problems:
        return
    if len(problems) == 1:
        raise UserError(f"{what}: {problems[0]}")
    listed = "; ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
    raise UserError(f"{what}: {len(problems)} problems in the config: {listed}")
