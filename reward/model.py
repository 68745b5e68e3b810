"""The image reward classifier: a frozen backbone, a trainable encoder per camera, and a small head.

    camera image (uint8) ─ preprocess_images ─ frozen ResNet-10 ─ (B, 512, h, w)
        ─ SpatialLearnedEmbeddings ─ Dropout ─ Linear(latent_dim) ─ LayerNorm ─ Tanh   (one per camera)
    concat cameras ─ Linear(hidden_dim) ─ Dropout ─ LayerNorm ─ ReLU ─ Linear(1 or num_classes)

This is HIL-SERL's classifier (``serl_launcher/networks/reward_classifier.py``) and LeRobot's
layout, with two differences that matter: the spatial embedding is sized from the real feature map
(84x84 gives 3x3, 128x128 gives 4x4), and only the backbone is frozen. LeRobot (0.4 and 0.6) runs the whole
per-camera branch under ``no_grad``, so its spatial embedding and projection never train.

``model_type="transformer"`` uses a vision transformer from transformers, loaded from a local
path, whose CLS token stands in for the pooled feature map.

Because the backbone is frozen, ``backbone_features`` can be computed once per frame and fed back
through ``forward(features=...)``; the training loop caches them.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from configs.errors import UserError
from configs.reward import RewardClassifierConfig
from vision.backbone import load_transformer
from vision.encoder import CameraEncoder, module_key
from vision.preprocess import preprocess_images
from vision.resnet10 import ResNet10, feature_map_size, load_resnet10

logger = logging.getLogger(__name__)


def camera_keys(config: RewardClassifierConfig) -> list[str]:
    """VISUAL input features, in config order (the order of the head's input)."""
    keys = []
    for key, spec in config.input_features.items():
        kind = spec.type if hasattr(spec, "type") else spec.get("type")
        if str(kind).upper() == "VISUAL":
            keys.append(key)
    return keys


def input_hw(config: RewardClassifierConfig) -> tuple[int, int]:
    """The (H, W) the backbone sees: image_size if set, else the cameras' own size (all must agree)."""
    if config.image_size is not None:
        return config.image_size, config.image_size
    shapes = set()
    for key in camera_keys(config):
        spec = config.input_features[key]
        shape = list(spec.shape if hasattr(spec, "shape") else spec["shape"])
        if len(shape) != 3:
            raise UserError(f"input_features[{key}].shape must be [3, H, W], got {shape}; fix the config")
        shapes.add((shape[1], shape[2]))
    if len(shapes) != 1:
        raise UserError(
            f"cameras have different image sizes {sorted(shapes)}; set policy.image_size to resize them all"
        )
    return shapes.pop()


class RewardClassifier(nn.Module):
    """Success classifier over one or more cameras. ``forward`` returns logits: (B,) binary, (B, K) multi-class."""

    def __init__(self, config: RewardClassifierConfig, backbone: nn.Module):
        super().__init__()
        self.config = config
        self.camera_keys = camera_keys(config)
        if config.num_cameras != len(self.camera_keys):
            raise UserError(
                f"policy.num_cameras is {config.num_cameras} but input_features has {len(self.camera_keys)} "
                f"VISUAL feature(s); set --policy.num_cameras={len(self.camera_keys)}"
            )
        if config.num_classes < 2:
            raise UserError(f"policy.num_classes is {config.num_classes}; use 2 (success/failure) or more")
        self.image_hw = input_hw(config)
        self.is_cnn = config.model_type == "cnn"
        self.backbone = backbone
        self.backbone_trainable = False
        for param in self.backbone.parameters():
            param.requires_grad_(False)
        self.backbone.eval()

        self.feature_hw = feature_map_size(*self.image_hw) if self.is_cnn else None
        encoders = {}
        for key in self.camera_keys:
            if self.is_cnn:
                map_shape = (ResNet10.out_channels, *self.feature_hw)
                encoders[module_key(key)] = CameraEncoder.on_map(
                    map_shape, config.image_embedding_pooling_dim, config.latent_dim, config.dropout_rate
                )
            else:
                in_dim = int(backbone.config.hidden_size)
                encoders[module_key(key)] = CameraEncoder(
                    in_dim, config.latent_dim, config.dropout_rate, None
                )
        self.camera_encoders = nn.ModuleDict(encoders)
        out_dim = 1 if config.num_classes == 2 else config.num_classes
        self.head = nn.Sequential(
            nn.Linear(config.latent_dim * len(self.camera_keys), config.hidden_dim),
            nn.Dropout(config.dropout_rate),
            nn.LayerNorm(config.hidden_dim),
            nn.ReLU(),
            nn.Linear(config.hidden_dim, out_dim),
        )

    def train(self, mode: bool = True) -> RewardClassifier:
        super().train(mode)
        if not self.backbone_trainable:
            self.backbone.eval()  # frozen: never in training mode (matters for a ViT's dropout)
        return self

    def unfreeze_backbone(self) -> None:
        """Train the backbone too (end to end), e.g. a random one whose frozen features miss small
        details such as the gripper jaw. The checkpoint holds every weight either way."""
        self.backbone_trainable = True
        for param in self.backbone.parameters():
            param.requires_grad_(True)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        """Camera frames (uint8 or [0, 1] float, CHW or HWC) → normalized float at the model's input size."""
        h, w = self.image_hw
        if h == w:
            return preprocess_images(image, h)
        out = preprocess_images(image, None)
        if tuple(out.shape[-2:]) != (h, w):
            raise UserError(f"images are {tuple(out.shape[-2:])}, the classifier expects {(h, w)}")
        return out

    def backbone_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """Normalized (B, 3, H, W) → features: (B, 512, h, w) for the CNN, (B, hidden) CLS for a ViT.
        Gradients flow only into a backbone that ``unfreeze_backbone`` made trainable."""
        with torch.set_grad_enabled(self.backbone_trainable and torch.is_grad_enabled()):
            if self.is_cnn:
                return self.backbone(pixels)
            return self.backbone(pixel_values=pixels).last_hidden_state[:, 0, :]

    def forward(
        self, pixels: list[torch.Tensor] | None = None, features: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Logits from preprocessed images (one tensor per camera) or from cached backbone features."""
        if features is None:
            if pixels is None:
                raise ValueError("pass pixels or features")
            features = [self.backbone_features(x) for x in pixels]
        latents = [
            self.camera_encoders[module_key(key)](feat)
            for key, feat in zip(self.camera_keys, features, strict=True)
        ]
        logits = self.head(torch.cat(latents, dim=-1))
        return logits.squeeze(-1) if self.config.num_classes == 2 else logits

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        if self.config.num_classes == 2:
            return F.binary_cross_entropy_with_logits(logits.float(), labels.float())
        return F.cross_entropy(logits.float(), labels.long())

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """P(success) (B,) for two classes, class probabilities (B, K) otherwise."""
        if self.config.num_classes == 2:
            return torch.sigmoid(logits.float())
        return torch.softmax(logits.float(), dim=-1)

    @torch.no_grad()
    def predict_proba(self, images: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run-time entry point: raw camera frames per key (uint8) → probabilities."""
        device = next(self.head.parameters()).device
        pixels = [self.preprocess(images[key].to(device)) for key in self.camera_keys]
        return self.probabilities(self(pixels=pixels))

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


def build_backbone(
    config: RewardClassifierConfig, load_weights: bool, allow_random: bool = False
) -> nn.Module:
    """The frozen backbone; ``load_weights=False`` builds the architecture only (a checkpoint fills it)."""
    if config.model_type == "cnn":
        return load_resnet10(config.model_name, allow_random=allow_random) if load_weights else ResNet10()
    if config.model_type == "transformer":
        return load_transformer(config.model_name, load_weights)
    raise UserError(f"policy.model_type is '{config.model_type}'; use 'cnn' (ResNet-10) or 'transformer'")


def build_classifier(
    config: RewardClassifierConfig, load_weights: bool = True, allow_random_backbone: bool = False
) -> RewardClassifier:
    """A new classifier; the backbone weights come from ``config.model_name`` (offline) when ``load_weights``."""
    return RewardClassifier(config, build_backbone(config, load_weights, allow_random_backbone))
