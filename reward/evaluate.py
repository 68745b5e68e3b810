r"""`hilserl eval-reward`: evaluate a classifier checkpoint on a labeled dataset.

    hilserl eval-reward --checkpoint outputs/reward_classifier/pretrained_model --dataset /data/labeled \
        [--episodes 3,4] [--out DIR] [--threshold 0.7] [--json] [--overwrite]

Prints a table (accuracy, precision, recall, F1 and the confusion matrix at 0.5, at the
checkpoint's calibrated thresholds and at ``--threshold`` if given) and writes ``report.json``
(the same numbers, average precision, the dataset fingerprint), ``pr_curve.png`` and
``confusion_matrix.png`` to ``--out`` (default: ``eval/`` next to the checkpoint). ``--json``
prints the JSON report instead of the table. The checkpoint (weights hash, preprocessing), its
cameras and image size are checked against the dataset first; any problem is a one-line error
and nothing is written. An existing non-empty ``--out`` needs ``--overwrite``, which replaces only
an earlier eval-reward output; an ``--out`` inside the dataset is refused.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from configs.errors import UserError

# What eval-reward writes into --out; --overwrite replaces a folder holding only these.
OUTPUT_FILES = ("report.json", "pr_curve.png", "confusion_matrix.png")
FLAGS = {"root": "--dataset", "episodes": "--episodes", "reward_key": "--reward_key"}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hilserl eval-reward", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (pretrained_model)")
    parser.add_argument("--dataset", required=True, help="root of a labeled LeRobot dataset (only read)")
    parser.add_argument("--episodes", default=None, help="comma-separated episode indices (default: all)")
    parser.add_argument(
        "--out", default=None, help="folder for report.json and the PNGs (default: <checkpoint>/../eval)"
    )
    parser.add_argument("--threshold", type=float, default=None, help="also report metrics at this threshold")
    parser.add_argument("--reward_key", default="next.reward", help="label column (default: next.reward)")
    parser.add_argument("--batch_size", type=int, default=64, help="frames per forward pass (default: 64)")
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda (default: cpu)")
    parser.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace an earlier eval-reward output in --out"
    )
    return parser.parse_args(argv)


def _episodes(text: str | None) -> list[int] | None:
    if not text:
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(
            f"--episodes '{text}' is not a comma-separated list of integers, e.g. --episodes 0,3,4"
        ) from None


def predict(model, frames, batch_size: int = 64):
    """Probabilities for every frame (batched)."""
    import torch

    out = []
    for start in range(0, len(frames), batch_size):
        batch = {key: frames.images[key][start : start + batch_size] for key in model.camera_keys}
        out.append(model.predict_proba(batch).cpu())
    return torch.cat(out)


def check_device(device: str):
    """A torch device that exists here; 'cuda' without a GPU is a UserError (eval has no silent fallback)."""
    import torch

    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise UserError(f"--device '{device}' is not a torch device; use cpu or cuda") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {device} but torch sees no GPU on this machine; use --device cpu")
    if resolved.type == "mps" and not torch.backends.mps.is_available():
        raise UserError(f"--device {device} but MPS is not available here; use --device cpu")
    return resolved


def _ours(path: Path) -> bool:
    return all(child.name in OUTPUT_FILES for child in path.iterdir())


def evaluate_checkpoint(
    checkpoint: str | Path,
    dataset_root: str | Path,
    episodes: list[int] | None = None,
    out_dir: str | Path | None = None,
    threshold: float | None = None,
    reward_key: str = "next.reward",
    batch_size: int = 64,
    device: str = "cpu",
    overwrite: bool = False,
    drop_label_edges: bool | None = None,
) -> dict:
    """Checks, predictions, metrics, plots. Returns the JSON-ready report (also written to report.json).
    ``drop_label_edges`` None: as the checkpoint was trained (its train_config.json)."""
    from configs.dataset import DatasetConfig
    from reward.checkpoint import load_checkpoint, read_checkpoint_info, verify_against_features
    from reward.data import check_dataset_root, load_labeled_frames
    from reward.dataset import check_destination, read_info, safe_output
    from reward.metrics import binary_metrics, multiclass_metrics, precision_recall_curve

    if batch_size < 1:
        raise UserError(f"--batch_size is {batch_size}; pass a positive number, e.g. --batch_size 64")
    if threshold is not None and not 0 <= threshold <= 1:
        raise UserError(f"--threshold is {threshold}; pass a probability in [0, 1], e.g. --threshold 0.7")
    torch_device = check_device(device)
    info = read_checkpoint_info(checkpoint)
    if drop_label_edges is None:
        drop_label_edges = info.drop_label_edges
    dataset = DatasetConfig(root=str(dataset_root), episodes=episodes, drop_label_edges=drop_label_edges)
    root = check_dataset_root(dataset, FLAGS)
    out = Path(out_dir) if out_dir else Path(checkpoint).expanduser().resolve().parent / "eval"
    check_destination(out, [root], overwrite, ours=_ours, flag="--out")
    verify_against_features(info, read_info(root)["features"])
    model, info = load_checkpoint(checkpoint, device=torch_device)
    frames, _ = load_labeled_frames(dataset, info.config, reward_key, require_both_classes=False, flags=FLAGS)
    probs = predict(model, frames, batch_size)
    labels = frames.labels
    report: dict[str, Any] = {
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
    out = out.expanduser().resolve()
    report["plots"] = {name: str(out / f"{name}.png") for name in ("pr_curve", "confusion_matrix")}
    report["report"] = str(out / "report.json")
    with safe_output(out, [root], overwrite, ours=_ours) as tmp:
        tmp.mkdir()
        _plots(tmp, curve, report["metrics"], info)
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def format_report(report: dict) -> str:
    """The readable table eval-reward (and the demo) print."""
    lines = [
        f"{'threshold':<16}{'value':>7}{'accuracy':>10}{'precision':>11}{'recall':>8}{'f1':>7}  confusion [[tn fp] [fn tp]]"
    ]
    for name, m in report["metrics"].items():
        if "threshold" not in m:
            lines.append(f"{name:<16}{'':>7}{m.get('accuracy', float('nan')):>10.3f}")
            continue
        lines.append(
            f"{name:<16}{m['threshold']:>7.3f}{m['accuracy']:>10.3f}{m['precision']:>11.3f}"
            f"{m['recall']:>8.3f}{m['f1']:>7.3f}  {m['confusion_matrix']}"
        )
    fingerprint = report.get("dataset") or {}
    if fingerprint:
        lines.append(
            f"dataset: {fingerprint.get('root')} ({fingerprint.get('episodes')} episodes, "
            f"{fingerprint.get('frames')} frames, {fingerprint.get('positives')} success)"
        )
    if report.get("average_precision") is not None:
        lines.append(f"average precision: {report['average_precision']:.3f}")
    lines.append(f"plots: {', '.join(str(v) for v in (report.get('plots') or {}).values())}")
    if report.get("report"):
        lines.append(f"report: {report['report']}")
    return "\n".join(lines)


def _average_precision(curve: dict) -> float:
    import numpy as np

    precision, recall = np.asarray(curve["precision"]), np.asarray(curve["recall"])
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _plots(out: Path, curve: dict | None, metrics: dict, info) -> dict[str, str]:
    import matplotlib
    import numpy as np

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
    report = evaluate_checkpoint(
        args.checkpoint,
        args.dataset,
        episodes=_episodes(args.episodes),
        out_dir=args.out,
        threshold=args.threshold,
        reward_key=args.reward_key,
        batch_size=args.batch_size,
        device=args.device,
        overwrite=args.overwrite,
    )
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0
