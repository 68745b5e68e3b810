"""Simulated SO-101 pick-cube scene (MuJoCo): model, env, end-effector IK and a scripted expert.

    scene.py   the MJCF, written from primitive geoms along the real SO-101 kinematic chain
    ik.py      damped least-squares end-effector control on the MuJoCo Jacobian
    env.py     ``SO101SimEnv``, a gymnasium env with LeRobot observation keys and HIL-SERL actions
    expert.py  ``ScriptedExpert``: approach, descend, grasp, lift from privileged sim state
    views.py   ``python -m actors.robots.sim.views OUT_DIR``: PNGs of both cameras

Headless rendering: ``MUJOCO_GL`` is read when mujoco is imported, so unless it is already set,
importing this package picks EGL, or OSMesa on a machine that has libOSMesa but no libEGL. Import
``actors.robots.sim`` before anything imports mujoco (or set ``MUJOCO_GL`` in the environment).
"""

import ctypes.util
import os


def _headless_gl() -> str:
    if ctypes.util.find_library("EGL") is None and ctypes.util.find_library("OSMesa") is not None:
        return "osmesa"
    return "egl"


if "MUJOCO_GL" not in os.environ:
    os.environ["MUJOCO_GL"] = _headless_gl()
