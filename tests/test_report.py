"""cluster.report: the experiment report from fake run folders and a fake classifier evaluation."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from PIL import Image

from cluster.report import (
    eval_curve,
    first_step_reaching,
    load_history,
    mean_curve,
    run_summary,
    seed_summary,
    steps_to_level,
    wall_clock_s,
    write_report,
)


def _eval_record(
    env_steps: float, successes: int, wall_s: float, episodes: int = 10, fps: float = 10
) -> dict:
    """An evaluation point as the run writes it to history.jsonl."""
    return {
        "env_steps": env_steps,
        "wall_s": wall_s,
        "eval_success_rate": successes / episodes,
        "eval_successes": successes,
        "eval_episodes": episodes,
        "eval_mean_return": successes / episodes,
        "eval_mean_length": 20.0,
        "eval_policy_version": int(env_steps // 2),
        "robot_time_s": env_steps / fps,
    }


def _history(
    n: int,
    success_end: float,
    agreement: bool,
    loss_keys=("critic_loss", "actor_loss", "temperature"),
    evals: dict[int, int] | None = None,
):
    """Monitor records every 100 env steps and 3 s; ``evals`` {i: successes of 10} adds an evaluation point
    at record i's env steps, 1 s after it."""
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
        if evals and i in evals:
            records.append(_eval_record(100.0 * i, evals[i], 3.0 * i + 1))
    return records


def _run_folder(
    root: Path, name: str, history: list[dict], ev: dict | None, classifier: dict, config: dict | None = None
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config))
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


def _final_eval(successes: int, episodes: int = 50) -> dict:
    return {"episodes": episodes, "success_rate": successes / episodes, "successes": successes}


def _row(text: str, name: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(f"| {name} |"))


def test_eval_curve_headline_and_points(tmp_path):
    runs = {
        "classifier reward": _run_folder(
            tmp_path,
            "classifier",
            _history(20, 1.0, agreement=True, evals={0: 0, 5: 4, 10: 9, 15: 10}),
            _final_eval(45),
            {"source": "classifier"},
        ),
        "sparse reward": _run_folder(
            tmp_path,
            "sparse",
            _history(10, 0.5, agreement=False, evals={0: 0, 5: 3}),
            None,
            {"source": "sparse"},
        ),
        "no evals": _run_folder(
            tmp_path, "none", _history(10, 0.5, agreement=False), None, {"source": "sparse"}
        ),
    }
    out = tmp_path / "report"
    text = write_report(out, runs, None).read_text()
    eval_col = "steps to 90 % (eval): env steps (robot time, wall-clock)"
    assert eval_col in text.splitlines()[4]  # the runs table's header
    assert _row(text, "classifier reward").endswith(
        "| 90% (45/50) | 1900 | 0m57s | 1800 (0m54s) | 81% -> 5% | 1000 (robot 1m40s, wall-clock 0m31s) |"
    )
    assert _row(text, "sparse reward").endswith("| not reached | 76% -> 5% | not reached |")
    assert _row(text, "no evals").endswith("| not reached | 76% -> 5% | - |")
    heads = [text.index(h) for h in ("## Runs", "## Evaluation success", "## Untrained policy", "## Figures")]
    assert heads == sorted(heads)
    assert "## Seeds" not in text
    links = _linked_pngs(text)
    assert links[0] == "plots/eval_curve.png"
    with Image.open(out / links[0]) as image:
        image.verify()
        assert image.format == "PNG" and image.size[0] > 3 * image.size[1]  # three subplots side by side
    assert "No evaluation points (no curve): no evals." in text
    table = text.split(
        "| run | env steps | robot time | wall-clock | success (k/K) |\n|---|---|---|---|---|\n"
    )[1]
    assert table.split("\n\n")[0].splitlines() == [
        "| classifier reward | 0 | 0m00s | 0m01s | 0% (0/10) |",
        "| classifier reward | 500 | 0m50s | 0m16s | 40% (4/10) |",
        "| classifier reward | 1000 | 1m40s | 0m31s | 90% (9/10) |",
        "| classifier reward | 1500 | 2m30s | 0m46s | 100% (10/10) |",
        "| sparse reward | 0 | 0m00s | 0m01s | 0% (0/10) |",
        "| sparse reward | 500 | 0m50s | 0m16s | 30% (3/10) |",
    ]


def test_no_eval_points_no_figure(tmp_path, runs):
    text = write_report(tmp_path / "report", runs, None).read_text()
    assert "No run records evaluation points" in text
    assert not (tmp_path / "report" / "plots" / "eval_curve.png").exists()
    assert _row(text, "sparse reward").endswith("| not reached | 76% -> 5% | - |")


def test_steps_to_level_is_the_first_eval_point_at_the_level():
    history = _history(20, 1.0, agreement=False, evals={0: 0, 5: 4, 10: 9, 15: 10, 17: 8})
    point = steps_to_level(history)  # 9/10 = 0.9 counts
    assert (point["env_steps"], point["robot_time_s"], point["wall_s"]) == (1000, 100.0, 31.0)
    assert (point["successes"], point["episodes"], point["policy_version"]) == (9, 10, 500)
    assert steps_to_level(history, level=0.95)["env_steps"] == 1500
    assert steps_to_level(history, level=1.01) is None
    assert steps_to_level(_history(5, 1.0, agreement=False)) is None


