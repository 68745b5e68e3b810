"""The rehearsal: the real-arm configuration run on simulated hardware (``--rehearse``).

    hilserl record --config_path configs/so101_record.json --rehearse --dataset_root=data/try1
    hilserl run --config_path configs/so101_rl.json --rehearse [overrides]

Every part of the real run runs except the hardware, which is replaced where it plugs in:

    SO101RealEnv ─ LeRobot SO101Follower ─ Feetech SDK ─ pty ─ simulated STS3215 bus ─ MuJoCo scene
        cameras: the scene's cameras, named and sized as robot.cameras (width x height), rendered
        in the bus's process and resized by the env as a USB camera's frames are
    LeaderArmSource ─ SO101LeaderArm (LeRobot SO101Leader) ─ pty ─ a second simulated bus
        whose shafts the scripted person (``actors.intervention.rehearsal``) holds where the
        scripted expert wants the hand to go; its success and failure keys are key events in the
        leader source's keyboard logic, where pynput would put them

So automatic takeover, hand-back, the leader's torque release after each reset, the key events,
the episode clock and the reset motion run as on the arm. Each reset is shortened to
``REHEARSAL_RESET_S`` and, while the arm returns, the person puts the cube back somewhere new.

The simulated buses carry the simulated arm's own calibration (written to a temporary folder): the
user's calibration files describe their arm and cannot match a simulated one, so they are checked
on their own (``actors.robots.preflight``), as is the rest of the config.
"""

from __future__ import annotations

import copy
import logging
import shutil
import tempfile
from pathlib import Path

import numpy as np

from actors.intervention.rehearsal import SCENE_GONE
from actors.loop.episode import SCENE_SUCCESS
from actors.robots.contract import MOTORS
from actors.robots.servo_sim.arm import sim_calibration, write_calibration_file
from actors.robots.servo_sim.process import BusProcess, remote_scene_cameras
from actors.robots.so101.env import SO101RealEnv
from configs.env import EnvConfig, ResetConfig

logger = logging.getLogger(__name__)

REHEARSAL_RESET_S = 1.0
"""The reset motion's duration in a rehearsal (the config's reset_time_s, if shorter)."""
SCENE_CAMERAS = ("front", "wrist")
DEFAULT_CAMERA_SIZE = (640, 480)


