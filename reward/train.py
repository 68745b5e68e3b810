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
    is_main = hooks.rank == 0
    run_name = run_name or make_run_name(cfg.job_name)

    # load frames + split: user errors surface here, nothing written yet
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

    # build
    torch.manual_seed(cfg.seed)
    device = resolve_device(policy.device, hooks)
    model = build_classifier(policy, load_weights=True, allow_random_backbone=cfg.allow_random_backbone).to(
        device
    )
    if cfg.train_backbone:
        model.unfreeze_backbone()
    augment = _make_augment(cfg.augment)
    cache = cfg.cache_features and augment is None and not cfg.train_backbone
    if cfg.augment and cfg.cache_features:
        logger.info("augment=true: backbone feature caching is off (every step runs the backbone)")

    run_dir = Path(cfg.output_dir).expanduser().resolve() / "runs" / run_name
    writer = None
    if is_main:
        from torch.utils.tensorboard import SummaryWriter

        run_dir.mkdir(parents=True, exist_ok=True)
        writer = SummaryWriter(str(run_dir / "tensorboard"))
        writer.add_text("config", f"```\n{config_to_dict(dataclasses.replace(cfg, policy=policy))}\n```")

    # cache
    t0 = time.perf_counter()
    source = FeatureSource(model, frames, device, cache, augment)
    if cache:
        logger.info(
            "cached backbone features of %d frames x %d camera(s) in %.1fs",
            len(frames),
            len(model.camera_keys),
            time.perf_counter() - t0,
        )

    # train
    trainable = hooks.wrap_model(model)
    optimizer = torch.optim.AdamW(
        model.trainable_parameters(), lr=policy.learning_rate, weight_decay=policy.weight_decay
    )
    use_amp = policy.use_amp and device.type == "cuda"
    sampler = BalancedBatchSampler(
        frames.labels, train_idx, cfg.batch_size, seed=cfg.seed + 7919 * hooks.rank
    )
    train_cfg_dict = config_to_dict(dataclasses.replace(cfg, policy=policy))
    best: dict | None = None
    best_dir = run_dir / "best"
    history: list[dict] = []
    window = {"loss": 0.0, "correct": 0, "seen": 0, "dataloading_s": 0.0, "n": 0}
    progress = _progress(cfg.steps, is_main)
    threads = torch.get_num_threads()
    if device.type == "cpu" and cache:
        # The cached-feature step is a few small matmuls: OpenMP threads only add barrier waits,
        # which on a busy CPU cost more than the work.
        torch.set_num_threads(1)
    try:
        for step in range(1, cfg.steps + 1):
            model.train()
            t_data = time.perf_counter()
            batch_idx = sampler.sample()
            inputs = (
                {"pixels": source.pixels(batch_idx, train=True)}
                if cfg.train_backbone
                else {"features": source.features(batch_idx, train=True)}
            )
            labels = frames.labels[batch_idx].to(device)
            window["dataloading_s"] += time.perf_counter() - t_data
            with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
                logits = trainable(**inputs)
            loss = model.loss(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), policy.grad_clip_norm)
            optimizer.step()
            with torch.no_grad():
                pred = (logits.float() > 0).float() if policy.num_classes == 2 else logits.argmax(-1).float()
                window["correct"] += int((pred == labels.round()).sum())
            window["loss"] += loss.item()
            window["seen"] += len(labels)
            window["n"] += 1
            progress.update(1)
            if step % cfg.log_freq == 0 or step == cfg.steps:
                train_metrics = {
                    "train/loss": window["loss"] / window["n"],
                    "train/accuracy": window["correct"] / window["seen"],
                    "train/dataloading_s": window["dataloading_s"] / window["n"],
                    "train/grad_norm": float(grad_norm),
                }
                progress.set_postfix(
                    loss=f"{train_metrics['train/loss']:.4f}", acc=f"{train_metrics['train/accuracy']:.3f}"
                )
                if writer:
                    for k, v in train_metrics.items():
                        writer.add_scalar(k, v, step)
                window = {"loss": 0.0, "correct": 0, "seen": 0, "dataloading_s": 0.0, "n": 0}
            if step % cfg.eval_freq == 0 or step == cfg.steps:
                # evaluate + keep best
                result = evaluate(model, source, frames, val_idx)
                metrics = result["metrics"]
                history.append(
                    {"step": step, "elapsed_s": time.perf_counter() - wall_start, **_scalars(metrics)}
                )
                improved = _better(metrics, best)
                if writer:
                    for k, v in _scalars(metrics).items():
                        writer.add_scalar(f"eval/{k}", v, step)
                    for k, v in result["thresholds"].items():
                        if isinstance(v, float):
                            writer.add_scalar(f"eval/threshold_{k}", v, step)
                reported_dir = None
                if improved:
                    best = dict(metrics)
                    if is_main:
                        record = {
                            "step": step,
                            "eval": metrics,
                            "thresholds": result["thresholds"],
                            "confusion_matrix": metrics["confusion_matrix"],
                            "dataset": frames.fingerprint,
                            "split": {
                                "train_episodes": train_eps,
                                "val_episodes": val_eps,
                                "val_frames": len(val_idx),
                            },
                            "run_name": run_name,
                        }
                        save_checkpoint(best_dir, model, result["thresholds"], record, train_cfg_dict)
                        reported_dir = best_dir
                if is_main and step == cfg.steps:
                    # One grid per run (matplotlib is slow on a busy CPU), from the final model.
                    threshold = result["thresholds"].get("best_f1", 0.5)
                    grid = run_dir / "samples" / f"step_{step:06d}.png"
                    save_sample_grid(grid, frames, val_idx, result["probs"], threshold)
                    if writer:
                        import numpy as np
                        from PIL import Image

                        writer.add_image(
                            "eval/sample_predictions",
                            np.asarray(Image.open(grid).convert("RGB")),
                            step,
                            dataformats="HWC",
                        )
                logger.info(
                    "step %d: eval loss %.4f accuracy %.4f f1 %.4f%s",
                    step,
                    metrics["loss"],
                    metrics["accuracy"],
                    metrics["f1"],
                    " (best)" if improved else "",
                )
                if hooks.report is not None:
                    hooks.report(
                        {"step": step, **{f"eval/{k}": v for k, v in _scalars(metrics).items()}}, reported_dir
                    )
    finally:
        progress.close()  # also on Ctrl-C: no stale bar after the message
        torch.set_num_threads(threads)
    if writer:
        writer.flush()
        writer.close()
    return TrainResult(
        run_name=run_name,
        run_dir=run_dir,
        best_checkpoint=best_dir if is_main and best is not None else None,
        best_metrics=best or {},
        history=history,
        seconds=time.perf_counter() - wall_start,
    )


def _scalars(metrics: dict) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    # Not a terminal (Ray job logs): refresh rarely instead of flooding the log.
    return tqdm(
        total=total, desc="train-reward", disable=not enabled, mininterval=0.5 if sys.stderr.isatty() else 30
    )
