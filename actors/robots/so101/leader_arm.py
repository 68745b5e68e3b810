"""The SO-101 leader arm, read for teleoperation: joint positions in degrees, torque control.

    leader = SO101LeaderArm.from_config(cfg.teleop)   # teleop.port, teleop.id, teleop.calibration_dir
    joints = leader.read_joint_positions()            # (6,) degrees, gripper 0-100
    leader.disable_torque()                           # after every follower reset, so the human can move it
    leader.close()                                    # torque off, port closed

A thin layer over LeRobot's ``SO101Leader`` with the same checks as the follower (port exists,
every servo answers without error bits, calibration file present and matching the motors), so a bad
setup ends in one line instead of LeRobot's interactive calibration prompt.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from actors.robots.contract import MOTORS
from actors.robots.so101.connect import (
    BUS_ERRORS,
    calibrate_command,
    check_port,
    check_registers_match,
    configure_with_retries,
    connect_bus,
    load_calibration,
    port_is_gone,
    port_lost_error,
    probe_servos,
    safe_stop,
)
from configs.env import EnvConfig, TeleopConfig
from configs.errors import UserError

logger = logging.getLogger(__name__)

PORT_OPTION = "teleop.port"


def default_leader_calibration_dir() -> Path:
    from lerobot.utils.constants import HF_LEROBOT_CALIBRATION, TELEOPERATORS

    return Path(HF_LEROBOT_CALIBRATION) / TELEOPERATORS / "so_leader"


class SO101LeaderArm:
    """A connected SO-101 leader with torque off (the human back-drives it)."""

    def __init__(
        self, port: str | None, leader_id: str = "leader", calibration_dir: str | Path | None = None
    ):
        self.port = check_port(port, PORT_OPTION)
        directory = Path(calibration_dir) if calibration_dir else default_leader_calibration_dir()
        self.calibration_path = directory / f"{leader_id}.json"
        self.calibration = load_calibration(self.calibration_path, "leader", self.port, leader_id)
        probe_servos(self.port, PORT_OPTION)
        from lerobot.teleoperators.so_leader import SO101Leader, SO101LeaderConfig

        self.device = SO101Leader(SO101LeaderConfig(port=self.port, id=leader_id, calibration_dir=directory))
        self._closed = False
        try:
            connect_bus(self.device.bus, self.port, PORT_OPTION)
            fix = calibrate_command("leader", self.port, leader_id, directory)
            check_registers_match(self.device.bus, self.calibration, self.calibration_path, fix)
            configure_with_retries(self.device)  # torque off, position mode
        except UserError:
            self.close()
            raise
        except BUS_ERRORS as err:
            self.close()
            if port_is_gone(self.port, err):
                raise port_lost_error(self.port, err, "connecting the leader arm") from err
            raise UserError(
                f"SO-101 leader on {self.port} failed to connect ({err}); check its cable and power"
            ) from err

    @classmethod
    def from_config(cls, teleop: TeleopConfig) -> SO101LeaderArm:
        return cls(teleop.port, teleop.id, teleop.calibration_dir)

    def read_joint_positions(self) -> np.ndarray:
        """(6,) float64: shoulder_pan .. wrist_roll in degrees, gripper 0-100."""
        try:
            values = self.device.bus.sync_read("Present_Position", num_retry=2)
        except BUS_ERRORS as err:
            self.close()
            if port_is_gone(self.port, err):
                raise port_lost_error(self.port, err, "reading the leader arm") from err
            raise UserError(
                f"SO-101 leader on {self.port} stopped answering ({err}); check its cable and power"
            ) from err
        return np.array([values[name] for name in MOTORS], dtype=np.float64)

    def disable_torque(self) -> None:
        """Release the leader so a human can move it (one sync write, then per-servo confirmation)."""
        bus = self.device.bus
        try:
            bus.sync_write("Torque_Enable", dict.fromkeys(MOTORS, 0), normalize=False)
        except BUS_ERRORS as err:
            self.close()
            if port_is_gone(self.port, err):
                raise port_lost_error(self.port, err, "releasing the leader arm") from err
            raise UserError(
                f"SO-101 leader on {self.port} stopped answering ({err}); check its cable and power"
            ) from err
        try:
            bus.disable_torque(num_retry=3)
        except BUS_ERRORS as err:
            logger.warning("leader torque-off confirmation failed: %s", err)

    def enable_torque(self) -> None:
        """Hold the leader (e.g. to drive it to the follower's pose before a handover)."""
        self.device.bus.enable_torque(num_retry=3)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        safe_stop(self.device.bus)

    def __enter__(self) -> SO101LeaderArm:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_leader(cfg: EnvConfig) -> SO101LeaderArm:
    """The leader arm named by ``cfg.teleop`` (port, id, calibration_dir)."""
    return SO101LeaderArm.from_config(cfg.teleop)
