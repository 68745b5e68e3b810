"""``ScriptedExpert``: a pick-cube controller that reads privileged simulator state.

It plays the human in the simulator (demonstrations, interventions) and emits the policy's own
action format, [dx, dy, dz, gripper] with the gripper as 0 = close, 1 = stay, 2 = open:

    approach  hover above the grasp point with the gripper open
    descend   lower the fingertips around the cube
    close     close the gripper until both fingers hold the cube
    lift      raise the hand (pick_lift; in reach_grasp hold the grasp still, so that the frames
              recorded after a success show what success looks like at run time, where the
              episode ends on the grasp); on a drop, start over

``grasp_variety_m`` varies the grasp per episode (up to that high above the usual grasp point
and 0.4x that to either side; every such grasp holds the cube) and, in reach_grasp, carries the
held cube about after the grasp: a reward classifier that saw one grasp pose calls the policy's
other, equally valid grasps failures. ``lift_variety_m`` does the same for pick_lift's lifted
cube (off by default; measured in docs/learning_quality.md).

``miss`` makes it fail on purpose, the way a person records the negatives a reward classifier
needs (HIL-SERL collects them by teleoperation): ``"open"`` lines up around the cube and hovers
there with the gripper open, never closing; ``"beside"`` closes the gripper a few centimetres off
the grasp point (beside or above the cube), again and again; ``"wander"`` waves the arm around the
workspace, often near the cube, opening and closing the gripper at random. The first two look
almost like a grasp; the last shows the gripper closed anywhere but on the cube. A classifier
trained on clean demonstrations alone calls such frames success, and a policy learns to reach them.

The grasp point is the cube centre shifted toward the fixed finger by how far the cube's
(yawed) footprint reaches along the jaw axis, so the fixed finger clears the cube on the way
down and the moving jaw pushes the cube onto it.

    env = SO101SimEnv(task="pick_lift"); expert = ScriptedExpert(env)
    obs, info = env.reset(seed=0)
    while True:
        obs, reward, terminated, truncated, info = env.step(expert.act(obs, info))
        if terminated or truncated:
            break
"""

from __future__ import annotations

import numpy as np

from actors.robots.sim import scene
from actors.robots.sim.env import LIFT_HEIGHT_M

CLOSE, STAY, OPEN = 0.0, 1.0, 2.0
MISSES = ("open", "beside", "wander")


