"""The trainable per-camera branch on a frozen backbone's output, shared by the classifier and the policy.

    (B, 512, h, w) map ─ SpatialLearnedEmbeddings ─ Dropout ─ Linear(latent) ─ LayerNorm ─ Tanh ─ (B, latent)

HIL-SERL's image encoder after the ResNet (``serl_launcher``'s ``EncodingWrapper``): the spatial
embedding is sized from the real map, so 64, 84 and 128 px inputs all work. For a backbone that
already pools (a vision transformer's CLS token) the spatial embedding is left out.
"""

from __future__ import annotations

import torch
from torch import nn

from vision.resnet10 import SpatialLearnedEmbeddings


def module_key(camera_key: str) -> str:
    """ModuleDict keys cannot contain dots (LeRobot uses the same replacement)."""
    return camera_key.replace(".", "_")


class CameraEncoder(nn.Module):
    """Pooling (spatial embedding or none) → Dropout → Linear → LayerNorm → Tanh."""

    def __init__(
        self, in_dim: int, latent_dim: int, dropout: float, spatial: SpatialLearnedEmbeddings | None
    ):
        super().__init__()
        self.spatial = spatial
        self.dropout = nn.Dropout(dropout)
        self.projection = nn.Linear(in_dim, latent_dim)
        self.norm = nn.LayerNorm(latent_dim)

    @classmethod
    def on_map(
        cls, map_shape: tuple[int, int, int], pooling_dim: int, latent_dim: int, dropout: float
    ) -> CameraEncoder:
        """The branch for a (C, h, w) feature map, with a spatial embedding of ``pooling_dim`` features."""
        channels, height, width = map_shape
        spatial = SpatialLearnedEmbeddings(channels, height, width, pooling_dim)
        return cls(channels * pooling_dim, latent_dim, dropout, spatial)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = self.spatial(features) if self.spatial is not None else features
        return torch.tanh(self.norm(self.projection(self.dropout(x))))
