"""Evaluation episodes: the policy alone (no human), mean action, on fresh seeds.

    result = evaluate_policy(cfg, export, episodes=50)   # {"success_rate", "successes", "mean_return", ...}
    evaluator = PeriodicEvaluator(cfg, act, episodes=10) # the learning curve's points during a run

Success is the simulator's ground truth (``info["is_success"]``; a rehearsal's scene truth,
``info["scene_success"]``), not the classifier: evaluation
measures the task, and the classifier's own errors are reported apart (the robots' agreement
counts). With ``record_root`` the episodes are also written as a LeRobot dataset whose
``next.reward`` is that ground truth: on-policy frames no classifier was trained on, the fair test
set for comparing one classifier checkpoint with the next (``hilserl eval-reward``).
"""

from __future__ import annotations

import collections
import copy
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actors.intervention.base import NullSource
from actors.loop.episode import EpisodeLoop, EpisodeResult, EpisodeStep, true_success
from actors.loop.rate import RateKeeper
from actors.robots.factory import backend, make_env
from configs.learner import LearnerConfig
from configs.rl import TrainRLConfig
from learner.export import apply_export
from learner.networks import Policy
from vision.backbone import FrozenBackbone

EVAL_SEED_OFFSET = 10_000
"""The final evaluation's env seed, relative to the run's."""
CURVE_SEED_OFFSET = 20_000
"""The periodic evaluation's env seed, relative to the run's: seeds no training robot, demo or
final evaluation uses (robots use seed + 1000 * index)."""
EVAL_EPISODES = "eval_episodes"
"""The run-folder name of the recorded evaluation episodes."""
EVAL_HELD_FRAMES = 10
"""Steps a recorded evaluation episode goes on after its success (the policy holding the cube), so
that the dataset holds success frames of the policy's own to judge a classifier by; without them
an episode's one success frame is its label edge, which classifiers leave out."""


class _Discard:
    def add(self, step: EpisodeStep) -> None: ...

    def end_episode(self, result: EpisodeResult) -> None: ...

    def discard_episode(self) -> None: ...


EVAL_FRAMES = 4
FRAMES_KEPT = 8
"""Evaluations whose frames wait for a status to carry them (two can end between two polls)."""
"""Camera frames kept of each periodic evaluation's first episode (TensorBoard's images)."""


class _KeepFrames(_Discard):
    """Keeps the camera images of one episode, to pick a few evenly spaced ones for TensorBoard."""

    def __init__(self, image_keys: list[str]) -> None:
        self.image_keys = image_keys
        self.images: dict[str, list[np.ndarray]] = {key: [] for key in image_keys}

    def add(self, step: EpisodeStep) -> None:
        for key in self.image_keys:
            if key in step.next_observation:
                self.images[key].append(step.next_observation[key])

    def picked(self, count: int = EVAL_FRAMES) -> dict[str, np.ndarray]:
        """(count, 3, H, W) uint8 per camera: the first and last frame and evenly spaced ones between."""
        out = {}
        for key, frames in self.images.items():
            if frames:
                index = np.unique(np.linspace(0, len(frames) - 1, count).round().astype(int))
                out[key] = np.stack([to_chw(frames[i]) for i in index])
        return out


def to_chw(image: np.ndarray) -> np.ndarray:
    """A camera frame (H, W, 3) as the networks' and the replay's contiguous uint8 (3, H, W)."""
    return np.ascontiguousarray(np.asarray(image, dtype=np.uint8).transpose(2, 0, 1))


def observation_batch(obs: dict[str, Any], lcfg: LearnerConfig) -> dict[str, torch.Tensor]:
    """One env observation (images (H, W, 3) uint8) as the policy's batch of one (images (1, 3, H, W))."""
    batch = {k: torch.from_numpy(to_chw(obs[k]))[None] for k in lcfg.image_keys}
    batch[lcfg.state_key] = torch.from_numpy(np.asarray(obs[lcfg.state_key], dtype=np.float32))[None]
    return batch


def mean_action(policy: Policy, lcfg: LearnerConfig) -> Callable[[dict[str, Any]], np.ndarray]:
    """The policy alone, as evaluation acts: its mean action (no exploration noise), greedy gripper."""
    device = next(policy.encoder.parameters()).device

    def act(obs: dict[str, Any]) -> np.ndarray:
        batch = {k: v.to(device) for k, v in observation_batch(obs, lcfg).items()}
        return policy.act(batch, deterministic=True)[0].cpu().numpy().astype(np.float32)

    return act


def summarize(results: list[EpisodeResult], wall_s: float) -> dict[str, Any]:
    """Success rate, successes, mean return and length of evaluation episodes."""
    successes = [r.success for r in results]
    return {
        "episodes": len(results),
        "success_rate": float(np.mean(successes)) if results else 0.0,
        "successes": int(sum(successes)),
        "mean_return": float(np.mean([r.episode_return for r in results])) if results else 0.0,
        "mean_length": float(np.mean([r.steps for r in results])) if results else 0.0,
        "wall_s": wall_s,
    }


