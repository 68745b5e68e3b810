"""``make_intervention_source(cfg, env)``: the intervention source named by ``cfg.teleop.type``.

Kept apart from ``base`` so the interface module never imports its own implementations.
"""

from __future__ import annotations

from typing import Any

from actors.intervention.base import InterventionSource, NullSource
from configs.env import EnvConfig
from configs.errors import UserError


def make_intervention_source(cfg: EnvConfig, env: Any = None) -> InterventionSource:
    """The source named by ``cfg.teleop.type``: 'none', 'keyboard', 'gamepad', 'leader' or 'scripted'."""
    teleop = cfg.teleop
    kind = teleop.type
    if kind == "leader" and getattr(getattr(env, "unwrapped", env), "rehearsal", None) is not None:
        from actors.intervention.rehearsal import RehearsalPerson

        return RehearsalPerson.from_config(cfg, env)  # the scripted person at the simulated leader
    if teleop.failure_prob and kind != "scripted":
        raise UserError(
            f"teleop.failure_prob is {teleop.failure_prob} but teleop.type is '{kind}': only the scripted "
            "human misses on purpose; with a person at the controls, record near misses yourself (or set it to 0)"
        )
    if kind == "none":
        return NullSource()
    if kind == "keyboard":
        from actors.intervention.keyboard import KeyboardSource

        return KeyboardSource.with_listener()
    if kind == "gamepad":
        from actors.intervention.gamepad import GamepadSource

        return GamepadSource.with_pygame(deadzone=teleop.deadzone)
    if kind == "leader":
        from actors.intervention.leader import LeaderArmSource

        return LeaderArmSource.from_config(cfg, env)
    if kind == "scripted":
        from actors.robots.sim.env import SO101SimEnv

        if not isinstance(getattr(env, "unwrapped", env), SO101SimEnv):
            raise UserError(
                "teleop.type 'scripted' (the simulated human) needs the simulator: set robot.type to 'sim' "
                "or choose teleop.type keyboard, gamepad or leader"
            )
        from actors.intervention.scripted import ScriptedHuman

        return ScriptedHuman.from_config(cfg, env)
    raise UserError(f"unknown teleop.type '{kind}': use one of none, keyboard, gamepad, leader, scripted")
