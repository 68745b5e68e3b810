"""End-effector control for the SO-101: forward kinematics and damped least-squares IK on MuJoCo.

The arm model (``scene.build_arm_model``) follows the real SO-101 kinematic chain, so the same
functions serve the simulator and the real arm: joint angles are LeRobot degrees (zero at
mid-range), positions are metres in the arm's base frame, the end effector is the published
``gripperframe`` point between the fingertips.

The position task (3 rows, weight 1) is solved together with a weak orientation task (the 2
tilt directions, weight 0.01, as LeRobot's placo IK weighs orientation low) that keeps the
fingers as close to straight down as the reach allows, so a top grasp stays a top grasp. Only
shoulder_pan, shoulder_lift, elbow_flex and wrist_flex move; wrist_roll and the gripper are
passed through unchanged.

    kin = ArmKinematics()
    xyz = kin.ee_position(joints_deg)                          # (3,) metres
    target = kin.solve_delta(joints_deg, np.array([0, 0, 0.02]))  # (6,) degrees, 2 cm higher

Module-level ``ee_position`` and ``solve_delta`` use one shared ``ArmKinematics``.
"""

from __future__ import annotations

import functools

import mujoco
import numpy as np

from actors.robots.sim import scene

IK_JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex")
"""Joints the IK moves (wrist_roll and gripper are held)."""


