"""The simulated human: a scripted expert that takes over on a schedule and presses success.

The expert (``actors/robots/sim/expert.py``: approach, descend, grasp, lift; it reads the simulator's
privileged state) proposes an action every step; the schedule decides whether the "human" is
intervening, i.e. whether that action replaces the policy's. When the simulator reports success
the human presses success once per episode, like a person watching the arm
(``teleop.press_success='intervening'``: only while it holds the controls, so that once its help
has tapered off the reward classifier alone judges success).

Schedules (``teleop.schedule``; ``p`` = ``teleop.intervention_prob``, ``n`` = ``teleop.period_steps``):

    always    intervenes on every step (pure demonstrations)
    periodic  the policy acts, then the human: the last round(p * n) steps of every n-step cycle
    random    every n-step block is taken over with probability p (seeded)
    decay     like random with probability p * decay_rate ** episode: less and less help as the
              policy improves, the intervention curve HIL-SERL reports for a real operator
    on_failure  a person watching steps in when the robot is failing, at the first sign a person
              can see (``FailureWatch``: the gripper closed on nothing, the hand drifting away from
              the cube, no grasp after ``teleop.patience_steps``, a dropped cube), with probability
              p * decay_rate ** episode, and drives to the end of the episode. HIL-SERL's operator
              intervenes this way; its ablations without such corrections fall from 100 % to 48 %

On every takeover the expert plans afresh from where the arm is (``ScriptedExpert.replan``): its
phase does not carry over from steps the policy drove, so it never closes the gripper away from
the cube because its phase machine had advanced meanwhile.

With ``teleop.failure_prob`` > 0 the human misses on purpose in that share of episodes (the
expert's ``miss`` modes: near misses, recorded as the classifier's hard negatives).

All randomness comes from one generator seeded by ``EnvConfig.seed``, so a run is reproducible.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from actors.intervention.base import Event, InterventionSource, InterventionState
from configs.env import EnvConfig
from configs.errors import UserError

SCHEDULES = ("always", "periodic", "random", "decay", "on_failure")
PRESS_SUCCESS = ("always", "intervening")


class Expert(Protocol):
    def act(self, obs: dict[str, Any], info: dict[str, Any]) -> np.ndarray: ...


class InterventionSchedule:
    """Decides, per (episode, step), whether the scripted human is intervening."""

    def __init__(
        self,
        kind: str = "decay",
        prob: float = 0.5,
        period_steps: int = 10,
        decay_rate: float = 0.8,
        seed: int = 0,
    ) -> None:
        if kind not in SCHEDULES:
            raise UserError(f"unknown teleop.schedule '{kind}': use one of {', '.join(SCHEDULES)}")
        if not 0.0 <= prob <= 1.0:
            raise UserError(f"teleop.intervention_prob must be within [0, 1], got {prob}")
        if period_steps < 1:
            raise UserError(f"teleop.period_steps must be at least 1, got {period_steps}")
        if not 0.0 < decay_rate <= 1.0:
            raise UserError(f"teleop.decay_rate must be within (0, 1], got {decay_rate}")
        self.kind = kind
        self.prob = prob
        self.period_steps = period_steps
        self.decay_rate = decay_rate
        self._rng = np.random.default_rng(seed)
        self._block_decision = False

    def probability(self, episode: int) -> float:
        """Chance that a block of steps is taken over in ``episode`` (random and decay schedules), or
        that a person steps in at the first sign of failure (on_failure)."""
        if self.kind in ("decay", "on_failure"):
            return self.prob * self.decay_rate**episode
        return self.prob

    def intervening(self, episode: int, step: int) -> bool:
        if self.kind == "on_failure":
            raise ValueError("the on_failure schedule decides on what it sees: use ScriptedHuman")
        if self.kind == "always":
            return True
        n = self.period_steps
        if self.kind == "periodic":
            human_steps = round(self.prob * n)
            return step % n >= n - human_steps
        if step % n == 0:
            self._block_decision = bool(self._rng.random() < self.probability(episode))
        return self._block_decision


class FailureWatch:
    """What a person watching the arm sees going wrong in an episode, from what a camera shows (the
    hand, the gripper and the cube): ``failing(info)`` is the first sign, or None.

        closed_empty  the gripper shut (``gripper_deg`` below ``closed_deg``, tighter than any grasp of the cube) with nothing in it
        drifting      the hand more than ``far_m`` from the cube and moving away for ``drift_steps`` steps
        too_slow      no grasp after ``patience_steps`` steps
        dropped       the cube was held and is not any more
    """

    def __init__(
        self,
        patience_steps: int = 15,
        far_m: float = 0.05,
        drift_steps: int = 3,
        closed_deg: float = 15.0,
    ) -> None:
        self.patience_steps = patience_steps
        self.far_m = far_m
        self.drift_steps = drift_steps
        self.closed_deg = closed_deg
        self.reset()

    def reset(self) -> None:
        self._distance: float | None = None
        self._receding = 0
        self._held = False

    def failing(self, info: dict[str, Any]) -> str | None:
        grasped = bool(info.get("grasped"))
        distance = float(np.linalg.norm(np.asarray(info["ee_pos"])[:2] - np.asarray(info["cube_pos"])[:2]))
        receding = self._distance is not None and distance > self._distance + 1e-3
        self._receding = self._receding + 1 if receding and distance > self.far_m else 0
        self._distance = distance
        was_held, self._held = self._held, self._held or grasped
        if was_held and not grasped and not info.get("is_success"):
            return "dropped"
        if not grasped and float(info["gripper_deg"]) < self.closed_deg:
            return "closed_empty"
        if self._receding >= self.drift_steps:
            return "drifting"
        if not grasped and int(info.get("step", 0)) >= self.patience_steps:
            return "too_slow"
        return None


class ScriptedHuman(InterventionSource):
    """Scripted expert + schedule + success key, behind the InterventionSource interface."""

    name = "scripted"

    def __init__(
        self,
        expert: Expert,
        schedule: InterventionSchedule,
        failure_prob: float = 0.0,
        seed: int = 0,
        press_success: str = "always",
        watch: FailureWatch | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= failure_prob <= 1.0:
            raise UserError(f"teleop.failure_prob must be within [0, 1], got {failure_prob}")
        self.expert = expert
        self.schedule = schedule
        self.failure_prob = failure_prob
        if press_success not in PRESS_SUCCESS:
            raise UserError(f"teleop.press_success '{press_success}': use one of {', '.join(PRESS_SUCCESS)}")
        self.press_success = press_success
        self._miss_rng = np.random.default_rng([seed, 1])
        self.episode = -1  # reset() starts episode 0
        self.step = 0
        self._pressed_success = False
        self.watch = watch or FailureWatch()
        self._rng = np.random.default_rng([seed, 2])
        self._took_over = False  # on_failure: the person has stepped in for the rest of the episode
        self._decided = False  # on_failure: the person has decided at the episode's first failure sign
        self._expert_driving = False
        self.failure_signs: dict[str, int] = {}
        """on_failure: how often each sign (FailureWatch) made the person step in."""

    @classmethod
    def from_config(cls, cfg: EnvConfig, env: Any) -> ScriptedHuman:
        from actors.robots.sim.expert import ScriptedExpert

        teleop = cfg.teleop
        schedule = InterventionSchedule(
            teleop.schedule, teleop.intervention_prob, teleop.period_steps, teleop.decay_rate, seed=cfg.seed
        )
        expert = ScriptedExpert(
            env, seed=cfg.seed, grasp_variety_m=teleop.grasp_variety_m, lift_variety_m=teleop.lift_variety_m
        )
        watch = FailureWatch(patience_steps=teleop.patience_steps)
        return cls(
            expert,
            schedule,
            teleop.failure_prob,
            seed=cfg.seed,
            press_success=teleop.press_success,
            watch=watch,
        )

    def _poll(self, obs: dict[str, Any], info: dict[str, Any]) -> InterventionState:
        # The expert runs every step, intervening or not, so its phase (approach, descend, grasp,
        # lift) follows the arm wherever the policy took it.
        if self.schedule.kind == "on_failure":
            intervening = self._on_failure(info)
        else:
            intervening = self.schedule.intervening(max(self.episode, 0), self.step)
        if intervening and not self._expert_driving and hasattr(self.expert, "replan"):
            self.expert.replan(info)  # plan from where the policy left the arm, not from a stale phase
        self._expert_driving = intervening
        action = np.asarray(self.expert.act(obs, info), dtype=np.float32)
        self.step += 1
        pressing = self.press_success == "always" or intervening
        if info.get("is_success") and not self._pressed_success and pressing:
            self._pressed_success = True
            self.events.push(Event.SUCCESS)
        return InterventionState(is_intervening=intervening, action=action)

    def _on_failure(self, info: dict[str, Any]) -> bool:
        sign = self.watch.failing(info)
        if self._took_over or self._decided or sign is None:
            return self._took_over
        self._decided = True
        self._took_over = bool(self._rng.random() < self.schedule.probability(max(self.episode, 0)))
        if self._took_over:
            self.failure_signs[sign] = self.failure_signs.get(sign, 0) + 1
        return self._took_over

    def continue_from(self, episodes: int) -> None:
        """The next episode is the run's ``episodes``-th (a resumed run): the taper goes on from there."""
        self.episode = int(episodes) - 1

    def reset(self) -> None:
        super().reset()
        self.episode += 1
        self.step = 0
        self._pressed_success = False
        self._took_over = self._decided = self._expert_driving = False
        self.watch.reset()
        miss = None
        if self.failure_prob > 0 and self._miss_rng.random() < self.failure_prob:
            from actors.robots.sim.expert import MISSES

            miss = MISSES[int(self._miss_rng.integers(len(MISSES)))]
        self.expert.miss = miss
        if hasattr(self.expert, "reset"):
            self.expert.reset()