def test_eval_wall_clock_across_a_resume():
    """wall_s restarts at 0 on resume: an eval point's wall-clock adds the finished segments."""
    history = [
        {"env_steps": 0.0, "wall_s": 0.0, "success_rate": 0.0},
        _eval_record(0.0, 1, wall_s=2.0),
        {"env_steps": 500.0, "wall_s": 50.0, "success_rate": 0.2},
        _eval_record(480.0, 5, wall_s=60.0),  # just below the monitor record before it
        {"env_steps": 900.0, "wall_s": 100.0, "success_rate": 0.5},
        {"env_steps": 900.0, "wall_s": 1.0, "success_rate": 0.5},  # resumed
        _eval_record(1000.0, 9, wall_s=20.0),
        {"env_steps": 1100.0, "wall_s": 30.0, "success_rate": 0.8},
    ]
    for record in history:
        record.pop("robot_time_s", None)  # taken from the fps instead
    curve = eval_curve(history, fps=10)
    assert [(p["env_steps"], p["robot_time_s"], p["wall_s"], p["successes"]) for p in curve] == [
        (0, 0.0, 2.0, 1),
        (480, 48.0, 60.0, 5),
        (1000, 100.0, 120.0, 9),
    ]
    assert eval_curve(history)[0]["robot_time_s"] is None
    assert wall_clock_s(history) == 130.0
    assert steps_to_level(history, fps=10)["wall_s"] == 120.0


def test_eval_line_last_does_not_change_run_summary(tmp_path):
    history = _history(10, 1.0, agreement=False)
    for record in history:
        record["intervention_rate"] = 0.0
    history.append(_eval_record(850.0, 10, wall_s=28.0))
    summary = run_summary("run", _run_folder(tmp_path, "run", history, None, {"source": "sparse"}))
    assert summary["env_steps"] == 900  # the last monitor record's, not the eval point's 850
    assert summary["reached"] == 900 and summary["reached_wall_s"] == 27.0  # 9/9 at i = 9
    assert summary["wall_s"] == 28.0
    assert [p["env_steps"] for p in summary["curve"]] == [850]


def test_seeds(tmp_path):
    seeds = [
        ({0: 0, 5: 5, 10: 9, 15: 10}, 40),  # reaches 0.9 at 1000
        ({0: 0, 5: 3, 10: 7, 15: 9}, 30),  # at 1500
        ({0: 0, 5: 2, 10: 5, 15: 6}, 20),  # never
    ]
    folders = [
        _run_folder(
            tmp_path,
            f"seed{seed}",
            _history(20, 1.0, agreement=False, evals=evals),
            _final_eval(successes),
            {"source": "sparse"},
            config={"seed": seed, "env": {"fps": 10}},
        )
        for seed, (evals, successes) in enumerate(seeds)
    ]
    summary = seed_summary(folders)
    assert summary["seeds"] == [0, 1, 2]
    assert summary["final_success"] == {"mean": pytest.approx(0.6), "min": 0.4, "max": 0.8, "n": 3}
    assert summary["steps_to_90"] == {"mean": 1250.0, "min": 1000, "max": 1500, "reached": 2, "n": 3}
    curve = mean_curve([run_summary("s", f)["curve"] for f in folders])
    assert [p["env_steps"] for p in curve] == [0, 500, 1000, 1500]
    assert [p["success_rate"] for p in curve] == pytest.approx([0.0, 1 / 3, 0.7, 25 / 30])
    single = _run_folder(
        tmp_path, "single", _history(20, 1.0, False, evals={10: 10}), None, {"source": "sparse"}
    )
    out = tmp_path / "report"
    text = write_report(out, {"sparse reward": folders, "single": single}, None).read_text()
    assert _row(text, "sparse reward seed 0").endswith("| 1000 (robot 1m40s, wall-clock 0m31s) |")
    assert _row(text, "sparse reward seed 1").endswith("| 1500 (robot 2m30s, wall-clock 0m46s) |")
    assert _row(text, "sparse reward seed 2").endswith("| not reached |")
    assert "| 80% (40/50) |" in _row(text, "sparse reward seed 0")
    assert _row(text, "single").endswith("| 1000 (robot 1m40s, wall-clock 0m31s) |")
    assert "## Seeds" in text and text.index("## Evaluation success") < text.index("## Seeds")
    assert _row(text, "sparse reward") == (
        "| sparse reward | 3 (0, 1, 2) | 60% (40%, 80%) | 1250 (1000, 1500); 2 of 3 seeds reached it |"
    )
    assert "| single |" not in text.split("## Seeds")[1]  # one folder: no seeds row
    assert "Thin lines: seeds" in text
    with Image.open(out / "plots" / "eval_curve.png") as image:
        image.verify()
    solo = write_report(tmp_path / "solo", {"solo": folders[:1]}, None).read_text()
    assert "| solo seed 0 |" in solo
    assert "| solo | 1 (0) | 80% (80%, 80%) | 1000 (1000, 1000); 1 of 1 seeds reached it |" in solo
