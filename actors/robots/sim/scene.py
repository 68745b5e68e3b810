"""The MuJoCo model of the simulated SO-101 pick-cube scene, written from primitive geoms.

The arm follows the real SO-101 kinematic chain: body offsets, joint axes, joint ranges, link
masses and the STS3215 actuator gains are facts from TheRobotStudio's published SO-ARM100 model
(``Simulation/SO101/so101_new_calib.xml``, Apache-2.0), so joint angles here mean the same as the
real arm's calibrated degrees (zero at mid-range, LeRobot ``use_degrees``). The CAD meshes are
replaced by capsules and boxes (a few hundred triangles instead of 322k), which is what makes
two 128x128 cameras affordable on a CPU renderer.

    base ─ shoulder_pan ─ shoulder_lift ─ elbow_flex ─ wrist_flex ─ wrist_roll ─ gripper (moving jaw)

The end-effector point is the published ``gripperframe`` site, midway between the fingertips.
The fixed finger sits on the gripper body's -x side, the moving jaw swings toward it (positive
gripper angle opens). Rendering cost is kept low on purpose: no shadows, no reflections, no MSAA.

Try it::

    MUJOCO_GL=egl python -c "from actors.robots.sim.scene import build_model; print(build_model().nbody)"
"""

from __future__ import annotations

import math

import mujoco
import numpy as np

JOINTS = ("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper")
"""Motor names in LeRobot order (bus ids 1..6)."""

JOINT_RANGES_DEG = {
    # Published joint ranges (radians in the model, converted here).
    "shoulder_pan": (-110.0, 110.0),
    "shoulder_lift": (-100.0, 100.0),
    "elbow_flex": (-96.83, 96.83),
    "wrist_flex": (-95.0, 95.0),
    "wrist_roll": (-157.21, 162.79),
    "gripper": (-10.0, 100.0),
}
"""Joint limits in degrees, from the published model."""

CUBE_HALF = 0.015
"""Half the cube side in metres (a 3 cm cube)."""

EE_SITE = "gripperframe"
"""Site whose position is the end effector (LeRobot's ``gripper_frame_link``)."""

# The moving jaw is shaped so that at this gripper angle its finger is vertical and exactly one
# cube width from the fixed finger: a grasp then presses two parallel faces.
GRASP_ANGLE_RAD = 0.35
GRASP_ANGLE_DEG = math.degrees(GRASP_ANGLE_RAD)
"""Gripper angle at which the open jaws are one cube width apart."""

# Gripper-body coordinates of the published TCP (the ``gripperframe`` site).
_TCP = np.array([-0.0079, -0.000218, -0.0981274])
_JAW_ORIGIN = np.array([0.0202, 0.0188, -0.0234])
_JAW_QUAT = np.array([0.707107, 0.707107, 0.0, 0.0])
_FINGER_HALF = np.array([0.004, 0.012, 0.024])
_FINGER_Z = -0.084  # finger centre height in the gripper frame; tips end 1 cm past the TCP

_YELLOW = "1 0.82 0.12 1"
_BLACK = "0.12 0.12 0.12 1"


def _fmt(values) -> str:
    return " ".join(f"{float(v):.6g}" for v in values)


def _quat_to_mat(quat: np.ndarray) -> np.ndarray:
    w, x, y, z = quat / np.linalg.norm(quat)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _look_at(pos: np.ndarray, target: np.ndarray, up: np.ndarray) -> str:
    """``xyaxes`` of a camera at ``pos`` looking at ``target`` (MuJoCo cameras look along -z)."""
    forward = target - pos
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    cam_up = np.cross(right, forward)
    return _fmt(np.concatenate([right, cam_up]))


def _jaw_geoms() -> str:
    """Moving-jaw geoms, designed in the gripper frame at GRASP_ANGLE_RAD and mapped to the jaw frame."""
    # gripper-frame point p at joint angle q  <->  jaw-frame point  Rz(q)^T R_jaw^T (p - origin)
    to_jaw = _rot_z(GRASP_ANGLE_RAD).T @ _quat_to_mat(_JAW_QUAT).T

    def local(p):
        return to_jaw @ (np.asarray(p) - _JAW_ORIGIN)

    finger_x = _TCP[0] + CUBE_HALF + _FINGER_HALF[0]
    finger = np.array([finger_x, _TCP[1], _FINGER_Z])
    finger_top = finger + np.array([0.0, 0.0, _FINGER_HALF[2]])
    pivot = np.array([_JAW_ORIGIN[0], _TCP[1], _JAW_ORIGIN[2]])
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, to_jaw.flatten())
    return (
        f'<geom name="moving_finger" class="finger" type="box" size="{_fmt(_FINGER_HALF)}" '
        f'pos="{_fmt(local(finger))}" quat="{_fmt(quat)}"/>\n'
        f'<geom class="link" type="capsule" size="0.007" fromto="{_fmt(local(pivot))} {_fmt(local(finger_top))}"/>'
    )


