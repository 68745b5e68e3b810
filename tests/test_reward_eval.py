"""eval-reward on a video dataset (JSON + PNGs), checkpoint/data mismatches, metrics and calibration."""

import json

import numpy as np
import pytest

from cluster.cli import main as hilserl
from reward import evaluate
from reward.metrics import binary_metrics, calibrate_thresholds, multiclass_metrics, precision_recall_curve
from reward.train import run
from tests.lerobot_data import tree_hash
from tests.reward_helpers import labeled_dataset, train_config, write_backbone


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint trained for two steps on two 32x32 video cameras, and its (video) dataset."""
    base = tmp_path_factory.mktemp("eval")
    root = base / "videos"
    labeled_dataset(root, image_size=32, episodes=(5, 5), use_videos=True)
    cfg = train_config(root, write_backbone(base / "resnet10"), base / "out", val_fraction=0.5)
    return run(cfg).best_checkpoint, root


def test_eval_reward_prints_json_and_writes_plots(tmp_path, trained, capsys):
    checkpoint, root = trained
    before = tree_hash(root)
    capsys.readouterr()
    args = ["--checkpoint", str(checkpoint), "--dataset", str(root), "--out", str(tmp_path / "ev")]
    assert hilserl(["eval-reward", *args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["dataset"]["frames"] == 10 and report["dataset"]["positives"] == 4
    # The numbers must be the ones the model gives: recompute them from its own probabilities.
    from configs.dataset import DatasetConfig
    from reward.checkpoint import load_checkpoint
    from reward.data import load_labeled_frames

    model, info = load_checkpoint(checkpoint)
    frames, _ = load_labeled_frames(DatasetConfig(root=str(root)), info.config, require_both_classes=False)
    probs = evaluate.predict(model, frames).numpy().astype(np.float64)
    labels = frames.labels.numpy()
    for name in ("0.5", "best_f1"):
        m = report["metrics"][name]
        predicted = probs > m["threshold"]
        assert m["accuracy"] == pytest.approx(float(np.mean(predicted == (labels > 0.5))))
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        assert (tp, fp) == (int((predicted & (labels > 0.5)).sum()), int((predicted & (labels < 0.5)).sum()))
        assert tn + fp + fn + tp == 10
    assert json.loads((tmp_path / "ev" / "report.json").read_text())["metrics"] == report["metrics"]
    assert (tmp_path / "ev" / "pr_curve.png").stat().st_size > 1000
    assert (tmp_path / "ev" / "confusion_matrix.png").stat().st_size > 1000
    assert tree_hash(root) == before  # the source dataset is never modified


def _eval_error(tmp_path, checkpoint, root, capsys):
    capsys.readouterr()
    code = hilserl(
        [
            "eval-reward",
            "--checkpoint",
            str(checkpoint),
            "--dataset",
            str(root),
            "--out",
            str(tmp_path / "ev"),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ") and "\n" not in err, err
    assert not (tmp_path / "ev").exists()
    return err


def test_checkpoint_image_size_differs_from_data(tmp_path, trained, capsys):
    root = tmp_path / "bigger"
    labeled_dataset(root, image_size=48, episodes=(3, 3))
    err = _eval_error(tmp_path, trained[0], root, capsys)
    assert "48x48 in the data" in err and "32x32" in err


def test_checkpoint_cameras_differ_from_data(tmp_path, trained, capsys):
    root = tmp_path / "one_cam"
    labeled_dataset(root, image_size=32, cameras=("front",), episodes=(3, 3))
    err = _eval_error(tmp_path, trained[0], root, capsys)
    assert "observation.images.side" in err


def test_binary_metrics_and_calibration():
    probs = np.array([0.1, 0.2, 0.35, 0.4, 0.6, 0.7, 0.8, 0.95])
    labels = np.array([0, 0, 1, 0, 0, 1, 1, 1])
    m = binary_metrics(probs, labels, 0.5)
    assert m["confusion_matrix"] == [[3, 1], [1, 3]]
    assert m["precision"] == pytest.approx(0.75) and m["recall"] == pytest.approx(0.75)
    t = calibrate_thresholds(probs, labels)
    # Lowest threshold with precision >= 0.99: only 0.7, 0.8, 0.95 predicted positive.
    assert 0.6 <= t["precision_0.99"] < 0.7
    assert t["precision_0.99_recall"] == pytest.approx(0.75)
    assert binary_metrics(probs, labels, t["precision_0.99"])["precision"] == 1.0
    # Best F1: everything from 0.35 up (recall 1, precision 4/6 → 0.8) vs 0.7 up (0.857) → 0.7 up.
    assert 0.6 <= t["best_f1"] < 0.7 and t["best_f1_value"] == pytest.approx(6 / 7)
    # ... placed halfway (in logit space) between the scores 0.6 and 0.7: 0.5 would select other frames.
    logit = lambda q: np.log(q / (1 - q))  # noqa: E731
    assert t["best_f1"] == pytest.approx(1 / (1 + np.exp(-(logit(0.6) + logit(0.7)) / 2)))
    # A separable validation set whose gap holds 0.5: the trained boundary itself, not the gap's middle.
    separable = calibrate_thresholds(np.array([0.01, 0.2, 0.45, 0.9, 0.999]), np.array([0, 0, 0, 1, 1]))
    assert separable["best_f1"] == 0.5 and separable["best_f1_value"] == 1.0
    high_gap = calibrate_thresholds(np.array([0.01, 0.6, 0.9, 0.999]), np.array([0, 0, 1, 1]))
    assert high_gap["best_f1"] == pytest.approx(1 / (1 + np.exp(-(logit(0.6) + logit(0.9)) / 2)))
    assert binary_metrics(probs, labels, t["best_f1"])["f1"] == pytest.approx(
        binary_metrics(probs, labels, 0.65)["f1"]
    )
    curve = precision_recall_curve(probs, labels)
    assert curve["recall"][-1] == 1.0 and curve["precision"][0] == 1.0


def test_calibration_when_precision_is_unreachable():
    t = calibrate_thresholds(np.array([0.9, 0.8]), np.array([0, 1]))
    assert t["precision_0.99"] is None


def test_multiclass_metrics():
    probs = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.1, 0.1, 0.8], [0.8, 0.1, 0.1]])
    m = multiclass_metrics(probs, np.array([0, 1, 2, 2]))
    assert m["accuracy"] == 0.75 and m["confusion_matrix"][2] == [1, 0, 1]
