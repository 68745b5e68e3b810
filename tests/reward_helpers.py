"""Small builders shared by the reward classifier tests: backbone folders, labeled datasets, configs."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from configs.dataset import DatasetConfig
from configs.reward import RewardClassifierConfig, RewardTrainConfig
from tests.lerobot_data import make_dataset
from vision.resnet10 import ResNet10


def write_backbone(folder: Path, seed: int = 0) -> Path:
    """A local ResNet-10 weights folder (random weights with a fixed seed; nothing can be downloaded)."""
    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(
        {k: v.contiguous() for k, v in ResNet10().state_dict().items()}, str(folder / "model.safetensors")
    )
    return folder


def success_after(cutoff: int):
    """Frames from ``cutoff`` on are successes (the labeling scheme of seed 003)."""
    return lambda episode, i: float(i >= cutoff)


def labeled_dataset(
    root: Path, image_size: int = 32, cameras=("front", "side"), episodes=(6, 6, 6), **kwargs
):
    kwargs.setdefault("reward_fn", success_after(3))
    kwargs.setdefault("use_videos", False)
    return make_dataset(root, episode_lengths=episodes, cameras=cameras, image_size=image_size, **kwargs)


def train_config(
    dataset_root: Path, backbone: Path, output_dir: Path, cameras: int = 2, **overrides
) -> RewardTrainConfig:
    policy = RewardClassifierConfig(
        model_name=str(backbone),
        num_cameras=cameras,
        hidden_dim=16,
        latent_dim=8,
        image_embedding_pooling_dim=2,
    )
    base = dict(
        policy=policy,
        dataset=DatasetConfig(root=str(dataset_root)),
        output_dir=str(output_dir),
        steps=2,
        batch_size=4,
        eval_freq=2,
        log_freq=1,
        val_fraction=0.34,
        use_ray=False,
    )
    base.update(overrides)
    return RewardTrainConfig(**base)
