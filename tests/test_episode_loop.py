"""The one episode loop with a real simulated SO-101 and the scripted human: how episodes end."""

import pytest

from actors.intervention.scripted import ScriptedHuman
from actors.loop.episode import EpisodeLoop
from actors.robots.sim.env import SO101SimEnv
from configs.env import EnvConfig, ProcessorConfig, ResetConfig, TeleopConfig


class Steps:
    def __init__(self) -> None:
        self.steps, self.results = [], []

    def add(self, step) -> None:
        self.steps.append(step)

    def end_episode(self, result) -> None:
        self.results.append(result)

    def discard_episode(self) -> None:
        self.steps.clear()


def _loop(success):
    cfg = EnvConfig(task="reach_grasp", fps=10, seed=3, number_of_steps_after_success=0)
    cfg.teleop = TeleopConfig(type="scripted", schedule="always")
    cfg.processor = ProcessorConfig(reset=ResetConfig(control_time_s=3.0, terminate_on_success=True))
    env = SO101SimEnv(cfg, render=False)
    return EpisodeLoop(cfg, env, ScriptedHuman.from_config(cfg, env), success=success), env


def _first_true_success(sink: Steps) -> int:
    return next(i for i, s in enumerate(sink.steps) if s.next_info["is_success"])


@pytest.mark.parametrize("late", [None, 2])
def test_the_simulators_own_success_does_not_end_an_episode_our_success_missed(late):
    """A classifier that misses the grasp frame (or sees it two steps late) must not turn the true
    success into a terminal failure: the simulator's end-on-success is ignored until ours fires."""
    seen = {"first": None, "calls": 0}

    def classifier(next_obs, next_info):  # a detector that lags the simulator's truth
        seen["calls"] += 1
        if next_info["is_success"] and seen["first"] is None:
            seen["first"] = seen["calls"]
        return late is not None and seen["first"] is not None and seen["calls"] >= seen["first"] + late

    loop, env = _loop(classifier)
    # The scripted human presses success one step after the simulator's: take it out of the way.
    loop.source.events.push = lambda event: None
    sink = Steps()
    obs, info = loop.reset()
    result, _, _ = loop.run_episode(obs, info, sink)
    env.close()
    first = _first_true_success(sink)
    assert not sink.steps[first].terminated and sink.steps[first].reward == 0.0  # went on
    if late is None:
        assert result.truncated and not result.terminated and len(sink.steps) == loop.time_limit_steps
    else:
        assert result.terminated and len(sink.steps) == first + late + 1 and sink.steps[-1].reward == 1.0


def test_the_simulators_success_ends_the_episode_when_ours_agrees():
    loop, env = _loop(lambda next_obs, next_info: bool(next_info["is_success"]))
    sink = Steps()
    result, _, _ = loop.run_episode(*loop.reset(), sink)
    env.close()
    assert result.terminated and sink.steps[-1].reward == 1.0
    assert len(sink.steps) == _first_true_success(sink) + 1


def test_frames_after_a_success_stop_when_the_simulator_says_it_was_lost():
    """A held cube that slips during the frames recorded after a success must not be labeled success."""
    cfg = EnvConfig(task="reach_grasp", fps=10, seed=3, number_of_steps_after_success=8)
    cfg.teleop = TeleopConfig(type="scripted", schedule="always")
    cfg.processor = ProcessorConfig(reset=ResetConfig(control_time_s=4.0, terminate_on_success=True))
    env = SO101SimEnv(cfg, render=False)
    step, seen = env.step, {"n": 0}

    def slipping(action):  # the truth holds for 3 steps after the first success, then is lost
        obs, reward, terminated, truncated, info = step(action)
        seen["n"] += bool(info["is_success"]) or seen["n"] > 0
        if seen["n"] > 3:
            info = {**info, "is_success": False}
        return obs, reward, False, truncated, info

    env.step = slipping
    loop = EpisodeLoop(cfg, env, ScriptedHuman.from_config(cfg, env))
    sink = Steps()
    result, _, _ = loop.run_episode(*loop.reset(), sink)
    env.close()
    rewards = [s.reward for s in sink.steps]
    first = rewards.index(1.0)
    assert rewards[first:] == [1.0, 1.0, 1.0, 0.0] and result.terminated  # not 8 success frames
