"""Keyboard intervention: movement keys drive the end effector, single keys control the episode.

    arrows        x / y (LeRobot's keyboard_ee mapping: up -y, down +y, left +x, right -x)
    shift / shift_r   z down / up
    ctrl_l / ctrl_r   gripper close / open (otherwise stay)
    space         toggle intervention (holding a movement key also intervenes, as in LeRobot)
    s  success    q  failure    r  re-record    esc  terminate the session

:class:`KeyboardLogic` is fed key names (``press("s")``, ``release("up")``) and is what the tests
drive. :class:`KeyboardSource.with_listener` adds a pynput listener on top; pynput needs a display,
and without one it fails with a one-line error instead of pynput's import traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from typing import Any

import numpy as np

from actors.intervention.base import (
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    GRIPPER_STAY,
    Event,
    EventQueue,
    InterventionSource,
    InterventionState,
    make_action,
)
from configs.errors import UserError

logger = logging.getLogger(__name__)

# key -> (axis, sign); axis 3 is the gripper slot.
MOVEMENT_KEYS: dict[str, tuple[int, float]] = {
    "up": (1, -1.0),
    "down": (1, 1.0),
    "left": (0, 1.0),
    "right": (0, -1.0),
    "shift": (2, -1.0),
    "shift_r": (2, 1.0),
    "ctrl_l": (3, GRIPPER_CLOSE),
    "ctrl_r": (3, GRIPPER_OPEN),
}
EVENT_KEYS: dict[str, Event] = {
    "s": Event.SUCCESS,
    "q": Event.FAILURE,
    "r": Event.RERECORD,
    "esc": Event.TERMINATE,
}
TOGGLE_KEY = "space"


class KeyboardLogic:
    """Key state machine. Thread-safe: a listener thread presses, the control loop reads."""

    def __init__(self, events: EventQueue) -> None:
        self._events = events
        self._lock = threading.Lock()
        self._held: set[str] = set()
        self._tapped: set[str] = set()  # pressed since the last read, so a quick tap still moves once
        self.toggled = False

    def press(self, key: str) -> None:
        with self._lock:
            if key in self._held:
                return  # OS auto-repeat: one physical press is one event
            self._held.add(key)
            if key in MOVEMENT_KEYS:
                self._tapped.add(key)
            elif key == TOGGLE_KEY:
                self.toggled = not self.toggled
            elif key in EVENT_KEYS:
                self._events.push(EVENT_KEYS[key])

    def release(self, key: str) -> None:
        with self._lock:
            self._held.discard(key)

    def read(self) -> InterventionState:
        """Intervention flag and action from the keys held (or tapped) since the last read."""
        with self._lock:
            active = (self._held | self._tapped) & MOVEMENT_KEYS.keys()
            self._tapped.clear()
            toggled = self.toggled
        delta = np.zeros(3)
        gripper = GRIPPER_STAY
        for key in active:
            axis, value = MOVEMENT_KEYS[key]
            if axis == 3:
                gripper = value
            else:
                delta[axis] += value
        intervening = toggled or bool(active)
        return InterventionState(is_intervening=intervening, action=make_action(*delta, gripper))

    def reset(self) -> None:
        with self._lock:
            self._tapped.clear()
            self.toggled = False


def pynput_key_name(key: Any) -> str | None:
    """pynput Key / KeyCode -> the names KeyboardLogic uses ('up', 'space', 's', ...)."""
    char = getattr(key, "char", None)
    if char:
        return char.lower()
    name = getattr(key, "name", None)
    return name


class KeyboardSource(InterventionSource):
    """Keyboard intervention source; ``logic`` takes key events from any feeder."""

    name = "keyboard"

    def __init__(self) -> None:
        super().__init__()
        self.logic = KeyboardLogic(self.events)
        self._listener: Any = None

    def _poll(self, obs: dict[str, Any], info: dict[str, Any]) -> InterventionState:
        return self.logic.read()

    def reset(self) -> None:
        super().reset()
        self.logic.reset()

    @classmethod
    def with_listener(cls) -> KeyboardSource:
        """A source fed by a pynput listener (needs a display)."""
        source = cls()
        source._listener = start_pynput_listener(source.logic)
        return source

    def close(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None


def start_pynput_listener(logic: KeyboardLogic) -> Any:
    """Start a pynput keyboard listener feeding ``logic``; one-line UserError without a display."""
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        raise UserError(
            "keyboard intervention needs a display and DISPLAY is not set: run from the desktop session "
            "(or ssh -X), or set teleop.type to gamepad, leader or scripted"
        )
    try:
        from pynput import keyboard
    except Exception as err:  # pynput raises ImportError with a multi-line X11 diagnosis
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(
            f"keyboard intervention cannot read keys ({first}): check DISPLAY, or set teleop.type to "
            "gamepad, leader or scripted"
        ) from None

    def on_press(key: Any) -> None:
        name = pynput_key_name(key)
        if name:
            logic.press(name)

    def on_release(key: Any) -> None:
        name = pynput_key_name(key)
        if name:
            logic.release(name)

    listener = keyboard.Listener(on_press=on_press, on_release=on_release)
    listener.start()
    logger.info("keyboard: arrows/shift move, ctrl grips, space toggles, s success, q failure, r re-record")
    return listener
