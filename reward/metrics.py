"""Classification metrics and decision-threshold calibration for the reward classifier.

False positives are what break RL (a reward for a failed grasp teaches the failure), so besides the
threshold of best F1 the calibration reports the lowest threshold whose precision reaches 0.99.

    metrics = binary_metrics(probs, labels, threshold=0.5)
    thresholds = calibrate_thresholds(val_probs, val_labels)   # {"best_f1": ..., "precision_0.99": ...}
"""

from __future__ import annotations

import numpy as np
import torch

HIGH_PRECISION = 0.99


def _np(x: torch.Tensor | np.ndarray) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def binary_metrics(probs, labels, threshold: float = 0.5) -> dict:
    """accuracy, precision, recall, f1 and the confusion matrix [[tn, fp], [fn, tp]] at ``threshold``."""
    p, y = _np(probs).astype(np.float64), _np(labels).round().astype(np.int64)
    pred = (p > threshold).astype(np.int64)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    total = max(len(y), 1)
    return {
        "accuracy": (tp + tn) / total,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
        "false_negative_rate": fn / (fn + tp) if fn + tp else 0.0,
        "threshold": float(threshold),
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "frames": int(len(y)),
    }


def multiclass_metrics(probs, labels) -> dict:
    """accuracy, macro precision/recall/f1 and the K x K confusion matrix (rows: true, columns: predicted)."""
    p, y = _np(probs), _np(labels).round().astype(np.int64)
    k = p.shape[1]
    pred = p.argmax(axis=1)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (y, pred), 1)
    precisions, recalls, f1s = [], [], []
    for c in range(k):
        tp, fp, fn = cm[c, c], cm[:, c].sum() - cm[c, c], cm[c, :].sum() - cm[c, c]
        pr = tp / (tp + fp) if tp + fp else 0.0
        rc = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(pr)
        recalls.append(rc)
        f1s.append(2 * pr * rc / (pr + rc) if pr + rc else 0.0)
    return {
        "accuracy": float(np.trace(cm) / max(cm.sum(), 1)),
        "precision": float(np.mean(precisions)),
        "recall": float(np.mean(recalls)),
        "f1": float(np.mean(f1s)),
        "confusion_matrix": cm.tolist(),
        "frames": int(len(y)),
    }


def precision_recall_curve(probs, labels) -> dict[str, list[float]]:
    """Precision and recall at every distinct score used as a threshold (predict positive when p > t)."""
    p, y = _np(probs).astype(np.float64), _np(labels).round().astype(np.int64)
    order = np.argsort(-p, kind="stable")
    p, y = p[order], y[order]
    tps = np.cumsum(y)
    fps = np.cumsum(1 - y)
    # Keep the last index of each distinct score: predicting positive for all p >= that score.
    last = np.r_[np.nonzero(np.diff(p))[0], len(p) - 1]
    positives = max(int(y.sum()), 1)
    precision = tps[last] / np.maximum(tps[last] + fps[last], 1)
    recall = tps[last] / positives
    # Threshold t such that "p > t" selects exactly those frames: just below the score.
    thresholds = np.nextafter(p[last], -np.inf)
    return {"threshold": thresholds.tolist(), "precision": precision.tolist(), "recall": recall.tolist()}


def _logit(q: float, eps: float = 1e-7) -> float:
    q = min(max(q, eps), 1 - eps)
    return float(np.log(q) - np.log1p(-q))


TRAINED_BOUNDARY = 0.5
"""Where the cross-entropy put the classifier's decision boundary."""


def _margin_threshold(thresholds: np.ndarray, index: int) -> float:
    """The threshold that selects the same validation frames as ``thresholds[index]`` (just below a
    score), placed where it tolerates the shift from validation frames to the policy's: the trained
    boundary 0.5 when it selects those same frames, else halfway, in logit space, to the next lower
    score. A threshold just below the lowest selected positive, or even halfway on a separable
    validation set, misses the first frames of a grasp on the policy's own frames, which score a
    little lower than validation's (the measurements: docs/learning_quality.md)."""
    upper = float(np.nextafter(thresholds[index], np.inf))  # the lowest selected score
    if index + 1 >= len(thresholds):
        return float(thresholds[index])  # every frame is selected: nothing below to leave room to
    lower = float(np.nextafter(thresholds[index + 1], np.inf))  # the highest score left out
    if lower < TRAINED_BOUNDARY < upper:
        return TRAINED_BOUNDARY
    middle = 1.0 / (1.0 + np.exp(-(_logit(upper) + _logit(lower)) / 2))
    return float(middle) if lower < middle < upper else float(thresholds[index])


def calibrate_thresholds(probs, labels, min_precision: float = HIGH_PRECISION) -> dict:
    """The threshold of best F1 (with the widest margin: ``_margin_threshold``), and the lowest
    threshold whose precision reaches ``min_precision``."""
    curve = precision_recall_curve(probs, labels)
    t = np.asarray(curve["threshold"])
    pr = np.asarray(curve["precision"])
    rc = np.asarray(curve["recall"])
    f1 = np.where(pr + rc > 0, 2 * pr * rc / np.maximum(pr + rc, 1e-12), 0.0)
    result: dict = {"default": 0.5}
    if len(t) == 0:
        return result | {"best_f1": 0.5, "best_f1_value": 0.0, f"precision_{min_precision}": None}
    best = int(np.argmax(f1))
    result["best_f1"] = _margin_threshold(t, best)
    result["best_f1_value"] = float(f1[best])
    reaching = np.nonzero(pr >= min_precision)[0]
    key = f"precision_{min_precision}"
    if len(reaching):
        lowest = reaching[np.argmin(t[reaching])]
        result[key] = float(t[lowest])
        result[f"{key}_recall"] = float(rc[lowest])
    else:
        result[key] = None  # no threshold reaches it on this validation set
    return result