class PeriodicEvaluator:
    """The learning curve's points: ``episodes`` episodes of the policy alone, the same env seeds each time.

        evaluator = PeriodicEvaluator(cfg, act, episodes=10)          # its own simulated env
        point = evaluator(env_steps=1000, version=512)                # {"env_steps", "eval_success_rate", ...}

    With ``env`` given (a real arm's only env, ``runtime.eval_env='shared'``) the episodes run on it
    unseeded and ``success`` judges them (the classifier); the caller runs them between training
    episodes. Nothing is stored and no human acts.
    """

    def __init__(self, cfg: TrainRLConfig, act, episodes: int, env: Any = None, success=None):
        self.env_cfg = copy.deepcopy(cfg.env)
        if env is None and backend(self.env_cfg) == "sim":
            self.env_cfg.realtime = False
        self.env_cfg.seed = (
            cfg.seed + CURVE_SEED_OFFSET if env is None else None
        )  # None: leave a shared env's stream
        self.own_env = env is None
        self.env = make_env(self.env_cfg) if env is None else env
        self.act, self.episodes = act, int(episodes)
        self.success = success or world_success
        self.points: list[dict[str, Any]] = []
        self.image_keys = list(cfg.learner.image_keys)
        self.frames: collections.deque[dict[str, Any]] = collections.deque(maxlen=FRAMES_KEPT)
        """The latest evaluations' first episodes, a few frames per camera each: {"env_steps", "images"}."""

    def __call__(self, env_steps: int, version: int) -> dict[str, Any]:
        loop = EpisodeLoop(
            self.env_cfg,
            self.env,
            NullSource(),
            policy=self.act,
            success=self.success,
            rate=evaluation_rate(self.env_cfg),
        )
        start = time.perf_counter()
        results = []
        for episode in range(self.episodes):  # a new loop seeds its first reset: the same episodes every time
            obs, info = loop.reset()
            sink = _KeepFrames(self.image_keys) if episode == 0 else _Discard()
            results.append(loop.run_episode(obs, info, sink)[0])
            if episode == 0:
                self.frames.append({"env_steps": int(env_steps), "images": sink.picked()})
        summary = summarize(results, time.perf_counter() - start)
        point = {"env_steps": int(env_steps), "eval_policy_version": int(version)}
        point.update({f"eval_{k}": v for k, v in summary.items()})
        self.points.append(point)
        return point

    def close(self) -> None:
        if self.own_env:
            self.env.close()


def world_success(next_observation: dict[str, Any], next_info: dict[str, Any]) -> bool:
    """An evaluation's judge: the simulator's success, or a rehearsal's scene truth."""
    return bool(true_success(next_info))


def evaluation_rate(env_cfg) -> RateKeeper:
    """Evaluation episodes of an arm (real or rehearsed) keep the control rate the policy was
    trained at; the simulator's run as fast as they can (its physics waits for the step)."""
    return RateKeeper(env_cfg.fps if backend(env_cfg) != "sim" or env_cfg.realtime else None)


def evaluation_env_config(cfg: TrainRLConfig, recording: bool) -> Any:
    """The final evaluation's env: its own seeds, no real-time pacing, and when its episodes are
    recorded, ``EVAL_HELD_FRAMES`` steps after each success (the success rate is the same: an
    episode's success is decided at its first success frame)."""
    env_cfg = copy.deepcopy(cfg.env)
    env_cfg.seed = cfg.seed + EVAL_SEED_OFFSET
    env_cfg.realtime = False if backend(env_cfg) == "sim" else env_cfg.realtime
    if recording:
        env_cfg.number_of_steps_after_success = max(env_cfg.number_of_steps_after_success, EVAL_HELD_FRAMES)
    return env_cfg


def evaluate_policy(
    cfg: TrainRLConfig,
    export: dict | None,
    episodes: int,
    env: Any = None,
    record_root: Path | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` episodes with the exported policy (``None``: the untrained initial policy);
    with ``record_root``, also write them there as a labeled LeRobot dataset."""
    env_cfg = evaluation_env_config(cfg, recording=record_root is not None)
    own_env = env is None
    env = env if env is not None else make_env(env_cfg)
    lcfg = cfg.learner
    torch.manual_seed(cfg.seed)
    policy = Policy(lcfg, FrozenBackbone.from_config(lcfg) if lcfg.image_keys else None).eval()
    if export is not None:
        apply_export(policy, export)
    loop = EpisodeLoop(
        env_cfg,
        env,
        NullSource(),
        policy=mean_action(policy, lcfg),
        success=world_success,
        rate=evaluation_rate(env_cfg),
    )
    results: list[EpisodeResult] = []
    sink: Any = _Discard()
    if record_root is not None:
        from actors.loop.record import DatasetSink, RecordSummary

        env_cfg.repo_id = f"local/{Path(record_root).name}"
        summary = RecordSummary(str(record_root), env_cfg.repo_id)
        sink = DatasetSink(env_cfg, Path(record_root), summary, durable=False)  # regenerable
        sink.on_saved = lambda: None  # no log line per evaluation episode
    start = time.perf_counter()
    try:
        for _ in range(episodes):
            obs, info = loop.reset()
            if record_root is not None and sink.dataset is None:
                sink.create(obs)
            result, _, _ = loop.run_episode(obs, info, sink)
            results.append(result)
    finally:
        if record_root is not None and sink.dataset is not None:
            sink.discard_episode()
            sink.dataset.finalize()
        if own_env:
            env.close()
    return {
        **summarize(results, time.perf_counter() - start),
        "policy_version": None if export is None else int(export["version"]),
        "dataset": str(record_root) if record_root is not None else None,
    }
