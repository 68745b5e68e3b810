"""The reward role: one frozen classifier checkpoint serving every robot, with dynamic batching.

HIL-SERL's rule: the classifier is trained offline and never changes during a run. The role loads
one checkpoint (``reward.checkpoint.load_checkpoint``), checks it against the robots' cameras and
image size, puts it in eval mode with gradients off, and records its identity (path,
``weights_sha256``, validation metrics) so the run says which classifier it used.

Batching: ``BatchingScorer.score`` queues a request; a single worker takes *every* request queued
when a forward pass starts (up to ``max_batch``) and serves them in that pass. A lone request is
served at once: there is no wait for a batch to fill.

    role = RewardRole(path, image_keys, image_size)
    role.score_batch([{"observation.images.front": chw_uint8, ...}])  # [{"probability", "reward", "success"}]
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actors.roles.stats import RewardStats
from configs.errors import UserError
from reward.checkpoint import load_checkpoint, read_checkpoint_info
from reward.model import camera_keys
from vision.backbone import FrozenBackbone, weights_sha256

logger = logging.getLogger(__name__)


def check_checkpoint_matches(checkpoint: str | Path, image_keys: list[str], image_size: int) -> list[str]:
    """The checkpoint's cameras and image size must be the robot's (reads config.json only: fast,
    so the launcher refuses a mismatch before any actor starts). Returns its camera keys."""
    info = read_checkpoint_info(checkpoint)
    keys = camera_keys(info.config)
    missing = [k for k in keys if k not in image_keys]
    if missing:
        raise UserError(
            f"classifier {info.path} uses camera '{missing[0]}' but the robot has {', '.join(image_keys)}; "
            "train a classifier on this robot's cameras or fix env cameras"
        )
    for key in keys:
        shape = list(info.config.input_features[key].shape)
        if shape[1:] and shape[1:] != [image_size, image_size]:
            raise UserError(
                f"classifier {info.path} was trained on {shape[1]}x{shape[2]} '{key}' images but the robot "
                f"sends {image_size}x{image_size}; set env.image_size={shape[1]} or retrain the classifier"
            )
    return keys


class RewardRole:
    """The frozen classifier and its identity."""

    def __init__(
        self,
        checkpoint: str | Path,
        image_keys: list[str],
        image_size: int,
        success_threshold: float | None = None,
        success_reward: float = 1.0,
        device: str = "cpu",
    ):
        keys = check_checkpoint_matches(checkpoint, image_keys, image_size)
        model, info = load_checkpoint(checkpoint, device=device)
        self.model = model.eval().requires_grad_(False)
        self.keys = keys
        self.info = info
        warn_if_trained_on_video(info)
        self.threshold = float(info.success_threshold if success_threshold is None else success_threshold)
        self.success_reward = float(success_reward)
        self.device = torch.device(device)
        self.batches = 0
        self.frames = 0
        self.pixel_frames = 0  # frames whose pixels ran through the classifier's backbone here
        # A CNN classifier's ResNet-10, named by its weights: a robot whose policy has the same
        # (frozen, the default) sends the maps it computed to act instead of the pixels.
        # The digest as vision.backbone names a frozen ResNet-10 (the robot's and the replay's).
        size = int(self.model.image_hw[0])
        self._backbone = (
            (weights_sha256(FrozenBackbone(self.model.backbone, size)), size) if self.model.is_cnn else None
        )

    def identity(self) -> dict[str, Any]:
        """What a run records about its classifier."""
        metrics = self.info.metrics or {}
        val = metrics.get("eval") or metrics.get("val") or metrics  # train-reward writes "eval"
        return {
            "path": str(Path(self.info.path).resolve()),
            "weights_sha256": self.info.weights_sha256,
            "threshold": self.threshold,
            "cameras": self.keys,
            "val_metrics": {k: v for k, v in val.items() if isinstance(v, (int, float))},
        }

    def backbone(self) -> tuple[str, int] | None:
        """The classifier's ResNet-10 as (weights sha256, image size); None for a transformer."""
        return self._backbone

    def weights_digest(self) -> str:
        """SHA-256 of the loaded weights as they are now (the run's frozen check)."""
        return weights_sha256(self.model)

    @torch.no_grad()
    def score_batch(self, requests: list[dict[str, np.ndarray]]) -> list[dict[str, float]]:
        """One forward pass for all ``requests``. Each maps a camera key to its frame, (3, H, W) uint8
        (the layout the robot converted it to once: ``actors.roles.writer.TransitionWriter``), or to
        the frame's float backbone map (C, h, w) when ``backbone()`` is the robot's: then only the
        classifier's heads run."""
        if not requests:
            return []
        probabilities = np.zeros(len(requests), dtype=np.float32)
        is_map = np.array([r[self.keys[0]].dtype != np.uint8 for r in requests])
        for kind in (False, True):
            index = np.nonzero(is_map == kind)[0]
            if len(index) == 0:
                continue
            stacked = {
                key: torch.from_numpy(np.stack([requests[i][key] for i in index])) for key in self.keys
            }
            if kind:
                maps = [stacked[key].to(self.device, torch.float32) for key in self.keys]
                p = self.model.probabilities(self.model(features=maps))
            else:
                p = self.model.predict_proba(stacked)
                self.pixel_frames += len(index)
            probabilities[index] = p.reshape(len(index)).cpu().numpy()
        self.batches += 1
        self.frames += len(requests)
        out = []
        for p in probabilities:
            success = bool(p >= self.threshold)
            out.append(
                {
                    "probability": float(p),
                    "reward": self.success_reward if success else 0.0,
                    "success": success,
                }
            )
        return out


