"""The real SO-101 as a gymnasium env, with the simulator's observation and action contract.

    env = SO101RealEnv(cfg)            # cfg.robot.type == "so101", cfg.robot.port = /dev/ttyACM0
    with env:                          # torque off on exit, error or fault
        obs, info = env.reset()        # to processor.reset.fixed_reset_joint_positions (else stays)
        obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 0.5, 1], np.float32))

Built on LeRobot's ``SO101Follower`` over the Feetech SDK. Observation: ``observation.images.front``
and ``observation.images.wrist`` (image_size x image_size x 3 uint8, rotated per camera config) and
``observation.state`` float32 (18,) laid out like the simulator's (``actors.robots.contract.STATE_LAYOUT``). Action float32
(4,): end-effector delta (x, y, z) in [-1, 1] times ``robot.end_effector_step_sizes`` metres, then the
gripper command 0 close / 1 stay / 2 open (``robot.gripper_step`` units per step).

End-effector control uses LeRobot's placo kinematics when ``robot.urdf_path`` is set and placo is
installed, else the project's MuJoCo model of the same kinematic chain (``actors.robots.sim.ik``). Every
target is clipped to the workspace bounds, to the calibrated joint ranges and to
``max_relative_target`` degrees from the present position before it is written, and the written
joint targets' own end-effector position is checked against the bounds (the policy's actions and
the leader's alike: both arrive here as end-effector steps).

Safety: the arm is probed and its calibration checked before torque is ever enabled; any failure
during a step (a servo that stops answering, overload/overheat status bits) turns torque off on
every servo and raises a one-line ``UserError``. After a reset the leader arm's torque is disabled so
the human can move it; IK resets are off unless asked for (they never switch on by themselves).

Try it without an arm: ``hilserl servo-sim --calibrate /tmp/calib`` prints a port; then build the
env with ``robot.port`` = that port, ``robot.calibration_dir=/tmp/calib`` and
``robot.camera_source=test_pattern``.
"""

from __future__ import annotations

import gc
import logging
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from actors.robots.cameras import CameraSource, TestPatternCamera, make_camera_sources, rotate, to_observation
from actors.robots.contract import MOTORS, STATE_DIM, STATE_LAYOUT  # noqa: F401  (STATE_LAYOUT documents the state)
from actors.robots.so101.connect import (
    BUS_ERRORS,
    calibrate_command,
    check_port,
    check_registers_match,
    configure_with_retries,
    connect_bus,
    describe_error_bits,
    load_calibration,
    port_is_gone,
    port_lost_error,
    probe_servos,
    read_status_bits,
    safe_stop,
)
from configs.env import EnvConfig, ResetConfig
from configs.errors import UserError

logger = logging.getLogger(__name__)

JOINTS = tuple(MOTORS)
DEFAULT_STEP_SIZES = {"x": 0.02, "y": 0.02, "z": 0.02}
PORT_OPTION = "robot.port"
MAX_GOAL_LEAD_M = 0.04
"""How far the commanded end effector may run ahead of the measured one (the simulator's
``MAX_TARGET_LEAD_M``): beyond it the next step starts again from the measured pose."""
WORKSPACE_TOLERANCE_M = 1e-3
"""How far past a workspace bound a commanded joint target may put the hand (forward kinematics)."""


def default_calibration_dir() -> Path:
    from lerobot.utils.constants import HF_LEROBOT_CALIBRATION, ROBOTS

    return Path(HF_LEROBOT_CALIBRATION) / ROBOTS / "so_follower"


class _PlacoKinematics:
    """LeRobot's RobotKinematics (placo + URDF) behind the ee_position / solve_delta interface."""

    def __init__(self, urdf_path: str) -> None:
        from lerobot.model.kinematics import RobotKinematics

        self.kin = RobotKinematics(
            urdf_path, target_frame_name="gripper_frame_link", joint_names=list(JOINTS)
        )

    def ee_position(self, joints_deg: np.ndarray) -> np.ndarray:
        return self.kin.forward_kinematics(np.asarray(joints_deg, dtype=float))[:3, 3]

    def solve_delta(self, joints_deg: np.ndarray, dxyz: np.ndarray) -> np.ndarray:
        pose = self.kin.forward_kinematics(np.asarray(joints_deg, dtype=float))
        pose[:3, 3] += dxyz
        return np.asarray(self.kin.inverse_kinematics(np.asarray(joints_deg, dtype=float), pose), dtype=float)


