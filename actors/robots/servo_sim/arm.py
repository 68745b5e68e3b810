"""The SO-101 as seen on its servo bus: motor names and ids, joint ranges, and a matching calibration.

LeRobot's ``SO101Follower``/``SO101Leader`` use ids 1-6 in this order, degrees for the five arm joints
and 0-100 for the gripper. The ranges follow the SO-ARM100 ``so101_new_calib`` model (joint zero at
mid-range, so LeRobot's 0 degrees is the model's 0 rad); wrist_roll is a full turn, as LeRobot's
calibration records it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from actors.robots.contract import JOINT_RANGES_RAD, MOTORS
from actors.robots.servo_sim.registers import RESOLUTION, ServoRegisters

CENTER = RESOLUTION // 2  # encoder steps at joint zero when the homing offset is 0
STEPS_PER_RAD = RESOLUTION / (2 * math.pi)


def rad_to_steps(angle: float) -> float:
    return CENTER + angle * STEPS_PER_RAD


def steps_to_rad(steps: float) -> float:
    return (steps - CENTER) / STEPS_PER_RAD


def sim_calibration() -> dict[str, dict[str, int]]:
    """A LeRobot calibration (motor -> id, drive_mode, homing_offset, range_min, range_max) for the
    simulated arm: homing offset 0 and the model's joint ranges in encoder steps."""
    calibration = {}
    for name, motor_id in MOTORS.items():
        low, high = JOINT_RANGES_RAD[name]
        range_min, range_max = int(math.floor(rad_to_steps(low))), int(math.ceil(rad_to_steps(high)))
        if name == "wrist_roll":
            range_min, range_max = 0, RESOLUTION - 1  # LeRobot records wrist_roll as a full turn
        calibration[name] = {
            "id": motor_id,
            "drive_mode": 0,
            "homing_offset": 0,
            "range_min": range_min,
            "range_max": range_max,
        }
    return calibration


def write_calibration_file(path: str | Path, calibration: dict[str, dict[str, int]]) -> Path:
    """Write a calibration in LeRobot's JSON layout (what ``Robot._save_calibration`` writes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(calibration, indent=4) + "\n")
    return path


def apply_calibration(servos: list[ServoRegisters], calibration: dict[str, dict[str, int]]) -> None:
    """Put a calibration into the servos' EEPROM registers, as LeRobot's ``write_calibration`` would."""
    by_id = {servo.servo_id: servo for servo in servos}
    for entry in calibration.values():
        servo = by_id.get(entry["id"])
        if servo is None:
            continue
        servo.set("Homing_Offset", entry["homing_offset"])
        servo.set("Min_Position_Limit", entry["range_min"])
        servo.set("Max_Position_Limit", entry["range_max"])
        servo.set("Goal_Position", servo.present_position())