class BatchingScorer:
    """Asyncio front of a ``RewardRole``: concurrent ``score`` calls share forward passes."""

    def __init__(self, role: RewardRole, max_batch: int = 64):
        self.role = role
        self.max_batch = int(max_batch)
        self.queue: list[tuple[dict[str, np.ndarray], asyncio.Future]] = []
        self.worker: asyncio.Task | None = None
        self.batch_sizes: list[int] = []
        self.latencies_s: list[float] = []

    async def score(self, frames: dict[str, np.ndarray]) -> dict[str, float]:
        future = asyncio.get_running_loop().create_future()
        self.queue.append((frames, future))
        if self.worker is None or self.worker.done():
            self.worker = asyncio.ensure_future(self._serve())
        return await future

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        while self.queue:
            taken, self.queue = self.queue[: self.max_batch], self.queue[self.max_batch :]
            start = time.perf_counter()
            try:
                # The forward pass runs off the event loop, so new requests queue meanwhile.
                results = await loop.run_in_executor(None, self.role.score_batch, [f for f, _ in taken])
            except Exception as exc:  # answer every waiting robot, then keep serving
                for _, future in taken:
                    future.set_exception(exc)
                continue
            self.batch_sizes.append(len(taken))
            self.latencies_s.append(time.perf_counter() - start)
            del self.batch_sizes[:-1000], self.latencies_s[:-1000]
            for (_, future), result in zip(taken, results, strict=True):
                future.set_result(result)

    def backbone(self) -> tuple[str, int] | None:
        return self.role.backbone()

    def stats(self) -> RewardStats:
        sizes = self.batch_sizes or [0]
        latencies = self.latencies_s or [0.0]
        return RewardStats(
            batches=int(self.role.batches),
            frames=int(self.role.frames),
            batch_size_mean=float(np.mean(sizes)),
            pixel_frames=int(self.role.pixel_frames),
            latency_p50_ms=float(np.percentile(latencies, 50) * 1e3),
            latency_p99_ms=float(np.percentile(latencies, 99) * 1e3),
        )


def warn_if_trained_on_video(info) -> bool:  # noqa: ANN001
    """Say so when the classifier learned from decoded video frames: the live frames it scores never
    went through the codec (AV1 in yuv420p moved 64 px frames by 4/255 on average, up to 174), so
    it judges other pixels than it learned from. Not refused: LeRobot records video by default."""
    fingerprint = (info.metrics or {}).get("dataset") or {}
    parts = [fingerprint, *fingerprint.get("merged", [])]
    video = sorted({k for p in parts for k, v in (p.get("camera_storage") or {}).items() if v == "video"})
    if video:
        logger.warning(
            "reward classifier %s learned from decoded video frames (%s) but scores live frames: record its "
            "datasets with --env.video=false (lossless images) so it learns the pixels it will see",
            info.path,
            ", ".join(video),
        )
    return bool(video)
