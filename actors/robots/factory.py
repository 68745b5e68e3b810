"""``make_env(cfg)``: the simulated or the real SO-101 behind the same gymnasium contract.

    env = make_env(cfg)          # cfg.robot.type 'sim' -> SO101SimEnv, 'so101' -> SO101RealEnv

Both envs return the same observation dict (``observation.images.front``, ``observation.images.wrist``
uint8, ``observation.state`` float32 (18,)) and take the same float32 (4,) action, so the recorder,
the robot actor and the tests never ask which one they drive.

The backend is chosen by ``robot.type`` ('sim' or 'so101'; LeRobot's 'so101_follower' is accepted),
or by a LeRobot-style ``type: gym_manipulator`` at the top level. With ``teleop.type: leader`` the
leader arm is opened here and handed to the real env (which releases its torque after every reset,
so the human can move it); the leader-arm intervention source reads the same object (``env.leader``) and
disconnects it when it is closed. With ``rehearse`` the real env runs on simulated hardware
(``actors.robots.rehearsal``).
"""

from __future__ import annotations

from typing import Any

from configs.env import EnvConfig
from configs.errors import UserError

SIM_TYPES = ("sim",)
REAL_TYPES = ("so101", "so101_follower")


def backend(cfg: EnvConfig) -> str:
    """'sim' or 'real', from robot.type (and the top-level type LeRobot configs carry)."""
    robot = cfg.robot.type
    if robot in REAL_TYPES:
        return "real"
    if robot not in SIM_TYPES:
        raise UserError(f"unknown robot.type '{robot}': use 'sim' (MuJoCo SO-101) or 'so101' (the real arm)")
    if cfg.type in ("gym_manipulator", "so101"):
        raise UserError(
            f"env type '{cfg.type}' means the real arm but robot.type is 'sim': set robot.type to 'so101' "
            "and robot.port, or set type to 'sim'"
        )
    if cfg.type != "sim":
        raise UserError(f"unknown env type '{cfg.type}': use 'sim' or 'gym_manipulator'")
    return "sim"


def make_env(cfg: EnvConfig) -> Any:
    """Build the env named by ``cfg`` (see the module docstring)."""
    cfg.check_supported()
    if backend(cfg) == "sim":
        if cfg.rehearse:
            raise UserError(
                "rehearse runs a real-arm config (robot.type 'so101') on simulated hardware; with robot.type "
                "'sim' drop --rehearse"
            )
        if cfg.teleop.type == "leader":
            raise UserError(
                "teleop.type 'leader' drives the real arm: with robot.type 'sim' use teleop.type scripted, "
                "keyboard or gamepad (or run the real path on `hilserl servo-sim`)"
            )
        from actors.robots.sim.env import SO101SimEnv

        return SO101SimEnv(cfg)
    if cfg.rehearse:
        from actors.robots.rehearsal import make_rehearsal_env

        return make_rehearsal_env(cfg)
    from actors.robots.so101.env import SO101RealEnv

    leader = None
    if cfg.teleop.type == "leader":
        from actors.robots.so101.leader_arm import make_leader

        leader = make_leader(cfg)
    try:
        return SO101RealEnv(cfg, leader=leader)
    except BaseException:
        if leader is not None:
            leader.close()  # torque off and port closed: the leader-arm source never got to own it
        raise