def arm_xml(wrist_camera: bool = True) -> str:
    """The SO-101 body tree (``<body name="base">`` ... ), base frame at the world origin."""
    fixed_finger = np.array([_TCP[0] - CUBE_HALF - _FINGER_HALF[0], _TCP[1], _FINGER_Z])
    cam_pos = np.array([-0.03, -0.045, -0.05])
    cam_target = np.array([_TCP[0], 0.0, _TCP[2] - 0.03])
    camera = (
        f'<camera name="wrist" pos="{_fmt(cam_pos)}" xyaxes="{_look_at(cam_pos, cam_target, np.array([0.0, 0.0, 1.0]))}" fovy="75"/>'
        if wrist_camera
        else ""
    )
    # Body offsets, joint axes, ranges and inertials below are the published SO-101 values.
    return f"""
<body name="base" pos="0 0 0" childclass="so101">
  <inertial pos="0.0137 0 0.0335" mass="0.147" diaginertia="0.000115 0.000136 0.00013"/>
  <geom class="link" type="cylinder" size="0.045 0.012" pos="0.0 0 0.012" rgba="{_YELLOW}"/>
  <geom class="motor" type="box" size="0.0175 0.0125 0.0225" pos="0.0263 0 0.0437" quat="0.7071 0 0.7071 0"/>
  <geom class="link" type="box" size="0.03 0.03 0.004" pos="0.005 0 0.03"/>
  <body name="shoulder" pos="0.0388353 0 0.0624" quat="0 0 -1 0">
    <joint name="shoulder_pan" range="{_fmt(np.deg2rad(JOINT_RANGES_DEG["shoulder_pan"]))}"/>
    <inertial pos="-0.0308 0 -0.0253" mass="0.1" diaginertia="8.38e-05 8.1e-05 2.4e-05"/>
    <geom class="link" type="capsule" size="0.016" fromto="0 0 0.004 -0.03 0 -0.03"/>
    <geom class="motor" type="box" size="0.0225 0.0175 0.0125" pos="-0.0304 0.0004 -0.0417" quat="0.7071 0 0 0.7071"/>
    <body name="upper_arm" pos="-0.0303992 -0.0182778 -0.0542" quat="0.5 -0.5 -0.5 -0.5">
      <joint name="shoulder_lift" range="{_fmt(np.deg2rad(JOINT_RANGES_DEG["shoulder_lift"]))}"/>
      <inertial pos="-0.0898 -0.0084 0.0184" mass="0.103" diaginertia="4.08e-05 0.000147 0.000142"/>
      <geom class="link" type="capsule" size="0.014" fromto="0 0 0.018 -0.11257 -0.028 0.018"/>
      <geom class="motor" type="box" size="0.0225 0.0125 0.0175" pos="-0.11257 -0.0155 0.0187" quat="0.7071 0 0 0.7071"/>
      <body name="lower_arm" pos="-0.11257 -0.028 0" quat="0.707107 0 0 0.707107">
        <joint name="elbow_flex" range="{_fmt(np.deg2rad(JOINT_RANGES_DEG["elbow_flex"]))}"/>
        <inertial pos="-0.0981 0.0032 0.0183" mass="0.104" diaginertia="2.87e-05 0.00016 0.000145"/>
        <geom class="link" type="capsule" size="0.012" fromto="0 0 0.018 -0.1349 0.0052 0.018"/>
        <geom class="motor" type="box" size="0.0225 0.0125 0.0175" pos="-0.1224 0.0052 0.0187"/>
        <body name="wrist" pos="-0.1349 0.0052 0" quat="0.707107 0 0 -0.707107">
          <joint name="wrist_flex" range="{_fmt(np.deg2rad(JOINT_RANGES_DEG["wrist_flex"]))}"/>
          <inertial pos="-0.0001 -0.0386 0.0281" mass="0.079" diaginertia="3.68e-05 2.54e-05 2.1e-05"/>
          <geom class="link" type="capsule" size="0.012" fromto="0 0 0.018 0 -0.045 0.018"/>
          <geom class="motor" type="box" size="0.0125 0.0225 0.0175" pos="0 -0.0424 0.0306"/>
          <body name="gripper" pos="0 -0.0611 0.0181" quat="0.0172091 -0.0172091 0.706897 0.706897">
            <joint name="wrist_roll" range="{_fmt(np.deg2rad(JOINT_RANGES_DEG["wrist_roll"]))}"/>
            <inertial pos="0.0002 0.0002 -0.0252" mass="0.087" diaginertia="2.75e-05 4.34e-05 3.45e-05"/>
            <geom class="motor" type="box" size="0.0125 0.0175 0.0225" pos="0.0077 0.0001 -0.0234"/>
            <geom name="palm" class="finger" type="box" size="0.022 0.015 0.006" pos="-0.008 0 -0.052"/>
            <geom name="fixed_finger" class="finger" type="box" size="{_fmt(_FINGER_HALF)}" pos="{_fmt(fixed_finger)}"/>
            <geom class="link" type="box" size="0.004 0.012 0.02" pos="{_fmt(fixed_finger + [0, 0, 0.04])}"/>
            <site name="{EE_SITE}" pos="{_fmt(_TCP)}" size="0.004" group="4"/>
            {camera}
            <body name="moving_jaw" pos="{_fmt(_JAW_ORIGIN)}" quat="{_fmt(_JAW_QUAT)}">
              <joint name="gripper" range="{_fmt(np.deg2rad(JOINT_RANGES_DEG["gripper"]))}"/>
              <inertial pos="-0.0016 -0.03 0.0193" mass="0.012" diaginertia="6.61e-06 1.89e-06 5.29e-06"/>
              {_jaw_geoms()}
            </body>
          </body>
        </body>
      </body>
    </body>
  </body>
</body>"""


