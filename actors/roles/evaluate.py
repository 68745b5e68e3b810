"""Evaluation episodes: the policy alone (no human), mean action, on fresh seeds.

    result = evaluate_policy(cfg, export, episodes=50)   # {"success_rate", "returns", "lengths", ...}

Success is the simulator's ground truth (``info["is_success"]``), not the classifier: evaluation
measures the task, and the classifier's own errors are reported apart (the robots' agreement
counts). With ``record_root`` the episodes are also written as a LeRobot dataset whose
``next.reward`` is that ground truth: on-policy frames no classifier was trained on, the fair test
set for comparing one classifier checkpoint with the next (``hilserl eval-reward``).
"""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actors.intervention.base import NullSource
from actors.loop.episode import EpisodeLoop, EpisodeResult, EpisodeStep
from actors.robots.factory import make_env
from configs.rl import TrainRLConfig
from learner.export import apply_export
from learner.networks import FrozenBackbone, Policy

EVAL_SEED_OFFSET = 10_000
EVAL_EPISODES = "eval_episodes"
"""The run-folder name of the recorded evaluation episodes."""


class _Discard:
    def add(self, step: EpisodeStep) -> None: ...

    def end_episode(self, result: EpisodeResult) -> None: ...

    def discard_episode(self) -> None: ...


def evaluate_policy(
    cfg: TrainRLConfig,
    export: dict | None,
    episodes: int,
    env: Any = None,
    record_root: Path | None = None,
) -> dict[str, Any]:
    """Run ``episodes`` episodes with the exported policy (``None``: the untrained initial policy);
    with ``record_root``, also write them there as a labeled LeRobot dataset."""
    env_cfg = copy.deepcopy(cfg.env)
    env_cfg.seed = cfg.seed + EVAL_SEED_OFFSET
    env_cfg.realtime = False
    own_env = env is None
    env = env if env is not None else make_env(env_cfg)
    lcfg = cfg.learner
    torch.manual_seed(cfg.seed)
    policy = Policy(lcfg, FrozenBackbone.from_config(lcfg) if lcfg.image_keys else None).eval()
    if export is not None:
        apply_export(policy, export)

    def act(obs: dict[str, Any]) -> np.ndarray:
        batch = {
            k: torch.from_numpy(np.ascontiguousarray(obs[k].transpose(2, 0, 1)))[None]
            for k in lcfg.image_keys
        }
        batch[lcfg.state_key] = torch.from_numpy(np.asarray(obs[lcfg.state_key], dtype=np.float32))[None]
        return policy.act(batch, deterministic=True)[0].numpy()

    loop = EpisodeLoop(env_cfg, env, NullSource(), policy=act)
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
    successes = [r.success for r in results]
    return {
        "episodes": len(results),
        "success_rate": float(np.mean(successes)) if results else 0.0,
        "successes": int(sum(successes)),
        "mean_return": float(np.mean([r.episode_return for r in results])) if results else 0.0,
        "mean_length": float(np.mean([r.steps for r in results])) if results else 0.0,
        "policy_version": None if export is None else int(export["version"]),
        "wall_s": time.perf_counter() - start,
        "dataset": str(record_root) if record_root is not None else None,
    }
