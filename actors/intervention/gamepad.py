"""Gamepad intervention: hold RB to take over; Y success, A failure, X re-record, B terminate.

Sticks (LeRobot's gamepad mapping): left stick x / y, right stick vertical z; LT closes and RT
opens the gripper. Button and axis numbers are those of a Logitech pad in DirectInput mode, as in
LeRobot (X 0, A 1, B 2, Y 3, LB 4, RB 5, LT 6, RT 7; axes 0/1 left stick, 3 right stick vertical).

Unlike LeRobot, where the success status lasts only while Y is held (so reward=1 only for as long
as the button is down), a button press is one event, delivered once.

:class:`GamepadLogic` is fed button and axis events (the tests do that); :class:`PygameGamepad` is
the thin optional layer that reads a joystick through pygame and fails with a one-line error when
none is connected.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

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

BUTTON_X, BUTTON_A, BUTTON_B, BUTTON_Y, BUTTON_LB, BUTTON_RB, BUTTON_LT, BUTTON_RT = range(8)
AXIS_LEFT_X, AXIS_LEFT_Y, AXIS_RIGHT_Y = 0, 1, 3
BUTTON_EVENTS: dict[int, Event] = {
    BUTTON_Y: Event.SUCCESS,
    BUTTON_A: Event.FAILURE,
    BUTTON_X: Event.RERECORD,
    BUTTON_B: Event.TERMINATE,
}


class GamepadLogic:
    """Button and stick state; intervening exactly while RB is held."""

    def __init__(self, events: EventQueue, deadzone: float = 0.1) -> None:
        self._events = events
        self.deadzone = deadzone
        self._lock = threading.Lock()
        self._buttons: set[int] = set()
        self._axes: dict[int, float] = {}

    def button_down(self, button: int) -> None:
        with self._lock:
            if button in self._buttons:
                return
            self._buttons.add(button)
            if button in BUTTON_EVENTS:
                self._events.push(BUTTON_EVENTS[button])

    def button_up(self, button: int) -> None:
        with self._lock:
            self._buttons.discard(button)

    def axis(self, axis: int, value: float) -> None:
        with self._lock:
            self._axes[axis] = float(value)

    def _stick(self, axis: int) -> float:
        value = self._axes.get(axis, 0.0)
        return 0.0 if abs(value) < self.deadzone else value

    def read(self) -> InterventionState:
        with self._lock:
            intervening = BUTTON_RB in self._buttons
            # Stick up is negative on pygame axes; pushing forward must move +x (LeRobot's signs).
            dx = -self._stick(AXIS_LEFT_Y)
            dy = -self._stick(AXIS_LEFT_X)
            dz = -self._stick(AXIS_RIGHT_Y)
            close, open_ = BUTTON_LT in self._buttons, BUTTON_RT in self._buttons
        gripper = GRIPPER_STAY if close == open_ else (GRIPPER_CLOSE if close else GRIPPER_OPEN)
        return InterventionState(is_intervening=intervening, action=make_action(dx, dy, dz, gripper))

    def reset(self) -> None:
        """Buttons physically held stay held across episodes; nothing to forget but stale events."""


class PygameGamepad:
    """Reads the first joystick with pygame and feeds a GamepadLogic (call ``pump`` every step)."""

    def __init__(self, logic: GamepadLogic) -> None:
        # pygame's event queue needs a video subsystem; the dummy driver works without a display.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError:
            raise UserError(
                "gamepad intervention needs pygame: install it (pip install pygame) or set teleop.type to "
                "keyboard, leader or scripted"
            ) from None
        self._pygame = pygame
        pygame.init()
        pygame.joystick.init()
        if pygame.joystick.get_count() == 0:
            pygame.quit()
            raise UserError(
                "no gamepad found: connect one (USB or Bluetooth) and check it shows in /dev/input/js*, "
                "or set teleop.type to keyboard, leader or scripted"
            )
        self._joystick = pygame.joystick.Joystick(0)
        self._joystick.init()
        self._logic = logic
        logger.info(
            "gamepad %s: hold RB to intervene; Y success, A failure, X re-record", self._joystick.get_name()
        )

    def pump(self) -> None:
        pg = self._pygame
        for event in pg.event.get():
            if event.type == pg.JOYBUTTONDOWN:
                self._logic.button_down(event.button)
            elif event.type == pg.JOYBUTTONUP:
                self._logic.button_up(event.button)
            elif event.type == pg.JOYAXISMOTION:
                self._logic.axis(event.axis, event.value)

    def close(self) -> None:
        self._joystick.quit()
        self._pygame.quit()


class GamepadSource(InterventionSource):
    """Gamepad intervention source; ``logic`` takes button/axis events from any feeder."""

    name = "gamepad"

    def __init__(self, deadzone: float = 0.1) -> None:
        super().__init__()
        self.logic = GamepadLogic(self.events, deadzone=deadzone)
        self._device: PygameGamepad | None = None

    @classmethod
    def with_pygame(cls, deadzone: float = 0.1) -> GamepadSource:
        source = cls(deadzone=deadzone)
        source._device = PygameGamepad(source.logic)
        return source

    def _poll(self, obs: dict[str, Any], info: dict[str, Any]) -> InterventionState:
        if self._device is not None:
            self._device.pump()
        return self.logic.read()

    def close(self) -> None:
        if self._device is not None:
            self._device.close()
            self._device = None
