"""Tiny configs and a tiny classifier checkpoint for the runtime-role tests (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch

from configs.common import FeatureSpec
from configs.env import EnvConfig, ProcessorConfig, ResetConfig, RewardClassifierEnvConfig, TeleopConfig
from configs.learner import LearnerConfig
from configs.reward import RewardClassifierConfig
from configs.rl import RewardActorConfig, RuntimeConfig, TrainRLConfig
from reward.checkpoint import save_checkpoint
from reward.model import build_classifier

SIZE = 32
KEYS = ["observation.images.front", "observation.images.wrist"]


def write_classifier(
    folder: Path, size: int = SIZE, keys=tuple(KEYS), seed: int = 0, policy_backbone: bool = False
) -> Path:
    """A classifier checkpoint with random weights on the env's cameras (threshold 0.5). With
    ``policy_backbone`` its ResNet-10 is the tiny configs' policy backbone (the fixed-seed random one)."""
    torch.manual_seed(seed)
    config = RewardClassifierConfig(
        model_name="unused",
        num_cameras=len(keys),
        hidden_dim=16,
        latent_dim=8,
        image_embedding_pooling_dim=2,
        image_size=size,
        input_features={k: FeatureSpec(type="VISUAL", shape=[3, size, size]) for k in keys},
    )
    model = build_classifier(
        config, load_weights=policy_backbone, allow_random_backbone=policy_backbone
    ).eval()
    return save_checkpoint(folder, model, thresholds={"best_f1": 0.5}, metrics={"val": {"accuracy": 0.5}})


def tiny_config(tmp_path: Path, classifier: Path | None = None, steps: int = 60, **runtime) -> TrainRLConfig:
    """Simulated reach_grasp at 32 px, a small learner, a short budget."""
    env = EnvConfig(
        task="reach_grasp",
        image_size=SIZE,
        teleop=TeleopConfig(type="scripted", schedule="periodic", intervention_prob=0.5, period_steps=6),
        processor=ProcessorConfig(
            reset=ResetConfig(control_time_s=2.0),
            reward_classifier=RewardClassifierEnvConfig(
                pretrained_path=str(classifier) if classifier else None
            ),
        ),
    )
    learner = LearnerConfig(
        image_keys=list(KEYS),
        batch_size=8,
        hidden_dims=[32, 32],
        latent_dim=16,
        state_latent_dim=8,
        image_embedding_pooling_dim=2,
        allow_random_vision_weights=True,
        vision_model_name=str(tmp_path / "no-weights"),
        online_capacity=2000,
        demo_capacity=2000,
    )
    defaults = dict(
        total_env_steps=steps,
        learning_starts=16,
        weight_push_every=2,
        checkpoint_every=10,
        chunk_size=4,
        replay_snapshot_every=25,
        progress=False,
    )
    return TrainRLConfig(
        output_dir=str(tmp_path / "runs"),
        run_name="tiny",
        env=env,
        learner=learner,
        reward=RewardActorConfig(source="classifier" if classifier else "sparse"),
        runtime=RuntimeConfig(**{**defaults, **runtime}),
    )
