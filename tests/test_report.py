"""cluster.report: the experiment report from fake run folders and a fake classifier evaluation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from cluster.report import first_step_reaching, load_history, wall_clock_s, write_report


def _history(
    n: int, success_end: float, agreement: bool, loss_keys=("critic_loss", "actor_loss", "temperature")
):
    records = []
    for i in range(n):
        frac = i / (n - 1)
        record = {
            "env_steps": float(100 * i),
            "episodes": float(i),
            "success_rate": success_end * frac,
            "intervention_rate": 0.8 * (1 - frac) + 0.05,
            "episode_return": 10 * success_end * frac,
            "learner_updates": float(50 * i),
            "wall_s": 3.0 * i,
        }
        if agreement:
            record["classifier_false_positive_rate"] = 0.2 * (1 - frac)
            record["classifier_false_negative_rate"] = 0.1 + 0.05 * frac
        for key in loss_keys:
            record[f"loss/{key}"] = 1.0 / (1 + i)
        records.append(record)
    return records


def _run_folder(root: Path, name: str, history: list[dict], ev: dict | None, classifier: dict) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "history.jsonl").write_text("".join(json.dumps(r) + "\n" for r in history))
    (folder / "run.json").write_text(json.dumps({"name": name}))
    (folder / "classifier.json").write_text(json.dumps([classifier]))
    if ev is not None:
        (folder / "eval.json").write_text(json.dumps(ev))
    return folder


def _metrics(threshold: float, accuracy: float, precision: float, recall: float) -> dict:
    f1 = 2 * precision * recall / (precision + recall)
    return {
        "accuracy": accuracy,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "false_positive_rate": 0.02,
        "threshold": threshold,
        "confusion_matrix": [[90, 2], [3, 45]],
        "frames": 140,
    }


def _classifier_eval(folder: Path) -> Path:
    """What eval-reward writes (reward.evaluate.OUTPUT_FILES): tiny PNGs and report.json with its keys."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True)
    for name in ("pr_curve", "confusion_matrix"):
        fig, ax = plt.subplots(figsize=(1, 1))
        ax.plot([0, 1], [1, 0])
        fig.savefig(folder / f"{name}.png", dpi=30)
        plt.close(fig)
    report = {
        "checkpoint": "/ckpt/pretrained_model",
        "checkpoint_source": "trained",
        "dataset": {"root": "/data/labeled", "episodes": 4, "frames": 140, "positives": 48},
        "metrics": {
            "0.5": _metrics(0.5, 0.9643, 0.9574, 0.9375),
            "best_f1": _metrics(0.6125, 0.9714, 0.9783, 0.9375),
        },
        "average_precision": 0.9812,
        "calibrated_thresholds": {"best_f1": 0.6125, "precision_0.99": 0.8},
        "plots": {n: str(folder / f"{n}.png") for n in ("pr_curve", "confusion_matrix")},
        "report": str(folder / "report.json"),
    }
    (folder / "report.json").write_text(json.dumps(report))
    return folder


def _linked_pngs(text: str) -> list[str]:
    return re.findall(r"\]\(([^)]+\.png)\)", text)


@pytest.fixture
def runs(tmp_path):
    classifier = _run_folder(
        tmp_path,
        "classifier",
        _history(20, 1.0, agreement=True),
        {
            "episodes": 20,
            "success_rate": 0.85,
            "successes": 17,
            "mean_return": 0.85,
            "mean_length": 40.0,
            "policy_version": 950,
            "wall_s": 12.0,
        },
        {"path": "/ckpt/pretrained_model", "weights_sha256": "ab" * 32},
    )
    sparse = _run_folder(
        tmp_path,
        "sparse",
        _history(10, 0.5, agreement=False, loss_keys=("critic_loss", "actor_loss")),
        {
            "episodes": 20,
            "success_rate": 0.35,
            "successes": 7,
            "mean_return": 0.35,
            "mean_length": 70.0,
            "policy_version": 450,
            "wall_s": 15.0,
        },
        {"source": "sparse"},
    )
    return {"classifier reward": classifier, "sparse reward": sparse}


