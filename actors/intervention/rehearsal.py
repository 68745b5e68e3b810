"""The rehearsal's person: the scripted human with a hand on the simulated leader arm and a finger on the keys.

    source = RehearsalPerson.from_config(cfg, env)     # env: actors.robots.rehearsal.RehearsalEnv
    state = source.poll(obs, info)                     # what LeaderArmSource read from the leader

Every step, before the leader is read, the person looks at the scene (the cube, the hand, the
grasp: the scripted human's privileged view, ``BusProcess.scene_info``) and decides as the
simulator's scripted human does (``ScriptedHuman``: the same schedule, expert and success key):

    intervening  its hand moves the leader's shafts (torque off, back-driven) so the leader's own
                 end effector moves by the expert's step: inverse kinematics on the leader's pose;
                 close/open turns the leader's gripper by more than the leader source's gripper step
    not          its hand rests: the leader stays where it was left
    success      it taps 's' in the leader source's keyboard logic (where pynput would put it)
    cube lost    it taps 'q' (failure) when the cube falls off the table

What the run acts on is only what ``LeaderArmSource`` reads back through LeRobot's ``SO101Leader``:
it takes over when a leader joint moved more than the threshold, hands back when the leader is
still for ``release_after_s``, and turns the leader's motion into end-effector actions. At each
reset the person puts the leader back in the follower's home pose (the follower's env releases
the leader's torque after its reset, as on the arm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.intervention.base import GRIPPER_CLOSE, GRIPPER_OPEN, Event, InterventionSource, InterventionState
from actors.intervention.leader import LeaderArmSource
from actors.intervention.scripted import FailureWatch, InterventionSchedule, ScriptedHuman
from configs.env import EnvConfig, ResetConfig

SCENE_GONE = (EOFError, BrokenPipeError, ConnectionResetError, OSError)
"""What asking an unplugged bus process about its scene raises."""
CUBE_LOST_Z = -0.05
"""Cube centre below the table top by this much (metres): it fell off, the person presses failure."""


@dataclass
class SceneView:
    """What ``ScriptedExpert`` reads from its env besides the info: the task, bounds and step sizes."""

    task: str
    bounds_low: np.ndarray
    bounds_high: np.ndarray
    step_sizes: np.ndarray


@dataclass
class RehearsalCounts:
    """What the person did and what the leader path made of it, for the run's status."""

    takeovers: int = 0  # LeaderArmSource's engagements (the leader moved past the threshold)
    handbacks: int = 0  # its releases (the leader still for release_after_s)
    success_keys: int = 0  # taps of 's'
    failure_keys: int = 0  # taps of 'q'
    hand_steps: int = 0  # steps the person's hand moved the leader
    leader_steps: int = 0  # steps LeaderArmSource reported an intervention
    leader_releases: int = 0  # resets after which the leader's torque was found off
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {k: v for k, v in self.__dict__.items() if k != "extra"}
        out.update(self.extra)
        return out


class LeaderHand:
    """The person's hand on the simulated leader: holds its shafts at a pose in LeRobot's units."""

    def __init__(self, rig, kinematics, gripper_step: float) -> None:
        self.rig = rig
        self.kinematics = kinematics
        self.gripper_step = gripper_step
        self.pose = np.zeros(len(rig.calibration))

    def hold(self, joints) -> None:
        self.pose = np.asarray(joints, dtype=float).copy()
        self.rig.leader.hold_by_hand(self.rig.leader_steps(self.pose))

    def move(self, action: np.ndarray, step_sizes: np.ndarray) -> None:
        """Move the leader's end effector by the action's step (metres) and turn its gripper."""
        pose = self.pose.copy()
        delta = np.clip(action[:3], -1.0, 1.0) * step_sizes
        if np.any(np.abs(delta) > 1e-9):
            pose[:5] = np.asarray(self.kinematics.solve_delta(pose, delta), dtype=float)[:5]
        command = int(np.clip(np.rint(action[3]), 0, 2))
        turn = self.gripper_step + 1.0  # more than LeaderArmSource's gripper step: one command each
        if command == GRIPPER_CLOSE:
            pose[5] = max(0.0, pose[5] - turn)
        elif command == GRIPPER_OPEN:
            pose[5] = min(100.0, pose[5] + turn)
        self.hold(pose)


