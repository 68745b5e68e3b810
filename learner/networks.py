"""Networks of the HIL-SERL SAC agent.

    uint8 images ──DrQ shift──▶ FrozenBackbone (ResNet-10, no grad, once per batch)
    or stored float16 maps (feature replay, vision.features: the backbone ran at insert)
                                     │ (B, 512, h, w) per camera
    state ──────────────────────▶ ObservationEncoder: per-camera SpatialLearnedEmbeddings ->
                                     Dropout -> Linear -> LayerNorm -> tanh, state Linear -> LayerNorm -> tanh
                                     │ embedding (B, D), shared
              ┌──────────────────────┼───────────────────────┐
           Actor (tanh-Gaussian)   CriticEnsemble (E heads)   GraspCritic (3 gripper actions)

The backbone, its preprocessing and the spatial embeddings come from ``vision`` (the classifier's
too), so the policy and the classifier see a frame the same way. The per-camera branch has the
layers of ``vision.encoder.CameraEncoder`` under its own parameter names (``pools``,
``projections``): the optimizers' state in a checkpoint is ordered by them, and renaming would
make every earlier checkpoint unresumable.
``Policy`` is what an actor process needs to act: backbone + encoder + actor + grasp critic.
Only its non-backbone weights are trainable, and only those are exported.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from configs.learner import LearnerConfig
from learner.types import GRASP_ACTIONS
from vision.backbone import FrozenBackbone
from vision.encoder import module_key
from vision.resnet10 import ResNet10, SpatialLearnedEmbeddings, feature_map_size


def mlp(in_dim: int, hidden_dims: list[int], out_dim: int | None = None) -> nn.Sequential:
    """Linear -> LayerNorm -> tanh per hidden layer (HIL-SERL's MLP), then an optional output Linear."""
    layers: list[nn.Module] = []
    for width in hidden_dims:
        layers += [nn.Linear(in_dim, width), nn.LayerNorm(width), nn.Tanh()]
        in_dim = width
    if out_dim is not None:
        layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class ObservationEncoder(nn.Module):
    """Trainable heads on the backbone's maps and the state: (features, state) -> (B, D) embedding."""

    def __init__(self, cfg: LearnerConfig, map_shape: tuple[int, int, int] | None = None):
        super().__init__()
        self.image_keys = list(cfg.image_keys)
        self.pools = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        if self.image_keys:
            # Sized from the real feature map (no hard-coded 4x4 trap).
            channels, height, width = map_shape or (ResNet10.out_channels, *feature_map_size(cfg.image_size))
            for key in self.image_keys:
                name = module_key(key)
                self.pools[name] = SpatialLearnedEmbeddings(
                    channels, height, width, cfg.image_embedding_pooling_dim
                )
                self.projections[name] = nn.Sequential(
                    nn.Dropout(cfg.dropout),
                    nn.Linear(channels * cfg.image_embedding_pooling_dim, cfg.latent_dim),
                    nn.LayerNorm(cfg.latent_dim),
                    nn.Tanh(),
                )
        self.state = nn.Sequential(
            nn.Linear(cfg.state_dim, cfg.state_latent_dim), nn.LayerNorm(cfg.state_latent_dim), nn.Tanh()
        )
        # The state's scaling is part of the weights: it travels in every checkpoint and export.
        loc = cfg.state_loc if cfg.normalize_state and cfg.state_loc is not None else [0.0] * cfg.state_dim
        scale = (
            cfg.state_scale if cfg.normalize_state and cfg.state_scale is not None else [1.0] * cfg.state_dim
        )
        self.register_buffer("state_loc", torch.tensor(loc, dtype=torch.float32))
        self.register_buffer("state_scale", torch.tensor(scale, dtype=torch.float32))
        self.output_dim = len(self.image_keys) * cfg.latent_dim + cfg.state_latent_dim

    def forward(self, features: dict[str, torch.Tensor], state: torch.Tensor) -> torch.Tensor:
        parts = [
            self.projections[module_key(k)](self.pools[module_key(k)](features[k])) for k in self.image_keys
        ]
        parts.append(self.state((state - self.state_loc) / self.state_scale))
        return torch.cat(parts, dim=-1)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003
        # Weights saved before the state was scaled carry no scaling: they were trained on raw states.
        for name, fill in (("state_loc", 0.0), ("state_scale", 1.0)):
            state_dict.setdefault(prefix + name, torch.full_like(getattr(self, name), fill))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


class CriticEnsemble(nn.Module):
    """E independent Q heads (each its own MLP and output layer): (embedding, action) -> (E, B)."""

    def __init__(self, embedding_dim: int, action_dim: int, hidden_dims: list[int], num_critics: int):
        super().__init__()
        self.heads = nn.ModuleList(
            mlp(embedding_dim + action_dim, hidden_dims, 1) for _ in range(num_critics)
        )

    def forward(self, embedding: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        inputs = torch.cat([embedding, action], dim=-1)
        return torch.stack([head(inputs).squeeze(-1) for head in self.heads], dim=0)


class Actor(nn.Module):
    """Tanh-squashed diagonal Gaussian policy over the continuous action dimensions."""

    def __init__(
        self,
        embedding_dim: int,
        action_dim: int,
        hidden_dims: list[int],
        log_std_min: float,
        log_std_max: float,
    ):
        super().__init__()
        self.body = mlp(embedding_dim, hidden_dims)
        self.mean = nn.Linear(hidden_dims[-1], action_dim)
        self.log_std = nn.Linear(hidden_dims[-1], action_dim)
        self.log_std_min, self.log_std_max = log_std_min, log_std_max

    def distribution(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.body(embedding)
        log_std = self.log_std(hidden).clamp(self.log_std_min, self.log_std_max)
        return self.mean(hidden), log_std

    def forward(
        self, embedding: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """-> (action in (-1, 1), log-probability (B,)); reparameterised so gradients reach the actor.
        ``generator``: the noise's own stream (a robot's), else torch's global one."""
        mean, log_std = self.distribution(embedding)
        if deterministic:
            pre_tanh = mean
        else:
            noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
            pre_tanh = mean + log_std.exp() * noise
        action = torch.tanh(pre_tanh)
        gaussian = -0.5 * (((pre_tanh - mean) / log_std.exp()) ** 2 + 2 * log_std + math.log(2 * math.pi))
        # log|d tanh(u)/du| = 2 (log 2 - u - softplus(-2u)), the numerically stable form.
        squash = 2.0 * (math.log(2.0) - pre_tanh - F.softplus(-2.0 * pre_tanh))
        return action, (gaussian - squash).sum(dim=-1)


class GraspCritic(nn.Module):
    """HIL-SERL's discrete gripper critic: embedding -> Q (B, 3), column = ``Gripper`` command (close, stay, open)."""

    def __init__(self, embedding_dim: int, hidden_dims: list[int]):
        super().__init__()
        self.net = mlp(embedding_dim, hidden_dims, GRASP_ACTIONS)

    def forward(self, embedding: torch.Tensor) -> torch.Tensor:
        return self.net(embedding)


class Policy(nn.Module):
    """What acting needs: the frozen backbone and the trainable encoder, actor and grasp critic."""

    def __init__(self, cfg: LearnerConfig, backbone: FrozenBackbone | None):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.encoder = ObservationEncoder(cfg, backbone.map_shape() if backbone is not None else None)
        self.actor = Actor(
            self.encoder.output_dim,
            cfg.continuous_action_dim,
            cfg.hidden_dims,
            cfg.log_std_min,
            cfg.log_std_max,
        )
        self.grasp_critic = (
            GraspCritic(self.encoder.output_dim, cfg.hidden_dims) if cfg.grasp_critic else None
        )

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """Every weight except the frozen backbone's."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def features(self, observation: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Backbone maps of every camera in ONE forward pass: {key: (B, 512, h, w)}."""
        keys = self.cfg.image_keys
        if not keys:
            return {}
        images = torch.cat([observation[k] for k in keys], dim=0)
        chunk = self.cfg.encoder_chunk_size or images.shape[0]
        # Chunks bound the peak activation memory (1024 images at 128 px make a 1 GiB stem output).
        maps = torch.cat([self.backbone(part) for part in images.split(chunk)])
        return dict(zip(keys, maps.chunk(len(keys), dim=0), strict=True))

    @torch.no_grad()
    def act(
        self,
        observation: dict[str, torch.Tensor],
        deterministic: bool = False,
        generator: torch.Generator | None = None,
        features: dict[str, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Batched observations (images (B, 3, H, W) uint8, state (B, S)) -> actions (B, A) in the stored layout.
        ``generator`` draws the exploration noise (default: torch's global generator).

        With the grasp critic the last entry is the greedy ``Gripper`` command as a float (0., 1. or 2.).
        ``features``: the backbone maps of these observations when the caller has them already.
        """
        was_training = self.training
        self.eval()
        try:
            device = next(self.encoder.parameters()).device
            observation = {k: v.to(device) for k, v in observation.items()}
            if features is None:
                features = self.features(observation)
            embedding = self.encoder(
                {k: v.to(device) for k, v in features.items()}, observation[self.cfg.state_key]
            )
            action, _ = self.actor(embedding, deterministic=deterministic, generator=generator)
            if self.grasp_critic is not None:
                # Greedy gripper, as in HIL-SERL: exploration comes from demos and interventions.
                gripper = self.grasp_critic(embedding).argmax(dim=-1, keepdim=True).float()
                action = torch.cat([action, gripper], dim=-1)
            return action
        finally:
            self.train(was_training)
