"""The reward classifier training loop: pure torch, no Ray (``reward/job.py`` wraps it in Ray Train).

    result = run(cfg)          # cfg: configs.reward.RewardTrainConfig
    result.best_checkpoint     # <output_dir>/runs/<run_name>/best, a loadable checkpoint directory

The loop, in order:
    load frames     decode every frame once (reward/data.py); bad input fails here, before any write
    split           whole episodes held out for validation
    build           frozen backbone + trainable encoders and head (reward/model.py)
    cache           backbone features of every frame, computed once (off when augmenting)
    train           class-balanced batches, AdamW, grad clipping, AMP on GPU
    evaluate        loss, accuracy, precision, recall, F1, confusion matrix, calibrated thresholds
    keep best       the best validation checkpoint, with thresholds and the dataset fingerprint

Outputs under ``<output_dir>/runs/<run_name>/``: ``tensorboard/`` events, ``samples/`` prediction
grids, ``best/`` checkpoint. ``run`` does not export ``pretrained_model``; the command does.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from configs.errors import UserError
from configs.parsing import config_to_dict
from configs.reward import RewardTrainConfig
from reward.checkpoint import save_checkpoint
from reward.data import (
    BalancedBatchSampler,
    LabeledFrames,
    episode_split,
    load_labeled_frames,
    replace_features,
)
from reward.metrics import binary_metrics, calibrate_thresholds, multiclass_metrics
from reward.model import RewardClassifier, build_classifier

logger = logging.getLogger(__name__)
EVAL_BATCH = 256


@dataclass
class TrainHooks:
    """How a distributed wrapper plugs in; the defaults are a single plain process."""

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None
    wrap_model: Callable[[nn.Module], nn.Module] = lambda model: model
    # Called at every evaluation on every rank with (metrics, best checkpoint dir if it improved on rank 0).
    report: Callable[[dict, Path | None], None] | None = None


@dataclass
class TrainResult:
    run_name: str
    run_dir: Path
    best_checkpoint: Path | None
    best_metrics: dict
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0


def make_run_name(job_name: str | None) -> str:
    """Unique per launch: Ray Train V2 silently resumes a run whose name it has seen."""
    import uuid

    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{job_name or 'reward'}-{stamp}-{uuid.uuid4().hex[:6]}"


def resolve_device(requested: str, hooks: TrainHooks) -> torch.device:
    if hooks.device is not None:
        return hooks.device
    if requested.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("policy.device is '%s' but no GPU is available: training on the CPU", requested)
        return torch.device("cpu")
    if requested == "mps" and not torch.backends.mps.is_available():
        return torch.device("cpu")
    return torch.device(requested)


class FeatureSource:
    """Per-camera backbone features for a batch of frame indices: cached once, or computed (augmented)."""

    def __init__(
        self, model: RewardClassifier, frames: LabeledFrames, device: torch.device, cache: bool, augment
    ):
        self.model, self.frames, self.device, self.augment = model, frames, device, augment
        self.cache: dict[str, torch.Tensor] | None = None
        if cache:
            self.cache = {key: self._compute(key, torch.arange(len(frames))) for key in model.camera_keys}

    def _pixels(self, key: str, indices: torch.Tensor, augment=None) -> torch.Tensor:
        images = self.frames.images[key][indices]  # (b, 3, H, W) uint8
        if augment is not None:
            images = torch.stack([augment(img.float() / 255.0) for img in images]).clamp(0, 1)
        return self.model.preprocess(images.to(self.device))

    @torch.no_grad()
    def _compute(self, key: str, indices: torch.Tensor, augment=None) -> torch.Tensor:
        chunks = []
        for start in range(0, len(indices), EVAL_BATCH):
            pixels = self._pixels(key, indices[start : start + EVAL_BATCH], augment)
            chunks.append(self.model.backbone_features(pixels))
        return torch.cat(chunks)

    def pixels(self, indices: torch.Tensor, train: bool) -> list[torch.Tensor]:
        """Preprocessed images per camera (augmented when training), for a backbone that trains."""
        return [self._pixels(key, indices, self.augment if train else None) for key in self.model.camera_keys]

    def features(self, indices: torch.Tensor, train: bool) -> list[torch.Tensor]:
        if self.cache is not None and not (train and self.augment is not None):
            return [self.cache[key][indices.to(self.cache[key].device)] for key in self.model.camera_keys]
        return [
            self._compute(key, indices, self.augment if train else None) for key in self.model.camera_keys
        ]


def _make_augment(enabled: bool):
    if not enabled:
        return None
    from lerobot.transforms import ImageTransforms, ImageTransformsConfig

    return ImageTransforms(ImageTransformsConfig(enable=True))


def evaluate(
    model: RewardClassifier, source: FeatureSource, frames: LabeledFrames, indices: torch.Tensor
) -> dict:
    """Loss and classification metrics on ``indices``; for two classes also the calibrated thresholds."""
    start = time.perf_counter()
    model.eval()
    logits_all, labels = [], frames.labels[indices]
    with torch.no_grad():
        for s in range(0, len(indices), EVAL_BATCH):
            logits_all.append(
                model(features=source.features(indices[s : s + EVAL_BATCH], train=False)).float().cpu()
            )
    logits = torch.cat(logits_all)
    loss = float(model.loss(logits, labels))
    probs = model.probabilities(logits)
    if model.config.num_classes == 2:
        metrics = binary_metrics(probs, labels, 0.5)
        thresholds = calibrate_thresholds(probs, labels)
    else:
        metrics, thresholds = multiclass_metrics(probs, labels), {}
    metrics |= {"loss": loss, "eval_s": time.perf_counter() - start}
    return {"metrics": metrics, "thresholds": thresholds, "probs": probs}


def save_sample_grid(
    path: Path, frames: LabeledFrames, indices: torch.Tensor, probs: torch.Tensor, threshold: float
) -> None:
    """A grid of validation frames titled with true label, predicted label and probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(16, len(indices))
    if n == 0:
        return
    picks = torch.linspace(0, len(indices) - 1, n).round().long()
    cols = min(4, n)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.4 * cols, 2.6 * rows), squeeze=False)
    key = frames.camera_keys[0]
    for ax in axes.flat:
        ax.axis("off")
    for ax, pick in zip(axes.flat, picks.tolist(), strict=False):
        frame = int(indices[pick])
        ax.imshow(frames.images[key][frame].permute(1, 2, 0).numpy())
        prob = probs[pick]
        if prob.ndim == 0:
            true, pred, p = int(frames.labels[frame]), int(prob > threshold), float(prob)
        else:
            true, pred, p = int(frames.labels[frame]), int(prob.argmax()), float(prob.max())
        color = "green" if true == pred else "red"
        ax.set_title(f"true {true} pred {pred}\np={p:.2f}", fontsize=8, color=color)
    fig.suptitle(f"{key} (episode-held-out validation frames)", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _better(new: dict, old: dict | None) -> bool:
    """Higher validation accuracy wins, lower loss breaks ties."""
    if old is None:
        return True
    return (new["accuracy"], -new["loss"]) > (old["accuracy"], -old["loss"])


def run(cfg: RewardTrainConfig, run_name: str | None = None, hooks: TrainHooks | None = None) -> TrainResult:
    """Train a classifier on ``cfg.dataset``; every user error is raised before anything is written."""
    hooks = hooks or TrainHooks()
    wall_start = time.perf_counter()
    run_name = run_name or make_run_name(cfg.job_name)
    split = _load_and_split(cfg)  # user errors surface here, nothing written yet
    model, device = _build_model(cfg, split.policy, hooks)
    loop = _TrainLoop(cfg, hooks, split, model, device, run_name, wall_start)
    progress = _progress(cfg.steps, loop.is_main)
    threads = torch.get_num_threads()
    if device.type == "cpu" and loop.source.cache is not None:
        # The cached-feature step is a few small matmuls: OpenMP threads only add barrier waits,
        # which on a busy CPU cost more than the work.
        torch.set_num_threads(1)
    try:
        for step in range(1, cfg.steps + 1):
            loop.train_step()
            progress.update(1)
            if step % cfg.log_freq == 0 or step == cfg.steps:
                loss, accuracy = loop.log(step)
                progress.set_postfix(loss=f"{loss:.4f}", acc=f"{accuracy:.3f}")
            if step % cfg.eval_freq == 0 or step == cfg.steps:
                loop.evaluate_and_keep_best(step, final=step == cfg.steps)
    finally:
        progress.close()  # also on Ctrl-C: no stale bar after the message
        torch.set_num_threads(threads)
    return loop.finish()


@dataclass
class _Split:
    """The decoded frames and the episode-wise train / validation split."""

    frames: LabeledFrames
    policy: object  # the classifier config with the dataset's features filled in
    train_eps: list[int]
    val_eps: list[int]
    train_idx: torch.Tensor
    val_idx: torch.Tensor


def _load_and_split(cfg: RewardTrainConfig) -> _Split:
    frames, features = load_labeled_frames(cfg.dataset, cfg.policy, cfg.reward_key)
    policy = replace_features(cfg.policy, features)
    train_eps, val_eps = episode_split(frames.episodes, cfg.val_fraction, cfg.seed)
    train_idx = frames.indices_of(train_eps)
    val_idx = frames.indices_of(val_eps) if val_eps else train_idx
    if not val_eps:
        logger.warning("val_fraction=0: metrics and thresholds are computed on the training frames")
    if len(torch.unique(frames.labels[train_idx].round())) < 2:
        raise UserError(
            "the training episodes hold only one class after the episode-wise split; "
            "label more episodes with both classes or change seed / val_fraction"
        )
    return _Split(frames, policy, train_eps, val_eps, train_idx, val_idx)


def _build_model(cfg: RewardTrainConfig, policy, hooks: TrainHooks) -> tuple[RewardClassifier, torch.device]:
    torch.manual_seed(cfg.seed)
    device = resolve_device(policy.device, hooks)
    model = build_classifier(policy, load_weights=True, allow_random_backbone=cfg.allow_random_backbone)
    model = model.to(device)
    if cfg.train_backbone:
        model.unfreeze_backbone()
    return model, device


class _Window:
    """Training loss and accuracy over the steps since the last log line."""

    def __init__(self):
        self.loss, self.correct, self.seen, self.dataloading_s, self.n = 0.0, 0, 0, 0.0, 0

    def means(self, grad_norm: float) -> dict[str, float]:
        return {
            "train/loss": self.loss / self.n,
            "train/accuracy": self.correct / self.seen,
            "train/dataloading_s": self.dataloading_s / self.n,
            "train/grad_norm": grad_norm,
        }


class _TrainLoop:
    """The phases of one training run: a step, a log line, an evaluation that keeps the best."""

    def __init__(
        self,
        cfg: RewardTrainConfig,
        hooks: TrainHooks,
        split: _Split,
        model: RewardClassifier,
        device: torch.device,
        run_name: str,
        wall_start: float,
    ):
        self.cfg, self.hooks, self.split, self.model, self.device = cfg, hooks, split, model, device
        self.policy = split.policy
        self.run_name, self.wall_start = run_name, wall_start
        self.is_main = hooks.rank == 0
        self.run_dir = Path(cfg.output_dir).expanduser().resolve() / "runs" / run_name
        self.best_dir = self.run_dir / "best"
        self.train_cfg_dict = config_to_dict(dataclasses.replace(cfg, policy=self.policy))
        self.writer = self._open_writer()
        self.source = self._feature_source()
        self.trainable = hooks.wrap_model(model)
        self.optimizer = torch.optim.AdamW(
            model.trainable_parameters(), lr=self.policy.learning_rate, weight_decay=self.policy.weight_decay
        )
        self.use_amp = self.policy.use_amp and device.type == "cuda"
        self.sampler = BalancedBatchSampler(
            split.frames.labels, split.train_idx, cfg.batch_size, seed=cfg.seed + 7919 * hooks.rank
        )
        self.best: dict | None = None
        self.history: list[dict] = []
        self.window = _Window()
        self.grad_norm: torch.Tensor | float = 0.0

    def _open_writer(self):
        if not self.is_main:
            return None
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(self.run_dir / "tensorboard"))
        writer.add_text("config", f"```\n{self.train_cfg_dict}\n```")
        return writer

    def _feature_source(self) -> FeatureSource:
        cfg = self.cfg
        augment = _make_augment(cfg.augment)
        cache = cfg.cache_features and augment is None and not cfg.train_backbone
        if cfg.augment and cfg.cache_features:
            logger.info("augment=true: backbone feature caching is off (every step runs the backbone)")
        t0 = time.perf_counter()
        source = FeatureSource(self.model, self.split.frames, self.device, cache, augment)
        if cache:
            logger.info(
                "cached backbone features of %d frames x %d camera(s) in %.1fs",
                len(self.split.frames),
                len(self.model.camera_keys),
                time.perf_counter() - t0,
            )
        return source

    def train_step(self) -> None:
        """One class-balanced batch: forward (AMP on GPU), loss, clipped AdamW step."""
        self.model.train()
        t_data = time.perf_counter()
        batch_idx = self.sampler.sample()
        if self.cfg.train_backbone:
            inputs = {"pixels": self.source.pixels(batch_idx, train=True)}
        else:
            inputs = {"features": self.source.features(batch_idx, train=True)}
        labels = self.split.frames.labels[batch_idx].to(self.device)
        self.window.dataloading_s += time.perf_counter() - t_data
        with torch.autocast(device_type=self.device.type, dtype=torch.bfloat16, enabled=self.use_amp):
            logits = self.trainable(**inputs)
        loss = self.model.loss(logits, labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        # Kept as a tensor: float() here would wait for the GPU every step; log() reads it.
        self.grad_norm = torch.nn.utils.clip_grad_norm_(
            self.model.trainable_parameters(), self.policy.grad_clip_norm
        )
        self.optimizer.step()
        with torch.no_grad():
            two = self.policy.num_classes == 2
            pred = (logits.float() > 0).float() if two else logits.argmax(-1).float()
            self.window.correct += int((pred == labels.round()).sum())
        self.window.loss += loss.item()
        self.window.seen += len(labels)
        self.window.n += 1

    def log(self, step: int) -> tuple[float, float]:
        """The window's means to TensorBoard; returns (loss, accuracy) for the progress bar."""
        means = self.window.means(float(self.grad_norm))
        if self.writer:
            for k, v in means.items():
                self.writer.add_scalar(k, v, step)
        self.window = _Window()
        return means["train/loss"], means["train/accuracy"]

    def evaluate_and_keep_best(self, step: int, final: bool) -> None:
        """Validation metrics and thresholds; a better model is saved as ``best/`` (rank 0)."""
        split = self.split
        result = evaluate(self.model, self.source, split.frames, split.val_idx)
        metrics = result["metrics"]
        self.history.append(
            {"step": step, "elapsed_s": time.perf_counter() - self.wall_start, **_scalars(metrics)}
        )
        improved = _better(metrics, self.best)
        if self.writer:
            for k, v in _scalars(metrics).items():
                self.writer.add_scalar(f"eval/{k}", v, step)
            for k, v in result["thresholds"].items():
                if isinstance(v, float):
                    self.writer.add_scalar(f"eval/threshold_{k}", v, step)
        reported_dir = None
        if improved:
            self.best = dict(metrics)
            if self.is_main:
                record = {
                    "step": step,
                    "eval": metrics,
                    "thresholds": result["thresholds"],
                    "confusion_matrix": metrics["confusion_matrix"],
                    "dataset": split.frames.fingerprint,
                    "split": {
                        "train_episodes": split.train_eps,
                        "val_episodes": split.val_eps,
                        "val_frames": len(split.val_idx),
                    },
                    "run_name": self.run_name,
                }
                save_checkpoint(self.best_dir, self.model, result["thresholds"], record, self.train_cfg_dict)
                reported_dir = self.best_dir
        if self.is_main and final:
            self._sample_grid(step, result)
        logger.info(
            "step %d: eval loss %.4f accuracy %.4f f1 %.4f%s",
            step,
            metrics["loss"],
            metrics["accuracy"],
            metrics["f1"],
            " (best)" if improved else "",
        )
        if self.hooks.report is not None:
            self.hooks.report(
                {"step": step, **{f"eval/{k}": v for k, v in _scalars(metrics).items()}}, reported_dir
            )

    def _sample_grid(self, step: int, result: dict) -> None:
        # One grid per run (matplotlib is slow on a busy CPU), from the final model.
        threshold = result["thresholds"].get("best_f1", 0.5)
        grid = self.run_dir / "samples" / f"step_{step:06d}.png"
        save_sample_grid(grid, self.split.frames, self.split.val_idx, result["probs"], threshold)
        if self.writer:
            import numpy as np
            from PIL import Image

            image = np.asarray(Image.open(grid).convert("RGB"))
            self.writer.add_image("eval/sample_predictions", image, step, dataformats="HWC")

    def finish(self) -> TrainResult:
        if self.writer:
            self.writer.flush()
            self.writer.close()
        return TrainResult(
            run_name=self.run_name,
            run_dir=self.run_dir,
            best_checkpoint=self.best_dir if self.is_main and self.best is not None else None,
            best_metrics=self.best or {},
            history=self.history,
            seconds=time.perf_counter() - self.wall_start,
        )


def _scalars(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    # Not a terminal (Ray job logs): refresh rarely instead of flooding the log.
    return tqdm(
        total=total, desc="train-reward", disable=not enabled, mininterval=0.5 if sys.stderr.isatty() else 30
    )