class RehearsalRig:
    """The simulated hardware: the follower's bus driving the scene, the leader's bus, their calibration."""

    def __init__(self, cfg: EnvConfig) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="hilserl-rehearsal-"))
        self.calibration = sim_calibration()
        self.exit_torques: dict[str, list[int]] = {}
        self.camera_sources: dict = {}
        self.follower = self.leader = None
        try:
            write_calibration_file(self.folder / f"{cfg.robot.id}.json", self.calibration)
            sizes = {
                name: (int(c.width), int(c.height))
                for name, c in cfg.robot.cameras.items()
                if name in SCENE_CAMERAS
            } or dict.fromkeys(SCENE_CAMERAS, DEFAULT_CAMERA_SIZE)
            self.follower = BusProcess(
                calibration=self.calibration, mujoco=True, task=cfg.task, seed=cfg.seed, camera_sizes=sizes
            )
            if cfg.teleop.type == "leader":
                write_calibration_file(self.folder / f"{cfg.teleop.id}.json", self.calibration)
                self.leader = BusProcess(calibration=self.calibration)
        except BaseException:
            self.close()
            raise
        logger.info(
            "rehearsal: follower bus on %s (MuJoCo scene, cameras %s)%s",
            self.follower.port,
            ", ".join(f"{n} {w}x{h}" for n, (w, h) in sizes.items()),
            f", leader bus on {self.leader.port}" if self.leader else "",
        )

    def env_config(self, cfg: EnvConfig) -> EnvConfig:
        """``cfg`` pointed at the simulated buses, with the rehearsal's short reset."""
        cfg = copy.deepcopy(cfg)
        cfg.robot.port, cfg.robot.calibration_dir = self.follower.port, str(self.folder)
        if self.leader is not None:
            cfg.teleop.port, cfg.teleop.calibration_dir = self.leader.port, str(self.folder)
        cfg.teleop.keyboard_events = False  # the person's keys arrive as events, not from pynput
        reset = copy.deepcopy(cfg.processor.reset) if cfg.processor.reset else ResetConfig()
        reset.reset_time_s = min(float(reset.reset_time_s), REHEARSAL_RESET_S)
        cfg.processor.reset = reset
        return cfg

    def cameras(self, cfg: EnvConfig):
        names = [n for n in cfg.robot.cameras if n in SCENE_CAMERAS] or list(SCENE_CAMERAS)
        self.camera_sources = remote_scene_cameras(self.follower, names)
        return self.camera_sources

    def lose_camera(self, name: str) -> None:
        """A camera stops giving frames (its cable pulled): a fault to rehearse."""
        self.camera_sources[name].lost = True

    def leader_steps(self, joints: np.ndarray) -> dict[int, float]:
        """LeRobot leader units (degrees; gripper 0-100) -> encoder steps, the inverse of LeRobot's
        normalization with this calibration (``MotorsBus._normalize``)."""
        steps = {}
        for (name, motor_id), value in zip(MOTORS.items(), joints, strict=True):
            entry = self.calibration[name]
            low, high = entry["range_min"], entry["range_max"]
            if name == "gripper":
                steps[motor_id] = low + float(np.clip(value, 0.0, 100.0)) / 100.0 * (high - low)
            else:
                steps[motor_id] = (low + high) / 2 + float(value) * 4095 / 360
        return steps

    def close(self) -> None:
        """Stop the buses, noting each one's torque at the end (it must be off on every servo)."""
        for name in ("leader", "follower"):
            bus = getattr(self, name)
            if bus is None:
                continue
            try:
                self.exit_torques[name] = bus.torques()
            except Exception:  # noqa: BLE001  (unplugged: the bus is gone, nothing holds torque)
                self.exit_torques[name] = [0] * len(MOTORS)
            if any(self.exit_torques[name]):
                logger.error(
                    "rehearsal: the %s still had torque on at exit: %s", name, self.exit_torques[name]
                )
            bus.stop()
            setattr(self, name, None)
        shutil.rmtree(self.folder, ignore_errors=True)


class RehearsalEnv(SO101RealEnv):
    """``SO101RealEnv`` on the rig, unchanged but for the person putting the cube back after each reset."""

    def __init__(self, cfg: EnvConfig, rig: RehearsalRig) -> None:
        self.rehearsal = rig
        self.rehearsal_cfg = rig.env_config(cfg)
        leader = None
        if rig.leader is not None:
            from actors.robots.so101.leader_arm import make_leader

            leader = make_leader(self.rehearsal_cfg)
        try:
            super().__init__(self.rehearsal_cfg, cameras=rig.cameras(cfg), leader=leader)
        except BaseException:
            if leader is not None:
                leader.close()
            raise

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        self.rehearsal.follower.place_cube()  # the person resets the scene while the arm is home
        return self._guarded(self._observe), info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        info[SCENE_SUCCESS] = self._scene_success()
        return obs, reward, terminated, truncated, info

    def _scene_success(self) -> bool:
        """The scene's truth after this step, for evaluations and the classifier's agreement only
        (``actors.loop.episode.SCENE_SUCCESS``): a real arm has none."""
        try:
            return bool(self.rehearsal.follower.scene_info()["is_success"])
        except SCENE_GONE:
            return False  # the bus was unplugged: the next step's own fault says so

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.rehearsal.close()


def make_rehearsal_env(cfg: EnvConfig) -> RehearsalEnv:
    """The real env on simulated hardware (see the module docstring); ``close()`` stops the rig.
    The config is checked first: every problem in one line (``actors.robots.preflight``)."""
    from actors.robots.preflight import check_env, raise_problems

    raise_problems(check_env(cfg), "rehearsal refused")
    rig = RehearsalRig(cfg)
    try:
        return RehearsalEnv(cfg, rig)
    except BaseException:
        rig.close()
        raise
