"""Human intervention: one interface, several sources (keyboard, gamepad, leader arm, scripted human).

Every control step the loop asks its source what the human is doing::

    state = source.poll(obs, info)          # InterventionState
    action = state.action if state.is_intervening else policy_action
    for event in state.events:              # each event is delivered exactly once
        ...Event.SUCCESS / FAILURE / RERECORD / TERMINATE / INTERVENTION_ON / INTERVENTION_OFF

Actions use the policy's format: float32 (4,) = end-effector delta (dx, dy, dz) in [-1, 1] and a
gripper command in the last slot (0 close, 1 stay, 2 open; LeRobot's GripperAction).

An event is *consumed* by the poll that returns it (otherwise a success key that stays set would be
announced on every following step). Sources queue events in an :class:`EventQueue`, whose
``drain`` empties it, so a second poll never repeats an event. Intervention on/off events are
derived from the change of ``is_intervening`` between polls, so they too appear once per change.

Device sources (``actors/intervention/keyboard.py``, ``actors/intervention/gamepad.py``, ``actors/intervention/leader.py``) keep
their logic in plain classes fed with key or button events, and the OS listener (pynput, pygame)
in a thin optional layer; tests drive the logic directly. ``actors.intervention.factory.make_intervention_source``
builds the source named by ``TeleopConfig.type``.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from actors.robots.contract import (  # noqa: F401  (re-exported: the action helpers sources use)
    ACTION_DIM,
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    GRIPPER_STAY,
    make_action,
    neutral_action,
)


class Event(enum.Enum):
    """Episode-control events a human can emit."""

    SUCCESS = "success"
    FAILURE = "failure"
    RERECORD = "rerecord"
    INTERVENTION_ON = "intervention_on"
    INTERVENTION_OFF = "intervention_off"
    TERMINATE = "terminate"
    """Stop the whole session (esc / gamepad B)."""


@dataclass
class InterventionState:
    """What the human does this step."""

    is_intervening: bool = False
    action: np.ndarray | None = None
    """float32 (4,) human action when intervening, else None."""
    events: list[Event] = field(default_factory=list)
    """Events since the previous poll, each delivered once."""
    joint_targets: np.ndarray | None = None
    """Leader arm without a kinematic model: raw leader joint positions (degrees) to pass through."""


class EventQueue:
    """Thread-safe FIFO of events; ``drain`` hands each queued event out exactly once.

    Device callbacks (pynput and pygame threads) push; the control loop drains once per step.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []

    def push(self, event: Event) -> None:
        with self._lock:
            self._events.append(event)

    def drain(self) -> list[Event]:
        with self._lock:
            events, self._events = self._events, []
        return events

    def clear(self) -> None:
        self.drain()


class InterventionSource:
    """Base class: a source of human actions and events. Subclasses implement ``_poll``.

    The base turns changes of ``is_intervening`` into INTERVENTION_ON / INTERVENTION_OFF events and
    drains the event queue, so every subclass gets the exactly-once guarantee for free.
    """

    name = "none"

    def __init__(self) -> None:
        self.events = EventQueue()
        self._was_intervening = False

    @property
    def intervening(self) -> bool:
        """Whether the human held the controls at the last poll (the step being executed)."""
        return self._was_intervening

    def _poll(self, obs: dict[str, Any], info: dict[str, Any]) -> InterventionState:
        """The human's state this step, without events (push those to ``self.events``)."""
        return InterventionState()

    def poll(self, obs: dict[str, Any], info: dict[str, Any]) -> InterventionState:
        state = self._poll(obs, info)
        events = self.events.drain()
        if state.is_intervening != self._was_intervening:
            events.append(Event.INTERVENTION_ON if state.is_intervening else Event.INTERVENTION_OFF)
            self._was_intervening = state.is_intervening
        if not state.is_intervening:
            state.action, state.joint_targets = None, None
        elif state.action is None and state.joint_targets is None:
            state.action = neutral_action()
        state.events = events
        return state

    def reset(self) -> None:
        """A new episode starts: forget pending events and per-episode state."""
        self.events.clear()
        self._was_intervening = False

    def close(self) -> None:
        """Release the device."""


class NullSource(InterventionSource):
    """Nobody at the controls: never intervenes, never emits events."""
