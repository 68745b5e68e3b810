"""DrQ-v2 random shift (Yarats et al. 2021), run on the learner's device on uint8 frames.

Replicate-padding by ``pad`` pixels and cropping back to H x W at a random offset is the same as
shifting every pixel by (dy, dx) in [-pad, pad] with indices clamped at the border, so no padded
copy is built: one gather on the uint8 batch. Every image gets its own shift (observation and next
observation independently, as HIL-SERL draws separate keys). Randomness comes from torch's global
generator on the images' device, which the checkpoint saves.
"""

from __future__ import annotations

import torch


def random_shift(images: torch.Tensor, pad: int = 4) -> torch.Tensor:
    """(B, C, H, W) any dtype -> same shape and dtype, each image shifted by an integer in [-pad, pad]^2."""
    if pad == 0:
        return images
    batch, _, height, width = images.shape
    device = images.device
    shifts = torch.randint(-pad, pad + 1, (batch, 2), device=device)
    rows = (torch.arange(height, device=device).unsqueeze(0) + shifts[:, :1]).clamp_(0, height - 1)  # (B, H)
    cols = (torch.arange(width, device=device).unsqueeze(0) + shifts[:, 1:]).clamp_(0, width - 1)  # (B, W)
    flat = (rows.unsqueeze(2) * width + cols.unsqueeze(1)).view(batch, 1, height * width)  # (B, 1, H*W)
    gathered = images.reshape(batch, images.shape[1], height * width).gather(
        2, flat.expand(-1, images.shape[1], -1)
    )
    return gathered.view_as(images)
