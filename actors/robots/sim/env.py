"""``SO101SimEnv``: the simulated SO-101 pick-cube task as a gymnasium env, in LeRobot's HIL-SERL format.

Observation (dict, LeRobot keys):

    observation.images.front  (H, W, 3) uint8   fixed camera facing the arm
    observation.images.wrist  (H, W, 3) uint8   camera on the gripper, looking along the fingers
    observation.state         (18,) float32
        [0:6]   joint positions, LeRobot order (shoulder_pan, shoulder_lift, elbow_flex,
                wrist_flex, wrist_roll, gripper): degrees, zero at mid-range as with ``use_degrees``,
                and the gripper on LeRobot's 0-100 scale like the real arm (``actors.robots.contract``)
        [6:12]  joint velocities, degrees/s (gripper: 0-100 units/s)
        [12:15] end-effector (``gripperframe``) position, metres, arm base frame
        [15:18] end-effector velocity, m/s: the position change over the last control period
                (or ``step_physics`` call), which the real backend computes the same way

With ``render=False`` there are no cameras and the observation holds only the state.

Action: float32 (4,) = [dx, dy, dz, gripper]. dx, dy, dz in [-1, 1] are scaled by
``robot.end_effector_step_sizes`` (default 2 cm per step) and move a latched end-effector target,
clipped to ``robot.end_effector_bounds``; IK turns the target into joint goals. The last slot is
LeRobot's discrete ``GripperAction`` (rounded): 0 = close, 1 = stay, 2 = open; each close/open
step moves the gripper goal by ``GRIPPER_STEP_DEG``.

Tasks: ``pick_lift`` succeeds when the cube is held between both fingers and lifted
``LIFT_HEIGHT_M`` above the table; ``reach_grasp`` succeeds as soon as the closing
fingers hold the cube. Reward is the ground truth, 1.0 on success else 0.0 (also
``info["is_success"]``). ``terminated`` on success when ``processor.reset.terminate_on_success``
(or when the cube falls off the table); ``truncated`` after ``control_time_s * fps`` steps.

Joint-level access for the servo-bus simulator: ``joint_positions()``, ``joint_velocities()``,
``actuator_torques()``, ``set_joint_targets(degrees)``, ``step_physics(seconds)``, ``observation()``.

Run it::

    MUJOCO_GL=egl python -c "from actors.robots.sim.env import SO101SimEnv; e = SO101SimEnv(); print(e.reset(seed=0)[1])"
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np

from actors.robots.contract import FRONT, STATE, STATE_DIM, WRIST, gripper_degrees, gripper_percent
from actors.robots.sim import scene
from actors.robots.sim.ik import ArmKinematics
from configs.env import EnvConfig, ResetConfig
from configs.errors import UserError

TASKS = ("pick_lift", "reach_grasp")

HOME_JOINTS_DEG = (-2.9, -21.9, 12.7, 94.0, 90.0, 45.0)
"""Reset pose: hand 10 cm above the table, fingers down, jaws closing sideways, gripper open."""
DEFAULT_BOUNDS = {"min": [0.12, -0.20, 0.012], "max": [0.34, 0.20, 0.22]}
"""End-effector workspace (metres); the lower z keeps the fingertips off the table."""
DEFAULT_STEP_M = 0.02
"""Metres per unit action and step (LeRobot's docs use 0.02-0.03)."""
GRIPPER_STEP_DEG = 20.0
"""Gripper goal change per close/open command."""
GRIPPER_OPEN_DEG = 60.0
"""Widest gripper goal an open command reaches (the closed goal is the joint's lower limit)."""
MAX_TARGET_LEAD_M = 0.04
"""The latched target never runs further than this ahead of the measured end effector."""
LIFT_HEIGHT_M = 0.05
"""pick_lift: cube bottom this far above the table."""
CUBE_X_RANGE, CUBE_Y_RANGE = (0.17, 0.27), (-0.10, 0.10)
"""Cube spawn area (metres, arm base frame); yaw is uniform over the cube's symmetry (90 deg)."""
SETTLE_S = 0.1
"""Physics time run at reset so the first observation is at rest."""


class SO101SimEnv(gym.Env):
    """MuJoCo SO-101 picking a cube; see the module docstring for spaces and tasks."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        cfg: EnvConfig | None = None,
        *,
        task: str | None = None,
        seed: int | None = None,
        image_size: int | None = None,
        render: bool = True,
    ):
        cfg = cfg if cfg is not None else EnvConfig()
        self.task = task if task is not None else cfg.task
        if self.task not in TASKS:
            raise UserError(f"unknown simulated task '{self.task}': set env.task to one of {list(TASKS)}")
        if cfg.fps <= 0:
            raise UserError(f"env.fps must be positive, got {cfg.fps}: set --env.fps=10")
        self.fps = int(cfg.fps)
        self.metadata = {**self.metadata, "render_fps": self.fps}
        self.image_size = int(image_size if image_size is not None else cfg.image_size)
        if self.image_size < 8:
            raise UserError(f"image_size {self.image_size} is too small: use at least 8 (default 128)")
        self.render_images = render
        self.render_mode = "rgb_array" if render else None
        self._default_seed = int(seed if seed is not None else cfg.seed)
        self._seeded = False

        reset_cfg = cfg.processor.reset or ResetConfig()
        self.terminate_on_success = reset_cfg.terminate_on_success
        self.max_episode_steps = max(1, round(reset_cfg.control_time_s * self.fps))
        self.reset_joints_deg = self._reset_joints(reset_cfg.fixed_reset_joint_positions)
        gripper_cfg = cfg.processor.gripper
        self.gripper_penalty = gripper_cfg.gripper_penalty if gripper_cfg is not None else 0.0
        bounds = cfg.robot.end_effector_bounds or DEFAULT_BOUNDS
        try:
            self.bounds_low = np.asarray(bounds["min"], dtype=float).reshape(3)
            self.bounds_high = np.asarray(bounds["max"], dtype=float).reshape(3)
        except (KeyError, TypeError, ValueError):
            raise UserError(
                f"robot.end_effector_bounds {bounds} is malformed: give "
                '{"min": [x, y, z], "max": [x, y, z]} in metres'
            ) from None
        if not np.all(self.bounds_low < self.bounds_high):
            raise UserError(f"robot.end_effector_bounds: every 'min' must be below 'max', got {bounds}")
        steps = cfg.robot.end_effector_step_sizes or {}
        self.step_sizes = np.array([steps.get(k, DEFAULT_STEP_M) for k in ("x", "y", "z")], dtype=float)

        self.model = scene.build_model(self.image_size)
        self.data = mujoco.MjData(self.model)
        self.substeps = max(1, round(1.0 / (self.fps * self.model.opt.timestep)))
        self.kinematics = ArmKinematics(scene.build_arm_model())
        self._lock = threading.RLock()  # the servo-bus simulator drives the scene from its own thread
        self._ids()

        obs_spaces: dict[str, gym.Space] = {}
        if render:
            image = gym.spaces.Box(0, 255, (self.image_size, self.image_size, 3), dtype=np.uint8)
            obs_spaces = {FRONT: image, WRIST: image}
        obs_spaces[STATE] = gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict(obs_spaces)
        # [dx, dy, dz] in [-1, 1]; last slot: gripper 0 = close, 1 = stay, 2 = open (rounded).
        self.action_space = gym.spaces.Box(
            low=np.array([-1, -1, -1, 0], dtype=np.float32),
            high=np.array([1, 1, 1, 2], dtype=np.float32),
            dtype=np.float32,
        )

        self._renderer = None
        if render:
            self._renderer = _make_renderer(self.model, self.image_size)
            # EGL complains loudly if a context outlives the interpreter's GL teardown.
            self._finalizer = weakref.finalize(self, self._renderer.close)
        self._joint_targets = np.array(self.reset_joints_deg)
        self._ee_target = np.zeros(3)
        self._prev_ee = np.zeros(3)
        self._prev_dt = 1.0 / self.fps
        self._steps = 0
        self._gripper_closed = False

    # ----------------------------------------------------------------- setup

    def _ids(self) -> None:
        m = self.model
        self._qpos_adr = np.array([m.joint(n).qposadr[0] for n in scene.JOINTS])
        self._dof_adr = np.array([m.joint(n).dofadr[0] for n in scene.JOINTS])
        self._act_ids = np.array([m.actuator(n).id for n in scene.JOINTS])
        self._ee_site = m.site(scene.EE_SITE).id
        self._gripper_body = m.body("gripper").id
        self._cube_geom = m.geom("cube").id
        self._cube_qpos = m.joint("cube").qposadr[0]
        self._cube_dof = m.joint("cube").dofadr[0]
        self._fixed_finger = m.geom("fixed_finger").id
        self._moving_finger = m.geom("moving_finger").id
        self._joint_low = np.array([scene.JOINT_RANGES_DEG[n][0] for n in scene.JOINTS])
        self._joint_high = np.array([scene.JOINT_RANGES_DEG[n][1] for n in scene.JOINTS])

    @staticmethod
    def _reset_joints(fixed: list[float] | None) -> np.ndarray:
        if fixed is None:
            return np.array(HOME_JOINTS_DEG, dtype=float)
        joints = np.asarray(fixed, dtype=float)
        if joints.shape != (6,):
            raise UserError(
                f"processor.reset.fixed_reset_joint_positions has {joints.size} values: give 6 joint "
                f"positions in degrees, the gripper on 0-100 like the real arm ({', '.join(scene.JOINTS)})"
            )
        joints[5] = gripper_degrees(joints[5])  # the config speaks the real arm's units
        low = np.array([scene.JOINT_RANGES_DEG[n][0] for n in scene.JOINTS])
        high = np.array([scene.JOINT_RANGES_DEG[n][1] for n in scene.JOINTS])
        return np.clip(joints, low, high)

    # ----------------------------------------------------------------- gym API

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """New episode: arm at the reset pose, cube at a random (seeded) position and yaw.

        ``options`` may pin the cube: ``{"cube_xy": (x, y), "cube_yaw": radians}``.
        """
        if seed is None and not self._seeded:
            seed = self._default_seed
        super().reset(seed=seed)
        self._seeded = True
        options = options or {}
        rng = self.np_random
        xy = np.array([rng.uniform(*CUBE_X_RANGE), rng.uniform(*CUBE_Y_RANGE)])
        yaw = rng.uniform(-np.pi / 4, np.pi / 4)
        if "cube_xy" in options:
            xy = np.asarray(options["cube_xy"], dtype=float)
        if "cube_yaw" in options:
            yaw = float(options["cube_yaw"])
        with self._lock:
            mujoco.mj_resetData(self.model, self.data)
            self._joint_targets = self.reset_joints_deg.copy()
            self.data.qpos[self._qpos_adr] = np.deg2rad(self._joint_targets)
            self.data.ctrl[self._act_ids] = np.deg2rad(self._joint_targets)
            self.data.qpos[self._cube_qpos : self._cube_qpos + 3] = [xy[0], xy[1], scene.CUBE_HALF]
            self.data.qpos[self._cube_qpos + 3 : self._cube_qpos + 7] = [
                np.cos(yaw / 2),
                0,
                0,
                np.sin(yaw / 2),
            ]
            mujoco.mj_forward(self.model, self.data)
            mujoco.mj_step(self.model, self.data, nstep=max(1, round(SETTLE_S / self.model.opt.timestep)))
            self._ee_target = self.kinematics.ee_position(self._joint_targets)
            self._prev_ee = self.ee_position()
            self._steps = 0
            self._gripper_closed = self._joint_targets[5] < scene.GRASP_ANGLE_DEG
            return self._observation(), self._info(success=False)

    def step(self, action):
        action = self._check_action(action)
        with self._lock:
            delta = np.clip(action[:3], -1.0, 1.0) * self.step_sizes
            target = np.clip(self._ee_target + delta, self.bounds_low, self.bounds_high)
            measured = self.ee_position()
            lead = target - measured
            dist = float(np.linalg.norm(lead))
            if dist > MAX_TARGET_LEAD_M:  # blocked arm: do not wind the target up
                target = measured + lead * (MAX_TARGET_LEAD_M / dist)
            self._ee_target = target
            joints = self.kinematics.solve_position(self._joint_targets, target)
            gripper_cmd = int(np.clip(np.rint(action[3]), 0, 2))
            gripper = self._joint_targets[5] + (gripper_cmd - 1) * GRIPPER_STEP_DEG
            joints[5] = np.clip(gripper, self._joint_low[5], max(GRIPPER_OPEN_DEG, self._joint_targets[5]))
            self._apply_targets(joints)

            self._prev_ee, self._prev_dt = measured, self.substeps * self.model.opt.timestep
            mujoco.mj_step(self.model, self.data, nstep=self.substeps)
            self._steps += 1

            penalty = 0.0
            closed = gripper_cmd == 0 or (gripper_cmd == 1 and self._gripper_closed)
            if closed != self._gripper_closed:
                penalty = self.gripper_penalty
                self._gripper_closed = closed
            success = self._success()
            cube_lost = self.cube_position()[2] < -0.05
            terminated = bool((success and self.terminate_on_success) or cube_lost)
            truncated = bool(self._steps >= self.max_episode_steps and not terminated)
            info = self._info(success=success)
            info["discrete_penalty"] = penalty
            return self._observation(), float(success), terminated, truncated, info

    def render(self):
        """The front camera image (``render_mode='rgb_array'``)."""
        if self._renderer is None:
            return None
        with self._lock:
            return self._render("front")

    def close(self) -> None:
        """Release the GL context (idempotent)."""
        if self._renderer is not None:
            self._finalizer()
            self._renderer = None

    # ----------------------------------------------------------------- joint-level helpers

    def joint_positions(self) -> np.ndarray:
        """Measured joint positions (6,) in degrees, LeRobot order."""
        return np.rad2deg(self.data.qpos[self._qpos_adr])

    def joint_velocities(self) -> np.ndarray:
        """Measured joint velocities (6,) in degrees/s."""
        return np.rad2deg(self.data.qvel[self._dof_adr])

    def joint_targets(self) -> np.ndarray:
        """Current position-actuator goals (6,) in degrees."""
        return self._joint_targets.copy()

    def actuator_torques(self) -> np.ndarray:
        """Actuator forces (6,) in N*m (for a servo's Present_Load)."""
        return self.data.actuator_force[self._act_ids].copy()

    def set_joint_targets(self, degrees) -> None:
        """Drive the joints toward ``degrees`` (6,), e.g. from servo Goal_Position writes.

        Goals are clipped to the joint ranges; the end-effector target follows, so a later
        ``step`` continues from here. Physics advances in ``step`` or ``step_physics``.
        """
        joints = np.asarray(degrees, dtype=float)
        if joints.shape != (6,):
            raise UserError(f"set_joint_targets needs 6 joint positions in degrees, got shape {joints.shape}")
        with self._lock:
            self._apply_targets(joints)
            self._ee_target = np.clip(
                self.kinematics.ee_position(self._joint_targets), self.bounds_low, self.bounds_high
            )

    def step_physics(self, seconds: float | None = None) -> None:
        """Advance the physics by ``seconds`` (default one control period) holding the joint goals."""
        nstep = self.substeps if seconds is None else max(1, round(seconds / self.model.opt.timestep))
        with self._lock:
            self._prev_ee, self._prev_dt = self.ee_position(), nstep * self.model.opt.timestep
            mujoco.mj_step(self.model, self.data, nstep=nstep)

    def observation(self) -> dict[str, np.ndarray]:
        """The current observation, without stepping."""
        with self._lock:
            return self._observation()

    def ee_position(self) -> np.ndarray:
        """Measured end-effector position (3,) in metres."""
        return self.data.site_xpos[self._ee_site].copy()

    def cube_position(self) -> np.ndarray:
        """Cube centre (3,) in metres."""
        return self.data.qpos[self._cube_qpos : self._cube_qpos + 3].copy()

    def place_cube(self, xy=None, yaw: float | None = None) -> None:
        """Put the cube back on the table (at random in the spawn area, seeded by the env's generator),
        leaving the arm as it is: what the person does during a real reset."""
        rng = self.np_random
        xy = (
            np.array([rng.uniform(*CUBE_X_RANGE), rng.uniform(*CUBE_Y_RANGE)])
            if xy is None
            else np.asarray(xy, float)
        )
        yaw = float(rng.uniform(-np.pi / 4, np.pi / 4)) if yaw is None else float(yaw)
        with self._lock:
            adr = self._cube_qpos
            self.data.qpos[adr : adr + 7] = [
                xy[0],
                xy[1],
                scene.CUBE_HALF,
                np.cos(yaw / 2),
                0,
                0,
                np.sin(yaw / 2),
            ]
            self.data.qvel[self._cube_dof : self._cube_dof + 6] = 0.0
            mujoco.mj_forward(self.model, self.data)

    def privileged_info(self) -> dict[str, Any]:
        """The info ``step`` would return now (cube, hand, grasp, success): what the scripted human sees."""
        with self._lock:
            return self._info(success=self._success())

    def cube_yaw(self) -> float:
        """Cube yaw in radians."""
        w, x, y, z = self.data.qpos[self._cube_qpos + 3 : self._cube_qpos + 7]
        return float(np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z)))

    # ----------------------------------------------------------------- internals

    def _apply_targets(self, joints: np.ndarray) -> None:
        self._joint_targets = np.clip(joints, self._joint_low, self._joint_high)
        self.data.ctrl[self._act_ids] = np.deg2rad(self._joint_targets)

    def _check_action(self, action) -> np.ndarray:
        try:
            arr = np.asarray(action, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise UserError(
                f"action must be 4 numbers [dx, dy, dz, gripper], got {type(action).__name__}: {exc}"
            ) from None
        if arr.shape != (4,):
            raise UserError(
                f"action has shape {arr.shape}, expected (4,): pass [dx, dy, dz] in [-1, 1] and a gripper "
                "command (0 close, 1 stay, 2 open), without a batch dimension"
            )
        if not np.all(np.isfinite(arr)):
            raise UserError(f"action {arr.tolist()} contains NaN or inf: check the policy output")
        return arr

    def _contacts(self) -> tuple[bool, bool]:
        ncon = self.data.ncon
        if ncon == 0:
            return False, False
        geoms = self.data.contact.geom[:ncon]
        with_cube = geoms[(geoms == self._cube_geom).any(axis=1)]
        return bool((with_cube == self._fixed_finger).any()), bool((with_cube == self._moving_finger).any())

    def _grasped(self) -> bool:
        fixed, moving = self._contacts()
        squeezing = self._joint_targets[5] < self.joint_positions()[5] - 1.0
        return fixed and moving and squeezing

    def _success(self) -> bool:
        if not self._grasped():
            return False
        if self.task == "reach_grasp":
            return True
        return bool(self.cube_position()[2] - scene.CUBE_HALF > LIFT_HEIGHT_M)

    def _render(self, camera: str) -> np.ndarray:
        self._renderer.update_scene(self.data, camera=camera)
        return self._renderer.render()

    def _observation(self) -> dict[str, np.ndarray]:
        ee = self.ee_position()
        positions, velocities = self.joint_positions(), self.joint_velocities()
        # The gripper in LeRobot's 0-100 units, as the real arm reports it (positions map affinely,
        # velocities by the same scale).
        positions[5] = gripper_percent(positions[5])
        velocities[5] = gripper_percent(velocities[5]) - gripper_percent(0.0)
        state = np.concatenate([positions, velocities, ee, (ee - self._prev_ee) / self._prev_dt]).astype(
            np.float32
        )
        obs = {STATE: state}
        if self._renderer is not None:
            obs = {FRONT: self._render("front"), WRIST: self._render("wrist"), STATE: state}
        return obs

    def _info(self, success: bool) -> dict[str, Any]:
        rot = self.data.xmat[self._gripper_body].reshape(3, 3)
        return {
            "is_success": bool(success),
            "cube_pos": self.cube_position(),
            "cube_yaw": self.cube_yaw(),
            "ee_pos": self.ee_position(),
            "ee_target": self._ee_target.copy(),
            "grasped": self._grasped(),
            "gripper_deg": float(self.joint_positions()[5]),
            # Unit vector from the fixed finger toward the moving one (the jaws close along it).
            "jaw_axis": rot[:, 0].copy(),
            "finger_direction": -rot[:, 2].copy(),
            "step": self._steps,
            "discrete_penalty": 0.0,
        }


_LIVE_RENDERERS: weakref.WeakSet = weakref.WeakSet()
_CLOSE_AT_EXIT_REGISTERED = False


def _close_live_renderers() -> None:
    """Close every renderer still open while the GL display is up. MuJoCo's EGL backend terminates
    its display in an atexit hook; a renderer left to its own finalizer after that raised an
    ``eglDestroyContext`` EGL_NOT_INITIALIZED traceback at every interpreter exit."""
    for renderer in list(_LIVE_RENDERERS):
        try:
            renderer.close()
        except Exception:  # noqa: BLE001 - the process is exiting; nothing is left to protect
            pass


def _make_renderer(model: mujoco.MjModel, size: int) -> mujoco.Renderer:
    global _CLOSE_AT_EXIT_REGISTERED
    try:
        renderer = mujoco.Renderer(model, size, size)
        _LIVE_RENDERERS.add(renderer)
        if not _CLOSE_AT_EXIT_REGISTERED:
            # Registered after the first renderer made MuJoCo register its display's eglTerminate, so
            # it runs first (atexit is last in, first out).
            atexit.register(_close_live_renderers)
            _CLOSE_AT_EXIT_REGISTERED = True
        return renderer
    except Exception as exc:  # mujoco.FatalError when no GL platform was chosen at import time
        raise UserError(
            f"cannot create a headless MuJoCo renderer ({exc}): set MUJOCO_GL=egl (or osmesa) in the "
            "environment before anything imports mujoco, or pass render=False"
        ) from None
