"""The one episode loop: record mode and the RL robot run it, each with its own sink.

    loop = EpisodeLoop(cfg, env, source, policy=policy, success=detector, rate=RateKeeper(10))
    obs, info = loop.reset()
    while running:
        result, obs, info = loop.run_episode(obs, info, sink)   # sink.add(step) per step

One step, the same for every mode::

    poll the human ──▶ terminate / re-record?           (events, each delivered once)
    action = human's if intervening, else policy(obs), else the neutral action
    next_obs, info = env.step(action)
    success = human success key, else detector(next_obs, info)   (ground truth, or the classifier)
    reward, terminated, truncated by the rules below ──▶ sink.add(EpisodeStep)

Rules (shared by record and RL, so a recorded demo and an online transition mean the same thing):

- Success with ``terminate_on_success``: reward 1 (``success_reward``), then
  ``number_of_steps_after_success`` more steps, all rewarded, and the last one is ``terminated``.
  A simulator that reports the success lost meanwhile (a held cube slipped) ends them there, with
  reward 0 (a real arm reports nothing, so this never fires there).
  Without it each step is rewarded by its own success signal and the episode runs to the time limit.
- The human's failure key, or the env ending for another reason (the cube fell): ``terminated``,
  reward 0. A simulator ending on its own success counts only when our success agrees; otherwise
  the episode goes on, as on the real arm, which has no such signal.
- The time limit (``control_time_s * fps`` steps, enforced here: the real arm has no episode
  clock) or the env's own truncation: ``truncated``, which is not termination (the learner
  bootstraps from the next observation).
- Re-record: the sink drops the episode and the loop starts it again; terminate (esc, gamepad B,
  Ctrl-C): the sink drops the unfinished episode and the session ends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from actors.intervention.base import Event, InterventionSource
from actors.loop.rate import RateKeeper
from actors.robots.contract import ACTION_DIM, neutral_action
from configs.env import EnvConfig, ResetConfig
from configs.errors import UserError

logger = logging.getLogger(__name__)

SuccessDetector = Callable[[dict[str, Any], dict[str, Any]], bool]
"""(next_observation, next_info) -> success of the step that led there."""


def ground_truth_success(next_observation: dict[str, Any], next_info: dict[str, Any]) -> bool:
    """The simulator's own success flag (a real arm reports none: only the human's key counts)."""
    return bool(next_info.get("is_success", False))


SCENE_SUCCESS = "scene_success"
"""The info key of a rehearsal's scene truth (``actors.robots.rehearsal``): the simulated arm's
success, for judging evaluations and the classifier only. Nothing that trains or ends an episode
reads it, so a rehearsal trains as the arm does (where only the key and the classifier count)."""


def true_success(info: dict[str, Any]) -> bool | None:
    """What the world says: the simulator's success, a rehearsal's scene truth, or None (a real arm)."""
    for key in ("is_success", SCENE_SUCCESS):
        if key in info:
            return bool(info[key])
    return None


@dataclass
class EpisodeStep:
    """One executed step: (o_t, a_t, r_t+1, o_t+1) and how the episode stands after it."""

    observation: dict[str, Any]  # o_t as the env returned it: images (H, W, 3) uint8, state (18,)
    action: np.ndarray  # (4,) float32, executed: the human's while intervening
    is_intervention: bool
    next_observation: dict[str, Any]
    next_info: dict[str, Any]
    reward: float
    success: bool  # this step's success signal (human key or detector)
    terminated: bool  # the task ended: no bootstrap
    truncated: bool  # cut by the time limit: bootstrap from next_observation
    penalty: float  # the env's gripper penalty for this step (0 without a gripper change)
    index: int  # step number in the episode
    policy_version: int | None = None  # version of the policy weights that proposed the action

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class EpisodeSink(Protocol):
    """Where the steps of an episode go (a LeRobot dataset, the replay, nowhere)."""

    def add(self, step: EpisodeStep) -> None: ...

    def end_episode(self, result: EpisodeResult) -> None: ...

    def discard_episode(self) -> None: ...


@dataclass
class EpisodeResult:
    """How one episode went."""

    outcome: str  # 'done' or 'terminate' (the session ends)
    steps: int = 0
    success: bool = False
    intervention_steps: int = 0
    success_steps: int = 0
    episode_return: float = 0.0
    terminated: bool = False
    truncated: bool = False
    rerecorded: int = 0
    flags: list[tuple[bool, float]] = field(default_factory=list)  # (intervention, reward) per step


class EpisodeLoop:
    """Runs episodes of ``env`` with a human (``source``) and an optional policy into a sink."""

    def __init__(
        self,
        cfg: EnvConfig,
        env: Any,
        source: InterventionSource,
        policy: Callable[[dict[str, Any]], np.ndarray] | None = None,
        success: SuccessDetector = ground_truth_success,
        rate: RateKeeper | None = None,
        success_reward: float = 1.0,
    ):
        self.cfg = cfg
        self.env = env
        self.source = source
        self.policy = policy
        self.success = success
        self.rate = rate or RateKeeper(None)
        self.success_reward = float(success_reward)
        reset_cfg = cfg.processor.reset or ResetConfig()
        self.terminate_on_success = reset_cfg.terminate_on_success
        self.time_limit_steps = max(1, round(reset_cfg.control_time_s * cfg.fps))
        self.steps_after_success = int(cfg.number_of_steps_after_success)
        self._resets = 0

    def reset(self) -> tuple[dict, dict]:
        """New episode. Only the first reset is seeded; the env's generator then varies every episode."""
        seed = self.cfg.seed if self._resets == 0 else None
        self._resets += 1
        obs, info = self.env.reset(seed=seed)
        self.source.reset()
        self.rate.restart()  # the reset motion is not a control step
        return obs, info

    def _action(self, obs: dict, state) -> np.ndarray:
        if state.is_intervening and state.action is not None:
            action = state.action
        elif state.is_intervening:
            # A leader arm without a kinematic model gives joint targets only, but the stored action
            # must be in the policy's end-effector format.
            raise UserError(
                f"teleop.type '{self.cfg.teleop.type}' gave joint targets but no end-effector action: "
                "the leader arm needs the SO-101 kinematic model (actors/robots/sim/ik.py)"
            )
        elif self.policy is not None:
            action = self.policy(obs)
        else:
            action = neutral_action()
        return np.asarray(action, dtype=np.float32).reshape(ACTION_DIM)

    def run_episode(self, obs: dict, info: dict, sink: EpisodeSink) -> tuple[EpisodeResult, dict, dict]:
        """One episode into ``sink`` (started again on re-record). Returns (result, next obs, next info)."""
        result = EpisodeResult(outcome="done")
        success_left: int | None = None  # steps still to run after a success
        while True:
            state = self.source.poll(obs, info)
            if Event.TERMINATE in state.events:
                sink.discard_episode()
                result.outcome = "terminate"
                return result, obs, info
            if Event.RERECORD in state.events:
                logger.info("re-recording the episode")
                sink.discard_episode()
                rerecorded = result.rerecorded + 1
                result, success_left = EpisodeResult(outcome="done", rerecorded=rerecorded), None
                obs, info = self.reset()
                continue
            action = self._action(obs, state)
            version = getattr(self.policy, "version", None) if not state.is_intervening else None

            next_obs, _, env_terminated, env_truncated, next_info = self.env.step(action)

            succeeded = Event.SUCCESS in state.events or self.success(next_obs, next_info)
            failed = Event.FAILURE in state.events
            result.success = result.success or succeeded
            if not self.terminate_on_success:
                reward = self.success_reward if succeeded else 0.0
            elif success_left is None:
                success_left = self.steps_after_success if succeeded else None
                reward = self.success_reward if succeeded else 0.0
            else:
                success_left -= 1
                reward = self.success_reward
                if next_info.get("is_success") is False:
                    # The simulator says the success was lost (a held cube slipped): these frames
                    # would be labeled success while showing a dropped cube. End them here.
                    reward, success_left = 0.0, 0
            # A simulator ends its episode on its own success signal, which a real robot does not
            # have: when our success (the classifier's, or the human's key) disagrees, the episode
            # goes on, as it would on the arm. Ending it would teach the true success as a terminal
            # failure whenever the classifier missed that frame.
            env_succeeded = bool(next_info.get("is_success", False))
            terminated = bool(
                failed
                or success_left == 0
                or (env_terminated and not succeeded and not env_succeeded)  # ended for another reason
            )
            if failed:
                reward = 0.0
            at_limit = success_left is None and result.steps + 1 >= self.time_limit_steps
            truncated = bool(not terminated and (env_truncated or at_limit))
            step = EpisodeStep(
                observation=obs,
                action=action,
                is_intervention=bool(state.is_intervening),
                next_observation=next_obs,
                next_info=next_info,
                reward=float(reward),
                success=bool(succeeded),
                terminated=terminated,
                truncated=truncated,
                penalty=float(next_info.get("discrete_penalty", 0.0)),
                index=result.steps,
                policy_version=version,
            )
            sink.add(step)
            result.steps += 1
            result.intervention_steps += int(step.is_intervention)
            result.success_steps += int(reward > 0)
            result.episode_return += step.reward
            result.flags.append((step.is_intervention, step.reward))
            self.rate.sleep()
            obs, info = next_obs, next_info
            if step.done:
                result.terminated, result.truncated = terminated, truncated
                sink.end_episode(result)
                return result, obs, info