def make_kinematics(urdf_path: str | None) -> Any:
    """LeRobot's kinematics when a URDF is given and placo is installed, else the MuJoCo model's."""
    if urdf_path:
        if not Path(urdf_path).is_file():
            raise UserError(
                f"robot.urdf_path {urdf_path} does not exist; point it at SO-ARM100's so101_new_calib.urdf "
                "or unset it to use the project's MuJoCo model"
            )
        try:
            import placo  # noqa: F401

            return _PlacoKinematics(urdf_path)
        except ImportError:
            logger.warning("placo is not installed; end-effector control uses the project's MuJoCo model")
    from actors.robots.sim.ik import ArmKinematics

    return ArmKinematics()


class SO101RealEnv(gym.Env):
    """SO-101 follower (plus optional leader) as a gymnasium env. See the module docstring."""

    metadata = {"render_modes": []}

    def __init__(
        self,
        cfg: EnvConfig,
        cameras: dict[str, CameraSource] | None = None,
        leader: Any | None = None,
        kinematics: Any | None = None,
    ) -> None:
        super().__init__()
        robot_cfg = cfg.robot
        self.cfg = cfg
        self.reset_cfg = cfg.processor.reset or ResetConfig()
        self.leader = leader
        self.image_size = int(cfg.image_size)
        self.dt = 1.0 / float(cfg.fps)
        steps = robot_cfg.end_effector_step_sizes or DEFAULT_STEP_SIZES
        self.step_sizes = np.array([steps.get(k, DEFAULT_STEP_SIZES[k]) for k in "xyz"], dtype=float)
        bounds = robot_cfg.end_effector_bounds
        self.ee_bounds = (
            (np.asarray(bounds["min"], float), np.asarray(bounds["max"], float)) if bounds else None
        )
        self.max_gripper = float(cfg.processor.max_gripper_pos or 100.0)
        self.gripper_step = float(robot_cfg.gripper_step)
        self.max_relative_target = robot_cfg.max_relative_target
        if not robot_cfg.use_degrees:
            raise UserError(
                "robot.use_degrees is false; end-effector control needs degrees, set robot.use_degrees to true"
            )

        # 1. Everything that needs no hardware: port, calibration file, cameras' config.
        self.port = check_port(robot_cfg.port, PORT_OPTION)
        calibration_dir = (
            Path(robot_cfg.calibration_dir) if robot_cfg.calibration_dir else default_calibration_dir()
        )
        self.calibration_path = calibration_dir / f"{robot_cfg.id}.json"
        self.calibration = load_calibration(self.calibration_path, "follower", self.port, robot_cfg.id)
        self.rotations = {name: int(c.rotation) for name, c in robot_cfg.cameras.items()}
        for degrees in self.rotations.values():
            rotate(np.zeros((2, 2, 3), np.uint8), degrees)  # validates the rotation
        if cameras is None:
            if robot_cfg.camera_source == "test_pattern":
                cameras = {"front": TestPatternCamera(), "wrist": TestPatternCamera()}
            elif robot_cfg.camera_source == "opencv":
                cameras = make_camera_sources(robot_cfg.cameras)
            else:
                raise UserError(
                    f"unknown robot.camera_source '{robot_cfg.camera_source}'; use 'opencv' or 'test_pattern'"
                )
        self.cameras = cameras
        self.joint_low, self.joint_high = self._joint_limits()
        self.kinematics = kinematics if kinematics is not None else make_kinematics(robot_cfg.urdf_path)

        self.observation_space = gym.spaces.Dict(
            {
                "observation.images.front": gym.spaces.Box(
                    0, 255, (self.image_size, self.image_size, 3), np.uint8
                ),
                "observation.images.wrist": gym.spaces.Box(
                    0, 255, (self.image_size, self.image_size, 3), np.uint8
                ),
                "observation.state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
            }
        )
        self.action_space = gym.spaces.Box(
            np.array([-1, -1, -1, 0], np.float32), np.array([1, 1, 1, 2], np.float32), dtype=np.float32
        )

        # 2. The bus: probe with the plain SDK, then LeRobot's follower; torque only after the checks.
        probe_servos(self.port, PORT_OPTION)
        from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

        self.robot = SO101Follower(
            SO101FollowerConfig(
                port=self.port,
                id=robot_cfg.id,
                calibration_dir=calibration_dir,
                # The per-step bound is applied here (``_bound``), relative to the last observed position
                # read with retries; LeRobot's own clamp would add a sync read without retries per step.
                max_relative_target=None,
                use_degrees=True,
                disable_torque_on_disconnect=robot_cfg.disable_torque_on_disconnect,
            )
        )
        self._closed = False
        self._joints = np.zeros(6)
        self._ee = np.zeros(3)
        self._goal: np.ndarray | None = None  # the joint targets last sent (None: from the measured pose)
        self._last_read: float | None = None
        self._guarded(self._connect)

    # ----- connection and safety -----
    def _connect(self) -> None:
        bus = self.robot.bus
        connect_bus(bus, self.port, PORT_OPTION)  # matched replies; LeRobot's handshake checks, retried
        fix = calibrate_command("follower", self.port, self.cfg.robot.id, self.calibration_path.parent)
        check_registers_match(bus, self.calibration, self.calibration_path, fix)
        configure_with_retries(self.robot)  # LeRobot's gains and limits, torque re-enabled at the end
        # The SDK checks its packet timeout right after an empty read, so any pause there (a full
        # garbage collection of a torch-sized heap takes about a second on a busy machine) reads as a
        # servo that did not answer. Freezing the heap built so far keeps later collections short.
        gc.freeze()
        for camera in self.cameras.values():
            camera.connect()
        self._read_state()

    def _guarded(self, func, *args):
        """Run a bus operation; on any failure turn torque off everywhere and report one line."""
        try:
            return func(*args)
        except UserError:
            self._fault_stop()
            raise
        except BUS_ERRORS as err:
            self._fault_stop()
            if port_is_gone(self.port, err):
                raise port_lost_error(self.port, err, "driving the SO-101") from err
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise UserError(
                f"SO-101 on {self.port} stopped: {first_line}; torque is off - check the cables, power and "
                "servo ids, then restart"
            ) from err
        except BaseException:
            self._fault_stop()
            raise

    def _fault_stop(self) -> None:
        logger.warning("turning torque off on the SO-101 at %s", self.port)
        safe_stop(self.robot.bus)
        self._disconnect_cameras()
        self._closed = True

    def _disconnect_cameras(self) -> None:
        for camera in self.cameras.values():
            try:
                camera.disconnect()
            except Exception:
                logger.exception("camera disconnect failed")

    def close(self) -> None:
        """Stop: torque off (unless robot.disable_torque_on_disconnect is false: then the arm holds)."""
        if getattr(self, "_closed", True):
            return
        self._closed = True
        if self.cfg.robot.disable_torque_on_disconnect:
            safe_stop(self.robot.bus)
        else:
            self.robot.bus.port_handler.closePort()
        self._disconnect_cameras()

    def __enter__(self) -> SO101RealEnv:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ----- gymnasium API -----
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._check_open()
        target = self.reset_cfg.fixed_reset_joint_positions
        if target is not None:
            self._guarded(self._move_to, np.asarray(target, dtype=float), float(self.reset_cfg.reset_time_s))
        if self.leader is not None:
            # A leader left with torque on after the reset cannot be moved by hand.
            # Guarded: a leader that fails stops the follower too.
            self._guarded(self.leader.disable_torque)
        self._last_read = None
        self._goal = None
        obs = self._guarded(self._observe)
        return obs, {"joint_positions": self._joints.copy()}

    def step(self, action):
        self._check_open()
        action = np.asarray(action, dtype=np.float64).reshape(-1)
        if action.shape != (4,) or not np.all(np.isfinite(action)):
            raise ValueError(f"action must be 4 finite numbers (dx, dy, dz, gripper), got {action}")
        targets = self._targets(action)
        sent = self._guarded(self._send, targets)
        self._goal = np.asarray(sent, dtype=float).copy()
        obs = self._guarded(self._observe)
        info = {"joint_targets": sent, "joint_positions": self._joints.copy()}
        return obs, 0.0, False, False, info

    # ----- control -----
    def _targets(self, action: np.ndarray) -> np.ndarray:
        """Each step moves the last *commanded* pose, as the simulator's latched target does: the pose
        observed right after a command still lags it (the servos have just been told), so stepping
        from the measured pose would lose every step the servos had not finished, and make the same
        action move the hand by a different amount each step. The measured pose bounds the command
        (``max_relative_target``, at most MAX_GOAL_LEAD_M ahead of the hand), so a blocked arm does
        not wind the goal up. The gripper's goal is latched the same way ('stay' keeps squeezing
        what it closed on)."""
        joints = self._joints.copy()
        goal, goal_ee = self._step_origin()
        delta = np.clip(action[:3], -1.0, 1.0) * self.step_sizes
        if self.ee_bounds is not None:
            delta = np.clip(goal_ee + delta, *self.ee_bounds) - goal_ee
        targets = goal.copy()
        if np.any(np.abs(delta) > 1e-9):
            targets[:5] = np.asarray(self.kinematics.solve_delta(goal, delta), dtype=float)[:5]
        gripper_cmd = int(np.clip(np.rint(action[3]), 0, 2))
        gripper = goal[5] + (gripper_cmd - 1) * self.gripper_step
        targets[5] = np.clip(gripper, joints[5] - self.gripper_step, joints[5] + self.gripper_step)
        return self._inside_workspace(self._bound(targets, joints), joints)

    def _step_origin(self) -> tuple[np.ndarray, np.ndarray]:
        """The joints and end effector the next action moves: the last command, or the measured pose
        after a reset or when the arm fell more than MAX_GOAL_LEAD_M behind it."""
        joints = self._joints.copy()
        goal = joints if self._goal is None else self._goal.copy()
        goal_ee = np.asarray(self.kinematics.ee_position(goal), dtype=float)
        # the arm fell behind: restart from where it is
        if np.linalg.norm(goal_ee - self._ee) > MAX_GOAL_LEAD_M:
            goal, goal_ee = joints, self._ee.copy()
        return goal, goal_ee

    def commanded_ee_position(self) -> np.ndarray:
        """Where the hand is headed: the end effector the next action steps from (metres). Right after a
        command the measured pose still lags it by most of a step; an operator watching the arm
        move sees where it is going."""
        return self._step_origin()[1]

    def _workspace_excess(self, joints: np.ndarray) -> float:
        """Metres the end effector of ``joints`` lies outside the workspace bounds (0 inside)."""
        position = np.asarray(self.kinematics.ee_position(joints), dtype=float)
        low, high = self.ee_bounds
        return float(np.max(np.concatenate([low - position, position - high, [0.0]])))

    def _inside_workspace(self, targets: np.ndarray, joints: np.ndarray) -> np.ndarray:
        """The commanded joints themselves keep the hand inside the bounds. The Cartesian clip above
        is on the IK's goal; the IK and the per-step scaling only approximate it, so the command's
        own forward kinematics is checked and the arm's step shortened (bisection) until it holds,
        never taking the hand further out than it already is (after a reset outside the bounds)."""
        if self.ee_bounds is None:
            return targets
        allowed = self._workspace_excess(joints) + WORKSPACE_TOLERANCE_M
        if self._workspace_excess(targets) <= allowed:
            return targets
        inside, outside = 0.0, 1.0
        trial = targets.copy()
        for _ in range(12):
            middle = 0.5 * (inside + outside)
            trial[:5] = joints[:5] + middle * (targets[:5] - joints[:5])
            if self._workspace_excess(trial) <= allowed:
                inside = middle
            else:
                outside = middle
        trial[:5] = joints[:5] + inside * (targets[:5] - joints[:5])
        return trial

    def _bound(self, targets: np.ndarray, joints: np.ndarray) -> np.ndarray:
        targets = np.clip(targets, self.joint_low, self.joint_high)
        if self.max_relative_target is not None:
            # Scale the arm's step as a whole (a per-joint clip would bend the end-effector path);
            # the gripper is bounded on its own.
            limit = float(self.max_relative_target)
            step = targets - joints
            largest = np.max(np.abs(step[:5]))
            if largest > limit:
                step[:5] *= limit / largest
            step[5] = np.clip(step[5], -limit, limit)
            targets = joints + step
        return targets

    def _send(self, targets: np.ndarray) -> np.ndarray:
        sent = self.robot.send_action(
            {f"{name}.pos": float(v) for name, v in zip(JOINTS, targets, strict=True)}
        )
        return np.array([sent[f"{name}.pos"] for name in JOINTS])

    def _move_to(self, target: np.ndarray, duration_s: float) -> None:
        """Interpolate to a joint target (or along a straight end-effector line when use_ik_reset)."""
        if target.shape != (6,):
            raise UserError(
                f"processor.reset.fixed_reset_joint_positions needs 6 values (degrees, gripper 0-100), got {len(target)}"
            )
        self._read_state()
        start = self._joints.copy()
        waypoints = max(1, int(round(duration_s / self.dt)))
        if self.reset_cfg.use_ik_reset:
            goal_ee = np.asarray(self.kinematics.ee_position(target), dtype=float)
            start_ee = self._ee.copy()
        for i in range(1, waypoints + 1):
            frac = i / waypoints
            if self.reset_cfg.use_ik_reset:
                point = np.asarray(
                    self.kinematics.solve_delta(
                        self._joints, start_ee + frac * (goal_ee - start_ee) - self._ee
                    )
                )
                point[5] = start[5] + frac * (target[5] - start[5])
            else:
                point = start + frac * (target - start)
            self._send(self._bound(point, self._joints))
            time.sleep(self.dt)
            self._read_state()

    # ----- observation -----
    def _read_state(self) -> None:
        bus = self.robot.bus
        positions = bus.sync_read("Present_Position", num_retry=2)
        faults = read_status_bits(bus)
        if faults:
            motor, bits = next(iter(faults.items()))
            raise UserError(
                f"servo {motor} (id {MOTORS[motor]}) reports {describe_error_bits(bits)}; torque is off on every "
                "servo - free the joint or let the arm cool, then restart"
            )
        now = time.monotonic()
        joints = np.array([positions[name] for name in JOINTS], dtype=float)
        ee = np.asarray(self.kinematics.ee_position(joints), dtype=float)
        if self._last_read is None:
            self._velocity, self._ee_velocity = np.zeros(6), np.zeros(3)
        else:
            dt = max(now - self._last_read, 1e-6)
            self._velocity, self._ee_velocity = (joints - self._joints) / dt, (ee - self._ee) / dt
        self._joints, self._ee, self._last_read = joints, ee, now

    def _observe(self) -> dict[str, np.ndarray]:
        self._read_state()
        state = np.concatenate([self._joints, self._velocity, self._ee, self._ee_velocity]).astype(np.float32)
        obs = {"observation.state": state}
        for name in ("front", "wrist"):
            frame = self._read_camera(name)
            obs[f"observation.images.{name}"] = to_observation(
                frame, self.rotations.get(name, 0), self.image_size
            )
        return obs

    def _read_camera(self, name: str) -> np.ndarray:
        """One frame, or a one-line error (the step's guard turns torque off): a camera that times
        out or hands back nothing is unplugged or hung, and the policy must not act blind."""
        try:
            frame = self.cameras[name].read()
        except Exception as err:  # noqa: BLE001  (LeRobot's OpenCV camera raises TimeoutError, RuntimeError)
            frame, reason = None, f"{type(err).__name__}: {err}"
        else:
            reason = "an empty frame"
        if frame is None or np.asarray(frame).size == 0:
            raise UserError(
                f"camera '{name}' returned no frame ({reason}); torque is off - check its cable "
                f"(robot.cameras.{name}.index_or_path), then restart"
            )
        return frame

    def _joint_limits(self) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated ranges in LeRobot degrees (gripper: 0..max_gripper_pos)."""
        low, high = np.zeros(6), np.zeros(6)
        for i, name in enumerate(JOINTS):
            entry = self.calibration[name]
            if name == "gripper":
                low[i], high[i] = 0.0, self.max_gripper
                continue
            mid = (entry["range_min"] + entry["range_max"]) / 2
            low[i] = (entry["range_min"] - mid) * 360 / 4095
            high[i] = (entry["range_max"] - mid) * 360 / 4095
        return low, high

    def _check_open(self) -> None:
        if self._closed:
            raise UserError(f"the SO-101 on {self.port} was stopped; create a new env to reconnect")
