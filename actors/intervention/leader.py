"""Leader-arm intervention: move the SO-101 leader to take over, keep it still to hand back.

Takeover (``teleop.takeover``):

    auto    a leader joint moved more than ``takeover_threshold_deg`` from where it rested starts an
            intervention; the leader held still for ``release_after_s`` hands control back
    toggle  the space key toggles the intervention (the leader is read only while intervening)

While engaged in ``auto``, a step in which the leader did not move (no joint beyond ``still_deg``,
no carried motion, no gripper command) is the policy's: the person's hand rests on the leader, as
a spacemouse at rest hands the step to the policy in HIL-SERL. Otherwise each pause of the hand
while the hand-back timer runs would drive the follower nowhere for ``release_after_s`` and store
those still steps as the person's demonstration. ``engagements`` and ``releases`` count the takeovers and hand-backs.

In both modes the keyboard, when available, gives the episode keys (s success, q failure,
r re-record, esc terminate; space toggles): the SO-101 leader has no buttons (LeRobot #2952).

Leader motion becomes the policy's action format through forward kinematics: the end-effector
displacement of the leader since the last step, divided by the end-effector step size (metres per
action unit), clipped to [-1, 1]. What does not fit in one step's clip is carried to the next, so
the follower catches up with a fast leader instead of losing the motion. Without a kinematic model
the leader's joint positions are passed through as ``joint_targets``.

The gripper: opening the leader's gripper by more than ``gripper_step`` (its own units) since the
last gripper command sends "open", closing it sends "close", otherwise "stay".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from actors.intervention.base import (
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    GRIPPER_STAY,
    InterventionSource,
    InterventionState,
    make_action,
)
from actors.intervention.keyboard import KeyboardLogic, start_pynput_listener
from configs.env import EnvConfig
from configs.errors import UserError

logger = logging.getLogger(__name__)


class Leader(Protocol):
    def read_joint_positions(self) -> np.ndarray:
        """(6,) joint positions in degrees (gripper last, in its own units)."""
        ...


ForwardKinematics = Callable[[np.ndarray], np.ndarray]
"""(6,) joint positions in degrees (the gripper is ignored) -> (3,) end-effector position in metres."""


class LeaderArmSource(InterventionSource):
    name = "leader"

    def __init__(
        self,
        leader: Leader,
        fk: ForwardKinematics | None = None,
        step_sizes: Sequence[float] = (0.02, 0.02, 0.02),
        takeover: str = "auto",
        threshold_deg: float = 5.0,
        release_steps: int = 10,
        still_deg: float = 0.5,
        gripper_step: float = 5.0,
    ) -> None:
        super().__init__()
        if takeover not in ("auto", "toggle"):
            raise UserError(f"unknown teleop.takeover '{takeover}': use 'auto' or 'toggle'")
        self.leader = leader
        self.fk = fk
        self.step_sizes = np.asarray(step_sizes, dtype=np.float64)
        self.takeover = takeover
        self.threshold_deg = threshold_deg
        self.release_steps = max(1, release_steps)
        self.still_deg = still_deg
        self.gripper_step = gripper_step
        self.keys = KeyboardLogic(self.events)
        self._listener: Any = None
        self.engagements = 0  # takeovers (auto: the leader moved past the threshold; toggle: space)
        self.releases = 0  # hand-backs
        self.reset()

    @classmethod
    def from_config(cls, cfg: EnvConfig, env: Any) -> LeaderArmSource:
        """The leader the real env opened (``make_env`` hands it over as ``env.leader``)."""
        leader = getattr(getattr(env, "unwrapped", env), "leader", None)
        if leader is None:
            raise UserError(
                "teleop.type 'leader' needs the leader arm: set robot.type 'so101' and teleop.port to the "
                "leader's serial port"
            )
        teleop = cfg.teleop
        steps = cfg.robot.end_effector_step_sizes or {}
        source = cls(
            leader,
            fk=default_forward_kinematics(),
            step_sizes=[steps.get(axis, 0.02) for axis in ("x", "y", "z")],
            takeover=teleop.takeover,
            threshold_deg=teleop.takeover_threshold_deg,
            release_steps=round(teleop.release_after_s * cfg.fps),
        )
        if teleop.keyboard_events:
            source._listener = start_pynput_listener(source.keys)
        return source

    def reset(self) -> None:
        super().reset()
        self.keys.reset()
        self._anchor: np.ndarray | None = None  # where the leader rests while not intervening
        self._prev: np.ndarray | None = None
        self._active = False
        self._still = 0
        self._carry = np.zeros(3)
        self._gripper_ref: float | None = None

    def _moved_from_anchor(self, q: np.ndarray) -> bool:
        return bool(np.max(np.abs(q - self._anchor)) > self.threshold_deg)

    def _poll(self, obs: dict[str, Any], info: dict[str, Any]) -> InterventionState:
        q = np.asarray(self.leader.read_joint_positions(), dtype=np.float64)
        if self._anchor is None:
            self._anchor, self._prev, self._gripper_ref = q.copy(), q.copy(), float(q[-1])
        was_active = self._active
        moving = bool(np.max(np.abs(q - self._prev)) > self.still_deg)
        if self.takeover == "toggle":
            self._active = self.keys.toggled
        elif not self._active:
            self._active = self.keys.toggled or self._moved_from_anchor(q)
            self._still = 0
        else:
            self._still = 0 if moving else self._still + 1
            if self._still >= self.release_steps and not self.keys.toggled:
                self._active = False
                self._anchor = q.copy()  # the new rest pose
        if self._active and not was_active:
            # The motion that triggered the takeover is part of the human's command.
            reference = self._anchor if self.takeover == "auto" else self._prev
            self._carry = self._displacement(reference, q)
            self._gripper_ref = float(reference[-1])
        elif self._active:
            self._carry += self._displacement(self._prev, q)
        self.engagements += int(self._active and not was_active)
        self.releases += int(was_active and not self._active)
        if not self._active:
            self._carry = np.zeros(3)
        self._prev = q
        if not self._active:
            return InterventionState(is_intervening=False)
        resting = self.takeover == "auto" and was_active and not moving and not self.keys.toggled
        if self.fk is None:
            if resting:
                return InterventionState(is_intervening=False)
            return InterventionState(is_intervening=True, joint_targets=q.astype(np.float32))
        units = np.clip(self._carry / self.step_sizes, -1.0, 1.0)
        gripper = self._gripper(q[-1])
        if resting and not np.any(np.abs(units) > 1e-6) and gripper == GRIPPER_STAY:
            self._carry = np.zeros(3)  # below one action's resolution
            return InterventionState(is_intervening=False)  # the hand rests: the policy's step
        self._carry -= units * self.step_sizes
        return InterventionState(is_intervening=True, action=make_action(*units, gripper))

    def _displacement(self, q_from: np.ndarray, q_to: np.ndarray) -> np.ndarray:
        if self.fk is None:
            return np.zeros(3)
        return np.asarray(self.fk(q_to), dtype=np.float64) - np.asarray(self.fk(q_from), dtype=np.float64)

    def _gripper(self, position: float) -> float:
        change = position - self._gripper_ref
        if change > self.gripper_step:
            self._gripper_ref = position
            return GRIPPER_OPEN
        if change < -self.gripper_step:
            self._gripper_ref = position
            return GRIPPER_CLOSE
        return GRIPPER_STAY

    def close(self) -> None:
        # The real env only releases the leader's torque after resets; disconnecting it is ours.
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if hasattr(self.leader, "close"):
            self.leader.close()


def default_forward_kinematics() -> ForwardKinematics | None:
    """The simulated SO-101's forward kinematics (same kinematic chain as the real arm), if present."""
    try:
        from actors.robots.sim import ik
    except ImportError:
        logger.warning(
            "no kinematic model (actors/robots/sim/ik.py): leader joint positions are passed through"
        )
        return None
    return ik.ee_position
