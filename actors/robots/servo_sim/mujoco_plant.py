"""Drive the simulated SO-101 scene (``actors.robots.sim.env.SO101SimEnv``) from servo registers.

    env = SO101SimEnv(cfg); env.reset(seed=0)
    bus = SimulatedBus(plant=MujocoPlant(env))     # Goal_Position -> actuator goals -> physics
    cameras = scene_cameras(env)                   # frames for SO101RealEnv(cfg, cameras=cameras)

Each time the bus thread advances the plant, torque-enabled servos' goals (encoder steps, offset
removed) become joint goals, the physics runs for the elapsed wall time (at most ``max_step_s`` per
call, so a stalled thread slows the scene instead of making it jump), and the joints' angles,
velocities and actuator torques come back as each servo's shaft position, speed and load. A servo
with torque off (or a dead one) goes limp: its position actuator loses its gains until torque is
back. Encoder steps map to joint angles one to one (2048 = 0 rad), which is what the calibration in
``actors.robots.servo_sim.arm`` assumes.
"""

from __future__ import annotations

import numpy as np

from actors.robots.servo_sim.arm import MOTORS, rad_to_steps, steps_to_rad
from actors.robots.servo_sim.registers import ServoRegisters

STALL_TORQUE_NM = 3.35  # STS3215 actuator force range in the published model; Present_Load 1000 = 100 %


class MujocoPlant:
    def __init__(self, env, max_step_s: float = 0.02) -> None:
        self.env = env
        self.max_step_s = max_step_s
        self._last: float | None = None
        model = env.model
        self._act_ids = [model.actuator(name).id for name in MOTORS]
        self._gains = model.actuator_gainprm[self._act_ids, 0].copy()
        self._bias = model.actuator_biasprm[self._act_ids, :3].copy()
        self._limp = [False] * len(MOTORS)
        self._synced = False

    def _sync(self, servos: list[ServoRegisters]) -> None:
        """Start the shafts where the scene's joints are, holding there with torque on.

        A real arm rests on its own when unpowered; a limp simulated arm would fold under gravity
        while the client is still starting, so the scene starts held (LeRobot's connect turns
        torque off for its configuration writes and back on a few milliseconds later)."""
        joints = np.deg2rad(self.env.joint_positions())
        for i, motor_id in enumerate(MOTORS.values()):
            servo = next((s for s in servos if s.servo_id == motor_id), None)
            if servo is not None:
                servo.actual = rad_to_steps(joints[i])
                servo.set("Goal_Position", servo.present_position())
                servo.set("Torque_Enable", 1)
        self._synced = True

    def _set_limp(self, index: int, limp: bool) -> None:
        if self._limp[index] == limp:
            return
        model, act = self.env.model, self._act_ids[index]
        if limp:
            model.actuator_gainprm[act, 0] = 0.0
            model.actuator_biasprm[act, :3] = 0.0
        else:
            model.actuator_gainprm[act, 0] = self._gains[index]
            model.actuator_biasprm[act, :3] = self._bias[index]
        self._limp[index] = limp

    def advance(self, servos: list[ServoRegisters], now: float) -> None:
        if not self._synced:
            self._sync(servos)
        dt = 0.0 if self._last is None else min(self.max_step_s, max(0.0, now - self._last))
        self._last = now
        by_id = {s.servo_id: s for s in servos}
        targets = self.env.joint_targets()
        measured = self.env.joint_positions()
        for i, motor_id in enumerate(MOTORS.values()):
            servo = by_id.get(motor_id)
            driven = servo is not None and servo.torque_enabled and not getattr(servo, "frozen", False)
            self._set_limp(i, not driven)
            targets[i] = np.rad2deg(steps_to_rad(servo.goal_actual())) if driven else measured[i]
        self.env.set_joint_targets(targets)
        if dt > 0.0:
            self.env.step_physics(dt)
        positions = np.deg2rad(self.env.joint_positions())
        velocities = np.deg2rad(self.env.joint_velocities())
        torques = self.env.actuator_torques()
        for i, motor_id in enumerate(MOTORS.values()):
            servo = by_id.get(motor_id)
            if servo is None:
                continue
            servo.actual = rad_to_steps(positions[i])
            servo.velocity = velocities[i] * (rad_to_steps(1.0) - rad_to_steps(0.0))
            servo.load = int(np.clip(torques[i] / STALL_TORQUE_NM * 1000, -1000, 1000))


class SceneCamera:
    """A camera source reading the scene's front or wrist camera (render in the env's own thread)."""

    def __init__(self, env, name: str, shared: dict) -> None:
        self.env, self.name, self._shared = env, name, shared

    def connect(self) -> None:
        pass

    def read(self) -> np.ndarray:
        # One render of both cameras serves a front read and the wrist read that follows it.
        cached = self._shared.pop(self.name, None)
        if cached is not None:
            return cached
        obs = self.env.observation()
        self._shared.update(
            {"front": obs["observation.images.front"], "wrist": obs["observation.images.wrist"]}
        )
        return self._shared.pop(self.name)

    def disconnect(self) -> None:
        pass


def scene_cameras(env) -> dict[str, SceneCamera]:
    shared: dict = {}
    return {name: SceneCamera(env, name, shared) for name in ("front", "wrist")}