class RehearsalPerson(InterventionSource):
    """The leader source as the run uses it, with the scripted person acting on its hardware first."""

    name = "leader"

    def __init__(
        self,
        leader_source: LeaderArmSource,
        person: ScriptedHuman,
        rig,
        hand: LeaderHand,
        home,
        step_sizes,
        env,
    ) -> None:
        super().__init__()
        self.env = env  # the follower's RehearsalEnv: where its hand is headed
        self.leader_source = leader_source
        self.person = person
        self.rig = rig
        self.hand = hand
        self.home = np.asarray(home, dtype=float)
        self.step_sizes = np.asarray(step_sizes, dtype=float)
        self.counts = RehearsalCounts()
        self._step = 0
        self._failed = False

    @classmethod
    def from_config(cls, cfg: EnvConfig, env: Any) -> RehearsalPerson:
        from actors.robots.sim.expert import ScriptedExpert
        from actors.robots.sim.ik import ArmKinematics

        real = getattr(env, "unwrapped", env)
        rig, env_cfg = real.rehearsal, real.rehearsal_cfg
        leader_source = LeaderArmSource.from_config(env_cfg, env)  # keyboard_events off: keys come from us
        teleop = cfg.teleop
        low, high = (
            real.ee_bounds if real.ee_bounds is not None else (np.full(3, -np.inf), np.full(3, np.inf))
        )
        view = SceneView(cfg.task, np.asarray(low), np.asarray(high), real.step_sizes)
        # Recording: the person drives every episode (a person recording demos); RL: the run's schedule.
        schedule = "always" if cfg.mode == "record" else teleop.schedule
        human = ScriptedHuman(
            ScriptedExpert(
                view,
                seed=cfg.seed,
                grasp_variety_m=teleop.grasp_variety_m,
                lift_variety_m=teleop.lift_variety_m,
            ),
            InterventionSchedule(
                schedule, teleop.intervention_prob, teleop.period_steps, teleop.decay_rate, seed=cfg.seed
            ),
            teleop.failure_prob,
            seed=cfg.seed,
            press_success=teleop.press_success,
            watch=FailureWatch(patience_steps=teleop.patience_steps),
        )
        reset = env_cfg.processor.reset or ResetConfig()
        home = reset.fixed_reset_joint_positions
        if home is None:
            home = real._joints.copy()
        hand = LeaderHand(rig, ArmKinematics(), leader_source.gripper_step)
        return cls(leader_source, human, rig, hand, home, real.step_sizes, real)

    @property
    def intervening(self) -> bool:
        return self.leader_source.intervening

    def _tap(self, key: str) -> None:
        self.leader_source.keys.press(key)
        self.leader_source.keys.release(key)

    def poll(self, obs: dict[str, Any], info: dict[str, Any]) -> InterventionState:
        try:
            self._act()
        except SCENE_GONE:
            pass  # the follower's bus (and with it the scene) was unplugged: the env's step says so
        state = self.leader_source.poll(obs, info)  # the run sees only what the leader path read
        self.counts.takeovers = self.leader_source.engagements
        self.counts.handbacks = self.leader_source.releases
        self.counts.leader_steps += int(state.is_intervening)
        return state

    def _act(self) -> None:
        """The person looks at the scene and moves the leader, or presses a key."""
        scene = self.rig.follower.scene_info()
        # The person plans from where the hand is going, as the simulator's expert plans from its
        # target: the real env steps from its last command, and the pose measured right after a
        # command lags it by most of a step. Planning from the lagging pose closes a loop with a
        # one-step delay and unit gain, which oscillates around the cube instead of settling. The
        # scene's own target is the bus process's, never updated by the servos; the env's is.
        scene["ee_target"] = self.env.commanded_ee_position()
        scene["step"] = self._step
        self._step += 1
        intent = self.person.poll({}, scene)  # what the person wants: take over? which way? success?
        if intent.is_intervening and intent.action is not None:
            self.hand.move(intent.action, self.step_sizes)
            self.counts.hand_steps += 1
        if Event.SUCCESS in intent.events:
            self._tap("s")
            self.counts.success_keys += 1
        if not self._failed and float(np.asarray(scene["cube_pos"])[2]) < CUBE_LOST_Z:
            self._failed = True
            self._tap("q")
            self.counts.failure_keys += 1

    def reset(self) -> None:
        # The env's reset has run (the leader released); the person puts the leader back at home.
        try:
            if self.rig.leader is not None:
                self.counts.leader_releases += int(not any(self.rig.leader.torques()))
            self.hand.hold(self.home)
        except SCENE_GONE:
            pass  # the leader was unplugged: its source reports it at the next read
        self.person.reset()
        self.leader_source.reset()
        self._step = 0
        self._failed = False
        super().reset()

    def continue_from(self, episodes: int) -> None:
        self.person.continue_from(episodes)

    def report(self) -> dict:
        return self.counts.as_dict()

    def close(self) -> None:
        self.leader_source.close()
