"""The scripted human as a person would intervene: at the signs of failure a person can see, and
always from where the arm is, never from a phase its expert reached while the policy drove."""

from __future__ import annotations

import numpy as np
import pytest

from actors.intervention.scripted import FailureWatch, ScriptedHuman
from actors.robots.sim import scene
from actors.robots.sim.env import SO101SimEnv
from actors.robots.sim.expert import CLOSE
from configs.env import EnvConfig, ProcessorConfig, ResetConfig, TeleopConfig


def _human(schedule: str, task: str = "reach_grasp", **teleop) -> tuple[SO101SimEnv, ScriptedHuman]:
    cfg = EnvConfig(
        task=task,
        teleop=TeleopConfig(type="scripted", schedule=schedule, **teleop),
        processor=ProcessorConfig(reset=ResetConfig(control_time_s=2.5)),
    )
    env = SO101SimEnv(cfg, render=False)
    return env, ScriptedHuman.from_config(cfg, env)


def _run(env, human, policy, episodes: int, seed: int = 0):
    """Yield (info before the step, human's state) for every step the human was asked about."""
    for episode in range(episodes):
        human.reset()
        obs, info = env.reset(seed=seed + episode)
        for _ in range(env.max_episode_steps):
            state = human.poll(obs, info)
            yield info, state
            action = state.action if state.is_intervening else policy(obs, info)
            obs, _, terminated, truncated, info = env.step(action)
            if terminated or truncated:
                break


def _random_policy(seed: int):
    rng = np.random.default_rng(seed)
    return lambda obs, info: np.array([*rng.uniform(-1, 1, 3), rng.integers(0, 3)], dtype=np.float32)


@pytest.mark.parametrize(
    "schedule, teleop",
    [
        ("decay", dict(intervention_prob=0.8, decay_rate=1.0, period_steps=5)),
        ("on_failure", dict(intervention_prob=1.0, decay_rate=1.0)),
    ],
)
def test_after_a_takeover_the_human_closes_the_gripper_only_around_the_cube(schedule, teleop):
    env, human = _human(schedule, **teleop)
    closes = 0
    for info, state in _run(env, human, _random_policy(1), episodes=25):
        if not (state.is_intervening and state.action[3] == CLOSE) or info["grasped"]:
            continue
        closes += 1
        offset = np.asarray(info["ee_pos"]) - np.asarray(info["cube_pos"])
        assert np.linalg.norm(offset[:2]) < 0.025 and offset[2] < scene.CUBE_HALF + 0.03, (
            f"the human closed the gripper {offset.round(3)} m from the cube"
        )
    assert closes >= 10  # the check saw real grasps


def test_on_failure_steps_in_at_the_first_sign_and_drives_to_the_end():
    env, human = _human("on_failure", intervention_prob=1.0, decay_rate=1.0)
    flags, successes = [], 0
    for info, state in _run(env, human, _random_policy(2), episodes=20):
        if info["step"] == 0:
            flags.append([])
        flags[-1].append(state.is_intervening)
        successes += bool(info.get("is_success"))
    for episode in flags:  # once in, the person stays in: no hand-back within an episode
        first = episode.index(True) if True in episode else len(episode)
        assert all(episode[first:]), episode
    assert sum(True in e for e in flags) >= 18 and sum(human.failure_signs.values()) == sum(
        True in e for e in flags
    )
    # A policy that does the task well is left alone.
    env, human = _human("on_failure", intervention_prob=1.0, decay_rate=1.0)
    from actors.robots.sim.expert import ScriptedExpert

    expert = ScriptedExpert(env, seed=5)
    steps = list(_run(env, human, expert.act, episodes=10, seed=100))
    assert not any(state.is_intervening for _, state in steps)


def test_failure_signs():
    far = {"ee_pos": [0.30, 0.0, 0.1], "cube_pos": [0.20, 0.0, 0.0125], "gripper_deg": 45.0, "grasped": False}
    watch = FailureWatch(patience_steps=5, far_m=0.05, drift_steps=2, closed_deg=25.0)
    assert watch.failing({**far, "step": 1}) is None
    assert watch.failing({**far, "ee_pos": [0.32, 0.0, 0.1], "step": 2}) is None
    assert watch.failing({**far, "ee_pos": [0.34, 0.0, 0.1], "step": 3}) == "drifting"
    watch.reset()
    assert watch.failing({**far, "gripper_deg": 10.0, "step": 1}) == "closed_empty"
    watch.reset()
    assert watch.failing({**far, "step": 5}) == "too_slow"
    watch.reset()
    held = {**far, "ee_pos": far["cube_pos"], "gripper_deg": 10.0, "grasped": True, "step": 6}
    assert watch.failing(held) is None  # held is not failing, however long it took
    assert watch.failing({**held, "grasped": False, "step": 7}) == "dropped"
