"""Tiny learner configs and filled replay buffers shared by the learner tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.learner import LearnerConfig
from learner.replay import MixedReplay
from learner.types import Gripper, Transition

CAMERAS = ["observation.images.front", "observation.images.wrist"]


def tiny_config(**overrides) -> LearnerConfig:
    values = dict(
        image_keys=list(CAMERAS),
        image_size=32,
        state_dim=3,
        action_dim=3,
        batch_size=8,
        hidden_dims=[16, 16],
        latent_dim=8,
        state_latent_dim=8,
        image_embedding_pooling_dim=2,
        vision_model_name="/nonexistent/resnet10",
        allow_random_vision_weights=True,
        online_capacity=64,
        demo_capacity=64,
        feature_cache=False,  # the pixel path; feature-replay tests turn it on
    )
    values.update(overrides)
    return LearnerConfig(**values)


def fill(cfg: LearnerConfig, episodes: int = 3, length: int = 6, seed: int = 0, backbone=None) -> MixedReplay:
    """A replay with random transitions; every third step is a human intervention.

    With ``cfg.feature_cache`` pass the agent's ``backbone`` (random test weights differ per load).
    """
    rng = np.random.default_rng(seed)
    replay = MixedReplay.from_config(cfg, backbone=backbone)

    def observation():
        obs = {
            k: rng.integers(0, 256, (3, cfg.image_size, cfg.image_size), dtype=np.uint8)
            for k in cfg.image_keys
        }
        obs[cfg.state_key] = rng.standard_normal(cfg.state_dim).astype(np.float32)
        return obs

    for _ in range(episodes):
        current = observation()
        for step in range(length):
            following = observation()
            action = rng.uniform(-1, 1, cfg.action_dim).astype(np.float32)
            if cfg.grasp_critic:
                action[-1] = rng.integers(0, 3)  # Gripper command
            replay.add(
                Transition(
                    observation=current,
                    action=action,
                    reward=float(rng.random() < 0.3),
                    next_observation=following,
                    terminated=step == length - 1 and bool(rng.random() < 0.5),
                    truncated=False,
                    is_intervention=step % 3 == 0,
                    complementary_info={"grasp_penalty": -0.02 * float(action[-1] != Gripper.STAY)},
                )
            )
            current = following
        replay.online.truncated[replay.online._newest() - 1] = True  # mark the episode end for realism
    return replay


@pytest.fixture(autouse=True)
def single_thread_torch():
    """Tiny networks run faster on one thread, and far faster on a shared, oversubscribed CI box."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
