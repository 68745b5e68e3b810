"""Simulated SO-101 pick-cube scene (MuJoCo): model, env, end-effector IK and a scripted expert.

    scene.py   the MJCF, written from primitive geoms along the real SO-101 kinematic chain
    ik.py      damped least-squares end-effector control on the MuJoCo Jacobian
    env.py     ``SO101SimEnv``, a gymnasium env with LeRobot observation keys and HIL-SERL actions
    expert.py  ``ScriptedExpert``: approach, descend, grasp, lift from privileged sim state

Headless rendering: ``MUJOCO_GL`` is read when mujoco is imported, so it is defaulted to EGL here
(``osmesa`` also works, set it in the environment before importing).
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
