"""Feature replay: the frozen backbone's feature maps as a stored quantity.

The ResNet-10 never changes, so a frame's feature map is computed once, when the frame enters a
replay buffer, and stored as float16 instead of the uint8 frame (512 x 4 x 4 at 128 px: 16 KiB per
camera, against 48 KiB of pixels). Updates then run only the trainable heads.

Where: in the replay buffer's process (``ReplayBuffer.add`` / ``extend``, and ``import_lerobot_dataset``
episode by episode), on the backbone's device, in batches of ``chunk`` frames. Frames arrive there
exactly once (the next observation is the next slot), so each is encoded exactly once; the learner
never sees pixels, and a replay -> learner batch is 3x smaller.

Augmentation (``LearnerConfig.feature_augment``, chosen by measurement, see ``lab/AUGMENTATION.md``):

    "none"          the stored map as is
    "pixel_shifts"  K = feature_shifts DrQ random shifts of each frame, encoded at insert, one drawn
                    per sample (K x the storage and the insert cost)
    "map_shift"     a random shift of the (C, h, w) map itself by up to feature_pad cells, per sample

    encoder = FeatureEncoder.from_config(cfg, backbone)
    encoder.encode(frames)                  # (N, 3, H, W) uint8 -> (N, *encoder.feature_shape) float16
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import numpy as np
import torch

from configs.learner import LearnerConfig
from vision.augment import random_shift
from vision.backbone import weights_sha256

FEATURE_DTYPE = np.float16


class FeatureEncoder:
    """uint8 frames -> stored float16 backbone maps, batched, on the backbone's device."""

    def __init__(self, backbone, shifts: int = 0, pad: int = 4, chunk: int | None = 256, memory: int = 1024):
        self.backbone = backbone  # vision.backbone.FrozenBackbone
        # Maps of the last ``memory`` frames by content digest: an intervention stored in both the
        # online and the demo buffer is encoded once, not twice.
        self.memory = int(memory)
        self._recent: OrderedDict[bytes, np.ndarray] = OrderedDict()
        self.shifts = int(shifts)  # 0: one unshifted map per frame; K > 0: K random pixel shifts
        self.pad = int(pad)
        self.chunk = chunk
        self.map_shape = tuple(int(v) for v in backbone.map_shape())
        self.sha256 = weights_sha256(backbone)
        self.device = next(backbone.parameters()).device
        self.frames_encoded = 0  # frames run through the backbone here (maps handed in are not)

    @classmethod
    def from_config(cls, cfg: LearnerConfig, backbone) -> FeatureEncoder:
        shifts = cfg.feature_shifts if cfg.feature_augment == "pixel_shifts" else 0
        return cls(backbone, shifts=shifts, pad=cfg.pad, chunk=cfg.encoder_chunk_size)

    @property
    def feature_shape(self) -> tuple[int, ...]:
        """Per-frame stored shape: (C, h, w), or (K, C, h, w) with K stored shifts."""
        return (self.shifts, *self.map_shape) if self.shifts else self.map_shape

    @torch.no_grad()
    def encode(self, frames: np.ndarray | torch.Tensor) -> np.ndarray:
        """(N, 3, H, W) uint8 -> (N, *feature_shape) float16 numpy (CPU)."""
        images = torch.as_tensor(frames).to(self.device)
        if images.shape[0] == 0:
            return np.zeros((0, *self.feature_shape), dtype=FEATURE_DTYPE)
        chunk = self.chunk or images.shape[0]
        self.frames_encoded += int(images.shape[0])
        out = []
        for part in images.split(chunk):
            if self.shifts:
                # K shifted copies in one backbone call: (K * n, ...) -> (n, K, C, h, w).
                shifted = torch.cat([random_shift(part, self.pad) for _ in range(self.shifts)])
                maps = self.backbone(shifted).unflatten(0, (self.shifts, part.shape[0])).transpose(0, 1)
            else:
                maps = self.backbone(part)
            out.append(maps.to(torch.float16).cpu().numpy())
        return np.concatenate(out)

    def accepts(self, sha256: str) -> bool:
        """Whether maps computed by a backbone with these weights can be stored as this encoder's
        (the same weights, and one unshifted map per frame)."""
        return sha256 == self.sha256 and not self.shifts

    def remember(self, frame: np.ndarray, value: np.ndarray) -> None:
        """Hand in the map of ``frame`` computed elsewhere (the robot, to act): ``encode_frames``
        then finds it instead of running the backbone."""
        if tuple(value.shape) != self.feature_shape or value.dtype != FEATURE_DTYPE:
            raise ValueError(
                f"frame features {value.dtype} {tuple(value.shape)}, expected {np.dtype(FEATURE_DTYPE)} "
                f"{self.feature_shape}: the robot's backbone and image size must be the replay's"
            )
        digest = hashlib.blake2b(np.ascontiguousarray(frame).tobytes(), digest_size=16).digest()
        self._recent[digest] = value
        self._recent.move_to_end(digest)
        while len(self._recent) > self.memory:
            self._recent.popitem(last=False)

    def encode_frames(self, frames: list[np.ndarray]) -> np.ndarray:
        """Like ``encode`` for a list of (3, H, W) frames, reusing the maps of recently encoded ones."""
        digests = [
            hashlib.blake2b(np.ascontiguousarray(f).tobytes(), digest_size=16).digest() for f in frames
        ]
        missing = {d: f for d, f in zip(digests, frames, strict=True) if d not in self._recent}
        if missing:
            maps = self.encode(np.stack(list(missing.values())))
            for digest, value in zip(missing, maps, strict=True):
                self._recent[digest] = value
        out = np.stack([self._recent[d] for d in digests])
        for digest in digests:
            self._recent.move_to_end(digest)
        while len(self._recent) > self.memory:
            self._recent.popitem(last=False)
        return out


def draw_shift(stored: np.ndarray, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gather ``indices`` from (n, K, C, h, w) storage, one of the K shifts drawn per sample."""
    choice = rng.integers(0, stored.shape[1], size=len(indices))
    return stored[indices, choice]


def augment_features(features: torch.Tensor, mode: str, pad: int) -> torch.Tensor:
    """(B, C, h, w) stored maps -> float32 maps for the encoder heads, shifted per sample for "map_shift"."""
    features = features.float()
    if mode == "map_shift":
        return random_shift(features, pad)
    return features