def test_report_numbers_and_plots(tmp_path, runs):
    out = tmp_path / "report"
    untrained = {"episodes": 20, "success_rate": 0.05, "successes": 1, "mean_return": 0.05}
    path = write_report(out, runs, _classifier_eval(tmp_path / "eval"), untrained, extra={"seed": 3})
    text = path.read_text()
    assert path == out / "report.md"
    assert "85% (17/20)" in text and "35% (7/20)" in text  # final evaluations
    assert "5% (1/20)" in text  # untrained policy
    assert "| 1900 |" in text and "| 900 |" in text  # env steps at the end
    assert "0m57s" in text  # wall-clock of the classifier run: 19 records x 3 s
    assert "| 1800 (0m54s) |" in text  # first step with success >= 0.9 (i = 18: 18/19 = 0.947), at 18 x 3 s
    assert "not reached" in text  # the sparse run tops out at 0.5
    assert "81% -> 5%" in text  # intervention, first record after an episode -> last
    assert "0.964" in text and "0.978" in text and f"{0.6125:.3f}" in text
    assert "Average precision: 0.981" in text
    assert "pretrained_model" in text and "sparse" in text
    assert "sparse reward: classifier_false_positive_rate" in text  # says which curve is absent
    assert "sparse reward: loss/temperature" in text
    links = _linked_pngs(text)
    assert {Path(link).name for link in links} == {
        "success_intervention.png",
        "episode_return.png",
        "classifier_agreement.png",
        "losses.png",
        "classifier_pr_curve.png",
        "classifier_confusion_matrix.png",
    }
    for link in links:
        with Image.open(out / link) as image:
            image.verify()
            assert image.format == "PNG"


def test_report_without_agreement_or_classifier(tmp_path, runs):
    """Only the sparse run (no agreement keys), no classifier evaluation, no untrained eval."""
    path = write_report(tmp_path / "report", {"sparse reward": runs["sparse reward"]}, None)
    text = path.read_text()
    assert "No run records classifier_false_positive_rate" in text
    assert "No classifier evaluation" in text and "No evaluation of the untrained policy" in text
    assert not (tmp_path / "report" / "plots" / "classifier_agreement.png").exists()
    for link in _linked_pngs(text):
        with Image.open(tmp_path / "report" / link) as image:
            image.verify()


def test_run_without_history_or_eval(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    text = write_report(tmp_path / "report", {"empty": empty}, tmp_path / "missing").read_text()
    assert "| empty | - | - | - | - | not reached | - -> - |" in text
    assert "No run records success_rate" in text


def test_helpers(tmp_path, runs):
    history = load_history(runs["classifier reward"])
    assert len(history) == 20 and load_history(tmp_path) == []
    assert first_step_reaching(history) == 1800
    assert first_step_reaching(history, level=2.0) is None
    resumed = [{"wall_s": 1.0}, {"wall_s": 5.0}, {"wall_s": 0.5}, {"wall_s": 2.0}]
    assert wall_clock_s(resumed) == 7.0 and wall_clock_s([]) is None


def test_reached_uses_the_simulators_success_when_the_run_recorded_it(tmp_path):
    """A policy that fools its classifier: the reward says 100 % long before the simulator does."""
    history = _history(20, 1.0, agreement=True)
    for i, record in enumerate(history):
        record["success_rate"] = 1.0 if i >= 5 else 0.0  # the classifier's judgement
        record["intervention_rate"] = 0.0
        record["true_success_rate"] = 0.95 if i >= 15 else 0.5  # the simulator's
    folder = _run_folder(tmp_path, "fooled", history, None, {"source": "classifier"})
    text = write_report(tmp_path / "report", {"fooled": folder}, None).read_text()
    row = next(line for line in text.splitlines() if line.startswith("| fooled |"))
    assert "| 1500 (0m45s) |" in row, row  # not 500, where the classifier first said success
    assert "`true_success_rate`" in text