def _defaults() -> str:
    # STS3215 servo: published joint friction/armature and position-actuator gains.
    return f"""
<default>
  <default class="so101">
    <joint type="hinge" axis="0 0 1" damping="0.60" frictionloss="0.052" armature="0.028"/>
    <position kp="998.22" kv="2.731" forcerange="-3.35 3.35"/>
    <default class="link">
      <geom contype="0" conaffinity="0" group="1" rgba="{_YELLOW}" mass="0"/>
    </default>
    <default class="motor">
      <geom contype="0" conaffinity="0" group="1" rgba="{_BLACK}" mass="0"/>
    </default>
    <default class="finger">
      <geom contype="1" conaffinity="1" group="1" rgba="{_YELLOW}" mass="0" friction="1.5 0.02 0.002"
            condim="4" solref="0.004 1"/>
    </default>
  </default>
</default>"""


def _actuators() -> str:
    lines = []
    for name in JOINTS:
        lo, hi = np.deg2rad(JOINT_RANGES_DEG[name])
        # LeRobot halves the gripper's torque limit (Max_Torque_Limit 500 of 1000).
        force = ' forcerange="-1.7 1.7"' if name == "gripper" else ""
        lines.append(
            f'<position class="so101" name="{name}" joint="{name}" ctrlrange="{lo:.6g} {hi:.6g}"{force}/>'
        )
    return "\n".join(lines)


def arm_model_xml() -> str:
    """A model of the arm alone (no table, cube or cameras), for kinematics of the real arm."""
    return f"""<mujoco model="so101_arm">
  <compiler angle="radian" autolimits="true"/>
  {_defaults()}
  <worldbody>{arm_xml(wrist_camera=False)}</worldbody>
  <actuator>{_actuators()}</actuator>
</mujoco>"""


def scene_xml(image_size: int = 128) -> str:
    """The full pick-cube scene: table, arm, cube, front and wrist cameras, fast-render settings."""
    front_pos = np.array([0.46, -0.27, 0.3])
    front_xyaxes = _look_at(front_pos, np.array([0.16, 0.0, 0.1]), np.array([0.0, 0.0, 1.0]))
    size = max(int(image_size), 64)
    return f"""<mujoco model="so101_pick_cube">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="0.002" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <!-- Rendering is the cost on a CPU (llvmpipe is triangle-bound): no shadow map, no
         multisampling, no reflections, no skybox, coarse tessellation of capsules/cylinders. -->
    <quality shadowsize="0" offsamples="0" numslices="10" numstacks="4" numquads="1"/>
    <global offwidth="{max(size, 640)}" offheight="{max(size, 480)}"/>
    <headlight ambient="0.45 0.45 0.45" diffuse="0.5 0.5 0.5" specular="0 0 0"/>
  </visual>
  {_defaults()}
  <asset>
    <material name="table" rgba="0.55 0.42 0.3 1" reflectance="0"/>
    <material name="wall" rgba="0.62 0.68 0.75 1" reflectance="0"/>
    <material name="cube" rgba="0.85 0.1 0.1 1" reflectance="0"/>
  </asset>
  <worldbody>
    <light name="top" pos="0.2 0 1.2" dir="0 0 -1" directional="true" castshadow="false"
           diffuse="0.5 0.5 0.5" specular="0 0 0"/>
    <geom name="wall" type="box" size="0.02 1.5 0.8" pos="-0.5 0.4 0.3" euler="0 0 -0.5" material="wall"
          contype="0" conaffinity="0"/>
    <geom name="table" type="box" size="0.6 0.6 0.02" pos="0.1 0 -0.02" material="table"
          friction="1 0.005 0.0001"/>
    <camera name="front" pos="{_fmt(front_pos)}" xyaxes="{front_xyaxes}" fovy="50"/>
    {arm_xml()}
    <body name="cube" pos="0.22 0 {CUBE_HALF}">
      <freejoint name="cube"/>
      <geom name="cube" type="box" size="{CUBE_HALF} {CUBE_HALF} {CUBE_HALF}" material="cube" mass="0.03"
            friction="1.2 0.02 0.002" condim="4"/>
    </body>
  </worldbody>
  <actuator>{_actuators()}</actuator>
</mujoco>"""


def build_model(image_size: int = 128):
    """Compile the full scene into a ``mujoco.MjModel``."""
    return mujoco.MjModel.from_xml_string(scene_xml(image_size))


def build_arm_model():
    """Compile the arm-only model (kinematics of the real arm)."""
    return mujoco.MjModel.from_xml_string(arm_model_xml())
