"""Evaluation episodes: the policy alone (no human), mean action, on fresh seeds.

    result = evaluate_policy(cfg, export, episodes=50)   # {"success_rate", "returns", "lengths", ...}

Success is the simulator's ground truth (``info["is_success"]``), not the classifier: evaluation
measures the task, and the classifier's own errors are reported apart (the robots' agreement
counts).
"""

from __future__ import annotations

import copy
import time
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


class _Discard:
    def add(self, step: EpisodeStep) -> None: ...

    def end_episode(self, result: EpisodeResult) -> None: ...

    def discard_episode(self) -> None: ...


def evaluate_policy(
    cfg: TrainRLConfig, export: dict | None, episodes: int, env: Any = None
) -> dict[str, Any]:
    """Run ``episodes`` episodes with the exported policy (``None``: the untrained initial policy)."""
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
    start = time.perf_counter()
    try:
        for _ in range(episodes):
            obs, info = loop.reset()
            result, _, _ = loop.run_episode(obs, info, _Discard())
            results.append(result)
    finally:
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
    }