class ArmKinematics:
    """FK and DLS IK on a private copy of the arm model (thread-compatible per instance)."""

    def __init__(
        self,
        model: mujoco.MjModel | None = None,
        *,
        site: str = scene.EE_SITE,
        damping: float = 0.01,
        orientation_weight: float = 0.01,
        tool_direction: tuple[float, float, float] = (0.0, 0.0, -1.0),
        iterations: int = 8,
        tolerance_m: float = 2e-4,
        max_step_rad: float = 0.3,
    ):
        self.model = model if model is not None else scene.build_arm_model()
        self.data = mujoco.MjData(self.model)
        self.site_id = self.model.site(site).id
        self.gripper_body = self.model.site_bodyid[self.site_id]
        self.qpos_adr = np.array([self.model.joint(n).qposadr[0] for n in scene.JOINTS])
        self.dof_adr = np.array([self.model.joint(n).dofadr[0] for n in IK_JOINTS])
        ik_index = [scene.JOINTS.index(n) for n in IK_JOINTS]
        self.ik_index = np.array(ik_index)
        ranges = np.deg2rad(np.array([scene.JOINT_RANGES_DEG[n] for n in IK_JOINTS]))
        margin = np.deg2rad(1.0)
        self.low, self.high = ranges[:, 0] + margin, ranges[:, 1] - margin
        self.damping = damping
        self.orientation_weight = orientation_weight
        self.tool_direction = np.asarray(tool_direction, dtype=float)
        self.tool_direction /= np.linalg.norm(self.tool_direction)
        self.iterations = iterations
        self.tolerance_m = tolerance_m
        self.max_step_rad = max_step_rad
        self.converged_step_rad = 5e-3
        self._eye3 = np.eye(3)
        self._damping_eye = (damping**2) * np.eye(len(IK_JOINTS))
        self._jacp = np.zeros((3, self.model.nv))
        self._jacr = np.zeros((3, self.model.nv))

    def _set(self, q_rad: np.ndarray) -> None:
        self.data.qpos[self.qpos_adr] = q_rad
        mujoco.mj_kinematics(self.model, self.data)
        mujoco.mj_comPos(self.model, self.data)

    def ee_position(self, joints_deg) -> np.ndarray:
        """End-effector position (3,) in metres for joint angles (6,) in degrees."""
        self._set(np.deg2rad(np.asarray(joints_deg, dtype=float)))
        return self.data.site_xpos[self.site_id].copy()

    def finger_direction(self, joints_deg) -> np.ndarray:
        """Unit vector (3,) along which the fingers point."""
        self._set(np.deg2rad(np.asarray(joints_deg, dtype=float)))
        return -self.data.xmat[self.gripper_body].reshape(3, 3)[:, 2].copy()

    def solve_position(self, joints_deg, target_xyz) -> np.ndarray:
        """Joint angles (6,) in degrees that put the end effector at ``target_xyz``, seeded at ``joints_deg``.

        Out of reach, the closest configuration found is returned.
        """
        seed_deg = np.asarray(joints_deg, dtype=float)
        q = np.deg2rad(seed_deg)
        target = np.asarray(target_xyz, dtype=float)
        best_q, best_err = q.copy(), np.inf
        for _ in range(self.iterations):
            self._set(q)
            pos_err = target - self.data.site_xpos[self.site_id]
            err_norm = float(np.linalg.norm(pos_err))
            if err_norm < best_err:
                best_q, best_err = q.copy(), err_norm
            # Fingers point along the gripper body's -z axis.
            fingers = -self.data.xmat[self.gripper_body].reshape(3, 3)[:, 2]
            rot_err = _cross(fingers, self.tool_direction)
            mujoco.mj_jacSite(self.model, self.data, self._jacp, self._jacr, self.site_id)
            # Only rotations that tilt the fingers matter; a spin about them is the wrist's business.
            tilt = self._eye3 - np.outer(fingers, fingers)
            w = self.orientation_weight
            jac = np.vstack([self._jacp[:, self.dof_adr], w * (tilt @ self._jacr[:, self.dof_adr])])
            err = np.concatenate([pos_err, w * rot_err])
            q_ik = q[self.ik_index]
            dq = self._dls(jac, err)
            # A joint at its limit that the step pushes further out is frozen and the step re-solved
            # without it, so the other joints take up the motion instead of stalling against the clip.
            blocked = ((q_ik <= self.low) & (dq < 0)) | ((q_ik >= self.high) & (dq > 0))
            if blocked.any():
                jac[:, blocked] = 0.0
                dq = self._dls(jac, err)
            step = float(np.abs(dq).max())
            if step > self.max_step_rad:  # near a singularity a full step overshoots; stay local
                dq *= self.max_step_rad / step
            q[self.ik_index] = np.clip(q_ik + dq, self.low, self.high)
            # Orientation converges slowly at its low weight; a controller calling every step
            # warm-starts from here, so stop once the position is reached and steps are small.
            if err_norm < self.tolerance_m and step < self.converged_step_rad:
                return self._result(seed_deg, q)
        self._set(q)
        if np.linalg.norm(target - self.data.site_xpos[self.site_id]) <= best_err:
            best_q = q
        return self._result(seed_deg, best_q)

    def _result(self, seed_deg: np.ndarray, q_rad: np.ndarray) -> np.ndarray:
        out = seed_deg.copy()  # joints the IK does not move come back bit-identical
        out[self.ik_index] = np.rad2deg(q_rad[self.ik_index])
        return out

    def _dls(self, jac: np.ndarray, err: np.ndarray) -> np.ndarray:
        # (J^T J + l^2 I)^-1 J^T e, the joint-space form of damped least squares: a 4x4 system.
        return np.linalg.solve(jac.T @ jac + self._damping_eye, jac.T @ err)

    def solve_delta(self, joints_deg, dxyz) -> np.ndarray:
        """Joint angles (6,) in degrees that move the end effector by ``dxyz`` metres from ``joints_deg``."""
        return self.solve_position(joints_deg, self.ee_position(joints_deg) + np.asarray(dxyz, dtype=float))


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # np.cross costs ~10x more than this for 3-vectors, and the IK loop calls it every iteration.
    return np.array([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]])


@functools.lru_cache(maxsize=1)
def _shared() -> ArmKinematics:
    return ArmKinematics()


def ee_position(joints_deg) -> np.ndarray:
    """End-effector position (3,) in metres for SO-101 joint angles (6,) in degrees."""
    return _shared().ee_position(joints_deg)


def solve_delta(joints_deg, dxyz) -> np.ndarray:
    """Target joint angles (6,) in degrees moving the end effector by ``dxyz`` (3,) metres."""
    return _shared().solve_delta(joints_deg, dxyz)
