"""Reward classifier: model config (LeRobot's ``reward_classifier`` JSON shape) and training job config."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from configs.common import FeatureSpec
from configs.dataset import DatasetConfig


@dataclass
class RewardClassifierConfig:
    """The image reward classifier. Field names follow LeRobot (0.4 and 0.6) so its JSON files load unchanged."""

    type: str = "reward_classifier"
    """Policy type; must be 'reward_classifier'."""
    model_name: str = "helper2424/resnet10"
    """Backbone: a local folder, or a hub id resolved from the local Hugging Face cache only
    (LeRobot 0.6 names the same weights lerobot/resnet10)."""
    model_type: str = "cnn"
    """'cnn' (ResNet-10) or 'transformer' (a vision transformer from transformers, local path)."""
    num_cameras: int = 2
    """Number of camera images per frame; must equal the number of VISUAL input_features."""
    num_classes: int = 2
    """2 for success/failure (one logit, BCE); more for multi-class (cross-entropy)."""
    hidden_dim: int = 256
    """Width of the classifier head."""
    latent_dim: int = 256
    """Per-camera image embedding size after the spatial embedding projection."""
    image_embedding_pooling_dim: int = 8
    """Features per channel of the spatial learned embedding (HIL-SERL's num_features)."""
    dropout_rate: float = 0.1
    """Dropout in the image projection and in the head."""
    learning_rate: float = 1e-4
    """AdamW learning rate."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    grad_clip_norm: float = 1.0
    """Gradient clipping norm."""
    device: str = "cpu"
    """Torch device; 'cuda' falls back to the CPU with a warning when no GPU is present."""
    use_amp: bool = False
    """Mixed precision (GPU only)."""
    image_size: int | None = None
    """Resize images to image_size x image_size before the backbone (None keeps the dataset size)."""
    input_features: dict[str, FeatureSpec] = field(default_factory=dict)
    """Camera keys and shapes, e.g. {"observation.images.front": {"type": "VISUAL", "shape": [3, 128, 128]}}."""
    # Accepted so a LeRobot-written config.json loads unchanged; not used by our model.
    output_features: dict[str, FeatureSpec] = field(default_factory=dict)
    """(LeRobot compatibility) output features."""
    normalization_mapping: dict[str, str] = field(default_factory=dict)
    """(LeRobot compatibility) normalization modes; we always apply ImageNet normalization."""
    n_obs_steps: int = 1
    """(LeRobot compatibility)."""
    use_peft: bool = False
    """(LeRobot compatibility)."""
    push_to_hub: bool = False
    """(LeRobot compatibility) never pushes; kept so LeRobot configs load."""
    repo_id: str | None = None
    """(LeRobot compatibility)."""
    private: bool | None = None
    """(LeRobot compatibility)."""
    tags: list[str] | None = None
    """(LeRobot compatibility)."""
    license: str | None = None
    """(LeRobot compatibility)."""
    pretrained_path: str | None = None
    """(LeRobot compatibility)."""
    pretrained_revision: str | None = None
    """(LeRobot 0.6 compatibility)."""
    name: str = "reward_classifier"
    """(LeRobot compatibility)."""
    optimizer_lr: float | None = None
    """(LeRobot compatibility) unused."""
    extra: dict[str, Any] | None = None
    """Free-form notes kept with the config."""

    def __post_init__(self) -> None:
        if self.type != "reward_classifier":
            raise ValueError(f"policy.type is '{self.type}' but this command trains a 'reward_classifier'")


@dataclass
class TrainScalingConfig:
    """Ray Train scaling."""

    num_workers: int = 1
    """Ray Train workers (data-parallel)."""
    use_gpu: bool = False
    """Give each worker a GPU."""
    cpus_per_worker: float = 1.0
    """CPUs reserved per worker."""


@dataclass
class RewardTrainConfig:
    """`hilserl train-reward`: offline reward classifier training (LeRobot train-config JSON shape)."""

    policy: RewardClassifierConfig | None = field(default_factory=RewardClassifierConfig)
    """The classifier (LeRobot 0.4's name for the block)."""
    reward_model: RewardClassifierConfig | None = None
    """The classifier under LeRobot 0.6's name: when set it becomes ``policy`` (then null or left out)."""
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    """Labeled dataset (reward column next.reward)."""
    output_dir: str = "outputs/reward_classifier"
    """Where checkpoints, TensorBoard events and pretrained_model/ go (outside the dataset)."""
    overwrite: bool = False
    """Allow an existing non-empty output_dir; replaces only what train-reward wrote there."""
    job_name: str | None = None
    """Run name; a unique suffix is added per launch (Ray Train V2 silently resumes a reused name)."""
    storage_path: str | None = None
    """Ray Train storage path (default: <output_dir>/ray)."""
    batch_size: int = 32
    """Batch size."""
    steps: int = 2000
    """Optimizer steps."""
    eval_freq: int = 200
    """Evaluate every this many steps."""
    log_freq: int = 50
    """Log training metrics every this many steps."""
    save_freq: int = 2000
    """(LeRobot compatibility) the best checkpoint is always kept."""
    num_workers: int = 0
    """(LeRobot compatibility) must stay 0: frames are decoded once and cached, there is no DataLoader."""
    seed: int = 1000
    """Random seed."""
    val_fraction: float = 0.2
    """Fraction of episodes held out for validation (split by episode, never by frame)."""
    cache_features: bool = True
    """Cache frozen-backbone features (turned off automatically when augmentations are on)."""
    augment: bool = False
    """LeRobot ColorJitter / SharpnessJitter augmentation (turns feature caching off)."""
    train_backbone: bool = False
    """Train the backbone as well as the head (end to end; turns feature caching off, every step runs
    the backbone). For a random backbone (no pretrained weights on this machine), whose frozen
    features miss small details such as whether the gripper's jaw has closed on the cube."""
    reward_key: str = "next.reward"
    """Label column."""
    allow_random_backbone: bool = False
    """Use a randomly initialised ResNet-10 when policy.model_name is not found locally (loud warning)."""
    scaling: TrainScalingConfig = field(default_factory=TrainScalingConfig)
    """Ray Train workers and GPUs."""
    use_ray: bool = True
    """Run through a Ray Train TorchTrainer (False: the plain torch loop in this process)."""
    wandb: dict[str, Any] | None = None
    """(LeRobot compatibility) ignored; metrics go to TensorBoard."""
    resume: bool = False
    """(LeRobot compatibility) must stay false: a run always starts over (--overwrite replaces it)."""

    def __post_init__(self) -> None:
        if self.reward_model is not None:
            if self.policy is not None and self.policy != RewardClassifierConfig():
                raise ValueError(
                    "the classifier is given twice (policy and reward_model): keep one block, and "
                    "override it under the same name (--reward_model.hidden_dim=...)"
                )
            self.policy, self.reward_model = self.reward_model, None
        if self.policy is None:
            self.policy = RewardClassifierConfig()
        if self.resume:
            raise ValueError(
                "resume is not supported by train-reward: start a new run (--overwrite to replace one)"
            )
