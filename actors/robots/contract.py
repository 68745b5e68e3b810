"""The one observation/action contract of both SO-101 backends (MuJoCo and the real arm).

Observation (dict, LeRobot keys)::

    observation.images.front  (H, W, 3) uint8   fixed camera facing the arm
    observation.images.wrist  (H, W, 3) uint8   camera on the gripper
    observation.state         (18,) float32     STATE_LAYOUT below

Action float32 (4,) = [dx, dy, dz, gripper]: end-effector deltas in [-1, 1] (times
``robot.end_effector_step_sizes`` metres) and LeRobot's discrete gripper command, whose single
definition is ``learner.types.Gripper`` (0 close, 1 stay, 2 open): datasets, the env, the
intervention sources, the replay and the grasp critic all read the same numbers.

Units: the five arm joints in degrees (zero at mid-range, LeRobot's ``use_degrees``), the gripper
on LeRobot's 0-100 scale (0 = fully closed at the calibrated ``range_min``, 100 = fully open), so a
policy trained in the simulator reads the same numbers as on the arm.
"""

from __future__ import annotations

import math

import numpy as np

from learner.types import Gripper

FRONT, WRIST, STATE = "observation.images.front", "observation.images.wrist", "observation.state"
IMAGE_KEYS = (FRONT, WRIST)
STATE_DIM = 18
STATE_LAYOUT = (
    "[0:6]   joint positions: degrees, gripper 0-100",
    "[6:12]  joint velocities: degrees/s, gripper 0-100 units/s",
    "[12:15] end-effector position: metres, arm base frame",
    "[15:18] end-effector velocity: metres/s",
)
ACTION_DIM = 4
ACTION_NAMES = ["delta_x", "delta_y", "delta_z", "gripper"]

GRIPPER_CLOSE, GRIPPER_STAY, GRIPPER_OPEN = (float(g) for g in (Gripper.CLOSE, Gripper.STAY, Gripper.OPEN))

MOTORS: dict[str, int] = {
    "shoulder_pan": 1,
    "shoulder_lift": 2,
    "elbow_flex": 3,
    "wrist_flex": 4,
    "wrist_roll": 5,
    "gripper": 6,
}
"""LeRobot's SO-101 motor names and bus ids, in state order."""

JOINT_RANGES_RAD: dict[str, tuple[float, float]] = {
    "shoulder_pan": (-1.920, 1.920),
    "shoulder_lift": (-1.745, 1.745),
    "elbow_flex": (-1.690, 1.690),
    "wrist_flex": (-1.658, 1.658),
    "wrist_roll": (-2.744, 2.841),
    "gripper": (-0.175, 1.745),
}
"""Joint ranges of the SO-ARM100 ``so101_new_calib`` model; the gripper opens toward its upper limit."""

GRIPPER_RANGE_DEG = tuple(math.degrees(v) for v in JOINT_RANGES_RAD["gripper"])


def gripper_percent(degrees: float | np.ndarray) -> float | np.ndarray:
    """Gripper joint angle (degrees) -> LeRobot's 0-100 (range_min..range_max of the calibration)."""
    low, high = GRIPPER_RANGE_DEG
    return (np.asarray(degrees) - low) * (100.0 / (high - low))


def gripper_degrees(percent: float | np.ndarray) -> float | np.ndarray:
    """LeRobot's 0-100 gripper position -> joint angle in degrees (inverse of ``gripper_percent``)."""
    low, high = GRIPPER_RANGE_DEG
    return low + np.asarray(percent) * ((high - low) / 100.0)


def neutral_action() -> np.ndarray:
    """No motion, gripper stays: what the arm receives when nobody commands it."""
    return np.array([0.0, 0.0, 0.0, GRIPPER_STAY], dtype=np.float32)


def make_action(dx: float, dy: float, dz: float, gripper: float = GRIPPER_STAY) -> np.ndarray:
    """A 4-value action with the deltas clipped to [-1, 1]."""
    delta = np.clip([dx, dy, dz], -1.0, 1.0)
    return np.array([*delta, gripper], dtype=np.float32)


def gripper_command(action: np.ndarray) -> Gripper:
    """The discrete gripper command of an action (rounded, clamped to close..open)."""
    return Gripper(int(np.clip(np.rint(action[3]), Gripper.CLOSE, Gripper.OPEN)))
