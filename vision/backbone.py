"""The frozen backbone: uint8 camera frames -> feature maps, and the digest that names its weights.

    backbone = FrozenBackbone.load("helper2424/resnet10", image_size=64)   # hub cache only
    maps = backbone(images)                                                # (N, 512, h, w)
    weights_sha256(backbone)                                               # same weights, same digest

``weights_sha256`` is the one digest of backbone weights: the learner's checkpoints, the replay's
stored features and the reward actor all name a backbone by it, so two roles can tell that they
run the same network.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from configs.errors import UserError
from vision.preprocess import preprocess_images
from vision.resnet10 import ResNet10, load_resnet10


def weights_sha256(module: nn.Module) -> str:
    """SHA-256 of a module's state dict (names and bytes, sorted): identifies backbone weights."""
    digest = hashlib.sha256()
    for key, value in sorted(module.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


class FrozenBackbone(nn.Module):
    """The pretrained ResNet-10, frozen and always in eval mode: uint8 images -> feature maps."""

    def __init__(self, backbone: ResNet10, image_size: int):
        super().__init__()
        self.net = backbone.eval().requires_grad_(False)
        self.image_size = image_size

    @classmethod
    def load(cls, model_name: str, image_size: int, allow_random: bool = False) -> FrozenBackbone:
        """From a local folder or the hub cache (never a download); random weights only if allowed."""
        return cls(load_resnet10(model_name, allow_random=allow_random), image_size)

    @classmethod
    def from_config(cls, cfg) -> FrozenBackbone:  # noqa: ANN001 - any config with the learner's vision fields
        """From a config's ``vision_model_name``, ``image_size`` and ``allow_random_vision_weights``."""
        return cls.load(cfg.vision_model_name, cfg.image_size, cfg.allow_random_vision_weights)

    def train(self, mode: bool = True) -> FrozenBackbone:
        # Frozen means frozen: GroupNorm has no running stats, but keep eval for any future layer.
        return super().train(False)

    def map_shape(self) -> tuple[int, int, int]:
        """(C, h, w) of the feature map, from a one-image dry run.

        A real run, not ``vision.resnet10.feature_map_size``: that one traces on the meta device,
        which is slow on first use in a fresh process.
        """
        device = next(self.net.parameters()).device
        probe = torch.zeros(1, 3, self.image_size, self.image_size, dtype=torch.uint8, device=device)
        return tuple(self(probe).shape[1:])

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) uint8 -> (N, 512, h, w) float32."""
        # channels_last: the layout oneDNN's CPU convolutions and max pool are fastest on.
        return self.net(
            preprocess_images(images, self.image_size).contiguous(memory_format=torch.channels_last)
        )


def load_transformer(model_name: str, load_weights: bool) -> nn.Module:
    """A transformers vision model from a local folder (its image tower for a multimodal one)."""
    from transformers import AutoConfig, AutoModel

    if not Path(model_name).expanduser().is_dir():
        raise UserError(
            f"model_type 'transformer' needs a local model folder, '{model_name}' is not one; "
            "pass the folder of a transformers vision model as policy.model_name"
        )
    if load_weights:
        model = AutoModel.from_pretrained(model_name, local_files_only=True)
    else:
        model = AutoModel.from_config(AutoConfig.from_pretrained(model_name, local_files_only=True))
    if hasattr(model, "vision_model"):  # a multimodal model (e.g. CLIP, SigLIP): keep its image tower
        model = model.vision_model
    if not hasattr(model.config, "hidden_size"):
        raise UserError(f"{model_name} has no hidden_size: use a vision transformer (ViT, DINOv2, ...)")
    return model
