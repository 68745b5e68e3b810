"""The one image preprocessing of the reward classifier, shared by training and run time.

uint8 camera frames (B, 3, H, W) or (B, H, W, 3), or float frames in [0, 1], become float32
(B, 3, S, S) normalized with the ImageNet mean and std, after an optional bilinear resize to S.
LeRobot normalizes with dataset statistics in training but not in its RL-time reward step; using
this one function in both places removes that mismatch. ``preprocessing_spec`` is what the
checkpoint records so the run time can check it applies the same transform.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SPEC_VERSION = 1


def _channels_first(images: torch.Tensor) -> torch.Tensor:
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4:
        raise ValueError(f"expected images (B, 3, H, W) or (B, H, W, 3), got shape {tuple(images.shape)}")
    if images.shape[1] == 3:
        return images
    if images.shape[-1] == 3:
        return images.permute(0, 3, 1, 2)
    raise ValueError(f"expected 3 colour channels first or last, got shape {tuple(images.shape)}")


def preprocess_images(images: torch.Tensor, image_size: int | None) -> torch.Tensor:
    """uint8 or [0, 1] float images -> float32 (B, 3, S, S), ImageNet-normalized (S = image_size or H)."""
    images = _channels_first(images)
    if images.dtype == torch.uint8:
        images = images.float().div_(255.0)
    else:
        images = images.float()
    if image_size is not None and tuple(images.shape[-2:]) != (image_size, image_size):
        images = F.interpolate(
            images, size=(image_size, image_size), mode="bilinear", align_corners=False, antialias=False
        )
    mean = torch.tensor(IMAGENET_MEAN, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, dtype=images.dtype, device=images.device).view(1, 3, 1, 1)
    return (images - mean) / std


def preprocessing_spec(image_size: int | None) -> dict[str, Any]:
    """JSON-serializable description of ``preprocess_images`` for checkpoints."""
    return {
        "version": SPEC_VERSION,
        "function": "vision.preprocess.preprocess_images",
        "input": "uint8 in [0, 255] or float in [0, 1]; (B, 3, H, W) or (B, H, W, 3)",
        "resize": None if image_size is None else {"size": [image_size, image_size], "mode": "bilinear"},
        "normalize": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD)},
    }