class ScriptedExpert:
    """Approach, descend, grasp and lift; one instance per env, ``reset()`` between episodes."""

    def __init__(
        self,
        env,
        *,
        hover_m: float = 0.06,
        lift_m: float = 0.09,
        clearance_m: float = 0.005,
        xy_tolerance_m: float = 0.005,
        open_deg: float = 40.0,
        seed: int = 0,
        grasp_variety_m: float = 0.0,
        lift_variety_m: float = 0.0,
    ):
        self.env = env.unwrapped if hasattr(env, "unwrapped") else env
        self.hover_m = hover_m
        self.lift_m = lift_m
        self.clearance_m = clearance_m
        self.xy_tolerance_m = xy_tolerance_m
        self.open_deg = open_deg
        self.grasp_variety_m = grasp_variety_m
        self.lift_variety_m = lift_variety_m
        self.miss: str | None = None
        """None (succeed) or one of MISSES; kept across ``reset()``, set per episode by its owner."""
        self._rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Forget the current episode."""
        self.phase = "approach"
        self._phase_steps = 0
        self._drops = 0
        self._miss_offset = None  # miss="beside": (metres across the jaw axis, metres above the cube)
        self._grasp_offset = None  # grasp_variety_m: this episode's (across the jaw axis, above) offset
        self._carry_goal = self._carry_anchor = (
            None  # with grasp_variety_m, after the success: where the held cube goes
        )
        self._lift_steps = 0
        if self.grasp_variety_m > 0 and self.miss is None:
            v = self.grasp_variety_m
            self._grasp_offset = (self._rng.uniform(-0.4 * v, 0.4 * v), self._rng.uniform(0.0, v))
        if self.miss == "beside":  # 2.5-3.5 cm in front of or behind the jaws, or 4.5-6 cm above the cube
            if self._rng.random() < 0.3:
                self._miss_offset = (0.0, self._rng.uniform(0.045, 0.06))
            else:
                self._miss_offset = (self._rng.choice([-1.0, 1.0]) * self._rng.uniform(0.025, 0.035), 0.0)

    def replan(self, info: dict) -> None:
        """Take over from wherever the arm is. The phase machine runs while someone else drives, so
        its phase can be stale (say, 'close' with the hand far from the cube): the phase is chosen
        again from the state. Lift what is held; close only with an open gripper at the grasp
        point; descend only from above it; otherwise line up above the cube again. A phase that still
        fits the state is kept, with its step count."""
        if self.miss is not None:
            return  # a scripted miss follows its own plan
        grasp_xy, grasp_z = self._grasp_point(info)
        ref = np.asarray(info.get("ee_target", info["ee_pos"]), dtype=float)
        lined_up = np.linalg.norm(grasp_xy - ref[:2]) <= 3 * self.xy_tolerance_m
        gripper_open = info["gripper_deg"] >= self.open_deg - 5.0
        if info["grasped"]:
            phase = "lift"
        elif lined_up and gripper_open:
            phase = "close" if ref[2] - grasp_z < 0.006 else "descend"
        else:
            phase = "approach"
        if phase != self.phase:
            self._enter(phase)

    def _grasp_point(self, info: dict) -> tuple[np.ndarray, float]:
        """Where the fingertips go for this episode's grasp (or its scripted miss): (xy, z)."""
        cube = np.asarray(info["cube_pos"], dtype=float)
        grasp_xy = self._grasp_xy(cube, float(info["cube_yaw"]), np.asarray(info["jaw_axis"], dtype=float))
        grasp_z = scene.CUBE_HALF
        offset = self._miss_offset if self._miss_offset is not None else self._grasp_offset
        if offset is not None:
            across, above = offset
            jaw = np.asarray(info["jaw_axis"], dtype=float)[:2]
            grasp_xy = grasp_xy + across * np.array([-jaw[1], jaw[0]]) / max(np.linalg.norm(jaw), 1e-9)
            grasp_z += above
        return grasp_xy, grasp_z

    def act(self, obs: dict, info: dict) -> np.ndarray:
        """The next action (4,) float32 for the observation and info the env just returned."""
        if info.get("step") == 0:  # the info of a fresh reset
            self.reset()
        cube = np.asarray(info["cube_pos"], dtype=float)
        ref = np.asarray(info.get("ee_target", info["ee_pos"]), dtype=float)
        grasp_xy, grasp_z = self._grasp_point(info)
        low, high = self.env.bounds_low, self.env.bounds_high

        # The expert may take over from a policy at any step, so the state can overrule the phase.
        if info["grasped"] and self.phase != "lift":
            self._enter("lift")
        elif self.phase == "descend" and info["gripper_deg"] < self.open_deg - 5.0:
            self._enter("approach")  # the gripper was closed meanwhile: reopen above the cube

        self._phase_steps += 1
        if self.miss is not None and info["grasped"]:
            # A miss that grasped by accident holds still: the frames recorded after the success
            # press (labeled success) must show the grasp; in pick_lift, a grasp never lifted.
            return np.array([0.0, 0.0, 0.0, CLOSE], dtype=np.float32)
        if self.miss == "wander":
            return self._wander_action(ref, cube, low, high)
        if self.phase == "approach":
            hover_z = scene.CUBE_HALF + self.hover_m
            goal = np.array([*grasp_xy, hover_z])
            gripper = OPEN if info["gripper_deg"] < self.open_deg else STAY
            xy_err = np.linalg.norm(goal[:2] - ref[:2])
            if xy_err > 2 * self.xy_tolerance_m and ref[2] < hover_z - 0.02:
                goal[:2] = ref[:2]  # rise clear of the cube before moving sideways
            elif xy_err < self.xy_tolerance_m and abs(goal[2] - ref[2]) < 0.02 and gripper == STAY:
                self._enter("descend")
        elif self.phase == "descend":
            goal = np.array([*grasp_xy, grasp_z])
            gripper = STAY
            if np.linalg.norm(goal[:2] - ref[:2]) > 3 * self.xy_tolerance_m:
                self._enter("approach")  # the cube moved under us: line up again
            elif abs(np.clip(goal[2], low[2], high[2]) - ref[2]) < 0.004 or self._phase_steps > 12:
                self._enter("hover" if self.miss == "open" else "close")
        elif self.phase == "hover":  # miss="open": drift around the grasp pose, gripper open
            if self._phase_steps % 6 == 1:
                self._wander = self._rng.uniform([-0.01, -0.01, 0.0], [0.01, 0.01, 0.02])
            goal = np.array([*grasp_xy, grasp_z]) + self._wander
            gripper = STAY
        elif self.phase == "close":
            goal = ref.copy()
            gripper = CLOSE
            if info["grasped"] or self._phase_steps > 5:
                self._enter("lift")
        else:  # lift (reach_grasp: hold the grasp, the task's success state; see _carry)
            lift = getattr(self.env, "task", "pick_lift") != "reach_grasp"
            goal = self._lift(ref, cube) if lift else self._carry(ref)
            gripper = CLOSE
            if not info["grasped"] and self._phase_steps > 3:
                self._drops += 1
                self._enter("approach")
        step = self.env.step_sizes
        limit = 0.5 if self._carry_goal is not None else 1.0  # a carried cube moves gently
        move = np.clip((np.clip(goal, low, high) - ref) / step, -limit, limit)
        return np.array([*move, gripper], dtype=np.float32)

    def _carry(self, ref: np.ndarray) -> np.ndarray:
        """reach_grasp after the grasp: hold still; with ``grasp_variety_m``, after two steps carry
        the held cube, at most 1 cm a step, to a new point every 4 steps (up to 1 cm aside, 1-5 cm up), so that the
        success frames show the cube held anywhere, as a policy may hold it, not in one pose."""
        if self.grasp_variety_m <= 0 or self._phase_steps <= 2:
            self._carry_goal = None
            return ref.copy()
        if self._carry_goal is None or self._phase_steps % 4 == 3:
            anchor = ref if self._carry_goal is None else self._carry_anchor
            self._carry_anchor = anchor
            self._carry_goal = anchor + self._rng.uniform([-0.01, -0.01, 0.01], [0.01, 0.01, 0.05])
        return self._carry_goal

    def _lift(self, ref: np.ndarray, cube: np.ndarray) -> np.ndarray:
        """pick_lift after the grasp: raise the hand to ``lift_m``; with ``lift_variety_m`` (v), once
        the cube is clear of the success height, carry it to a new point every 4 steps (up to v
        aside, 0.75 v lower to 1.5 v higher, never below success), so that the success frames show
        the cube lifted anywhere, as a policy may carry it, not in one pose."""
        top = np.array([ref[0], ref[1], scene.CUBE_HALF + self.lift_m])
        v = self.lift_variety_m
        if v <= 0:
            return top
        if self._carry_goal is None:
            if cube[2] - scene.CUBE_HALF < LIFT_HEIGHT_M + 0.01:
                return top
            self._carry_anchor, self._lift_steps = top, 0
        self._lift_steps += 1
        if self._carry_goal is None or self._lift_steps % 4 == 1:
            goal = self._carry_anchor + self._rng.uniform([-v, -v, -0.75 * v], [v, v, 1.5 * v])
            goal[2] = max(goal[2], scene.CUBE_HALF + LIFT_HEIGHT_M + 0.01)
            self._carry_goal = goal
        return self._carry_goal

    def _wander_action(
        self, ref: np.ndarray, cube: np.ndarray, low: np.ndarray, high: np.ndarray
    ) -> np.ndarray:
        """miss="wander": a new goal every 4-8 steps (half of them within a few cm of the cube) and a
        random gripper command with each."""
        if self._phase_steps == 1 or self._phase_steps > self._wander_steps:
            self._phase_steps = 1
            self._wander_steps = int(self._rng.integers(4, 9))
            if self._rng.random() < 0.5:
                self._wander_goal = cube + self._rng.uniform([-0.04, -0.04, 0.0], [0.04, 0.04, 0.06])
            else:
                self._wander_goal = self._rng.uniform(low, high)
            self._wander_gripper = float(self._rng.choice([CLOSE, STAY, OPEN]))
        move = np.clip((np.clip(self._wander_goal, low, high) - ref) / self.env.step_sizes, -1.0, 1.0)
        return np.array([*move, self._wander_gripper], dtype=np.float32)

    def _enter(self, phase: str) -> None:
        self.phase = phase
        self._phase_steps = 0

    def _grasp_xy(self, cube: np.ndarray, cube_yaw: float, jaw_axis: np.ndarray) -> np.ndarray:
        jaw = jaw_axis[:2] / max(np.linalg.norm(jaw_axis[:2]), 1e-9)
        rel = cube_yaw - np.arctan2(jaw[1], jaw[0])
        # Half-extent of the yawed square footprint along the jaw axis.
        reach = scene.CUBE_HALF * (abs(np.cos(rel)) + abs(np.sin(rel)))
        # The fixed finger's inner face sits CUBE_HALF behind the TCP along the jaw axis.
        shift = reach + self.clearance_m - scene.CUBE_HALF
        return cube[:2] - shift * jaw
