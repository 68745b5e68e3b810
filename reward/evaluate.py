"""`hilserl eval-reward`: evaluate a classifier checkpoint on a labeled dataset.

    hilserl eval-reward --checkpoint outputs/reward_classifier/pretrained_model --dataset /data/labeled \\
        [--episodes 3,4] [--out DIR] [--threshold 0.7]

Prints one JSON object (metrics at 0.5, at the checkpoint's calibrated thresholds and at
``--threshold`` if given, average precision, the dataset fingerprint) and writes
``pr_curve.png`` and ``confusion_matrix.png`` to ``--out`` (default: ``eval/`` next to the
checkpoint). The checkpoint's cameras and image size are checked against the dataset first;
a mismatch is a one-line error and nothing is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

from configs.dataset import DatasetConfig
from configs.errors import UserError
from reward.checkpoint import CheckpointInfo, load_checkpoint, read_checkpoint_info, verify_against_features
from reward.data import check_dataset_root, load_labeled_frames
from reward.metrics import binary_metrics, multiclass_metrics, precision_recall_curve


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hilserl eval-reward", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (pretrained_model)")
    parser.add_argument("--dataset", required=True, help="root of a labeled LeRobot dataset")
    parser.add_argument("--episodes", default=None, help="comma-separated episode indices (default: all)")
    parser.add_argument("--out", default=None, help="where the PNGs go (default: <checkpoint>/../eval)")
    parser.add_argument("--threshold", type=float, default=None, help="also report metrics at this threshold")
    parser.add_argument("--reward_key", default="next.reward")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    return args


def _episodes(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(
            f"--episodes '{text}' is not a comma-separated list of integers, e.g. --episodes 0,3,4"
        ) from None


def predict(model, frames, batch_size: int = 64) -> torch.Tensor:
    """Probabilities for every frame (batched)."""
    out = []
    for start in range(0, len(frames), batch_size):
        batch = {key: frames.images[key][start : start + batch_size] for key in model.camera_keys}
        out.append(model.predict_proba(batch).cpu())
    return torch.cat(out)


def evaluate_checkpoint(
    checkpoint: str | Path,
    dataset_root: str | Path,
    episodes: list[int] | None = None,
    out_dir: str | Path | None = None,
    threshold: float | None = None,
    reward_key: str = "next.reward",
    batch_size: int = 64,
    device: str = "cpu",
) -> dict:
    """Checks, predictions, metrics, plots. Returns the JSON-ready report."""
    info = read_checkpoint_info(checkpoint)
    dataset = DatasetConfig(root=str(dataset_root), episodes=episodes)
    root = check_dataset_root(dataset)
    from lerobot.datasets.lerobot_dataset import LeRobotDatasetMetadata

    verify_against_features(info, LeRobotDatasetMetadata(dataset.repo_id, root=root).features)
    frames, _ = load_labeled_frames(dataset, info.config, reward_key, require_both_classes=False)
    model, info = load_checkpoint(checkpoint, device=device)
    probs = predict(model, frames, batch_size)
    labels = frames.labels
    report: dict = {
        "checkpoint": str(Path(checkpoint).resolve()),
        "checkpoint_source": info.source,
        "dataset": frames.fingerprint,
    }
    if model.config.num_classes == 2:
        thresholds = {"0.5": 0.5}
        for name in ("best_f1", "precision_0.99"):
            if info.thresholds.get(name) is not None:
                thresholds[name] = float(info.thresholds[name])
        if threshold is not None:
            thresholds["requested"] = threshold
        report["metrics"] = {name: binary_metrics(probs, labels, t) for name, t in thresholds.items()}
        curve = precision_recall_curve(probs, labels)
        report["average_precision"] = _average_precision(curve) if (labels > 0.5).any() else None
        report["calibrated_thresholds"] = info.thresholds
    else:
        report["metrics"] = {"argmax": multiclass_metrics(probs, labels)}
        curve = None
    out = Path(out_dir) if out_dir else Path(checkpoint).resolve().parent / "eval"
    out.mkdir(parents=True, exist_ok=True)
    report["plots"] = _plots(out, curve, report["metrics"], info)
    return report


def _average_precision(curve: dict) -> float:
    precision, recall = np.asarray(curve["precision"]), np.asarray(curve["recall"])
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _plots(out: Path, curve: dict | None, metrics: dict, info: CheckpointInfo) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = {}
    fig, ax = plt.subplots(figsize=(4.5, 4))
    if curve is not None and curve["recall"]:
        ax.plot(curve["recall"], curve["precision"], drawstyle="steps-post")
        for name in ("best_f1", "precision_0.99"):
            if name in metrics:
                m = metrics[name]
                ax.scatter(
                    [m["recall"]], [m["precision"]], label=f"{name} (t={m['threshold']:.3f})", zorder=3
                )
        ax.legend(fontsize=7, loc="lower left")
    ax.set(xlabel="recall", ylabel="precision", title="precision-recall", xlim=(0, 1.02), ylim=(0, 1.02))
    fig.tight_layout()
    paths["pr_curve"] = str(out / "pr_curve.png")
    fig.savefig(paths["pr_curve"], dpi=90)
    plt.close(fig)

    name = "best_f1" if "best_f1" in metrics else next(iter(metrics))
    cm = np.asarray(metrics[name]["confusion_matrix"])
    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    ax.imshow(cm, cmap="Blues")
    for (i, j), value in np.ndenumerate(cm):
        ax.text(j, i, str(value), ha="center", va="center", color="black")
    ax.set(xlabel="predicted", ylabel="true", title=f"confusion matrix ({name})")
    ax.set_xticks(range(cm.shape[1]))
    ax.set_yticks(range(cm.shape[0]))
    fig.tight_layout()
    paths["confusion_matrix"] = str(out / "confusion_matrix.png")
    fig.savefig(paths["confusion_matrix"], dpi=90)
    plt.close(fig)
    return paths


def main(argv: list[str]) -> int:
    args = _parse(argv)
    try:
        report = evaluate_checkpoint(
            args.checkpoint,
            args.dataset,
            episodes=_episodes(args.episodes),
            out_dir=args.out,
            threshold=args.threshold,
            reward_key=args.reward_key,
            batch_size=args.batch_size,
            device=args.device,
        )
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(json.dumps(report, indent=2))
    return 0
