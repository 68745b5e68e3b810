"""The main job end to end through its real entry point (`hilserl demo --budget tiny`, real local Ray)."""

import json
import re

import pytest

from cluster.cli import main
from cluster.demo import _flatten, budget_overrides
from configs.errors import UserError


def test_budget_presets_become_overrides_the_command_line_can_beat():
    tiny = budget_overrides("tiny")
    assert "--rl.runtime.total_env_steps=60" in tiny and "--env.image_size=32" in tiny
    assert budget_overrides("small") == []  # sim_default.json as it is
    assert any(a.startswith("--rl.runtime.total_env_steps=") for a in budget_overrides("full"))
    assert _flatten({"a": {"b": [1, 2], "c": {"x.y": 1}}}) == ["--a.b=[1, 2]", '--a.c={"x.y": 1}']
    with pytest.raises(UserError, match="budget 'huge'"):
        budget_overrides("huge")


def test_the_rl_run_gets_the_tasks_episode_length_and_the_recordings_storage(tmp_path):
    from pathlib import Path

    from cluster.demo import DemoConfig, rl_config
    from configs import preset_path
    from configs.parsing import parse_config

    def rl(*argv):
        cfg = parse_config(DemoConfig, ["--config_path", preset_path("sim_default"), *argv])
        return rl_config(cfg, tmp_path, Path("demos"), None, "sparse")

    assert rl().env.processor.reset.control_time_s == 2.5 and rl().env.video is False
    picked = rl("--env.task=pick_lift", "--pick_lift_episode_s=6")
    assert picked.env.task == "pick_lift" and picked.env.processor.reset.control_time_s == 6.0


@pytest.mark.slow
def test_demo_tiny_runs_record_to_report_and_the_policy_changes(tmp_path, capsys):
    argv = [
        "demo",
        "--budget",
        "tiny",
        f"--output_dir={tmp_path}",
        "--run_name=r1",
        "--seeds",
        "0",
    ]  # more: test_ray_run
    assert main(argv) == 0
    run_dir = tmp_path / "r1"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["record"]["episodes"] == 2 and summary["record_held_out"]["episodes"] == 1
    assert (run_dir / "reward_classifier" / "pretrained_model" / "model.safetensors").is_file()
    assert set(summary["held_out_metrics"]) >= {"0.5"}

    # The RL run trained and its weights reached the robot: fails if weights are never pushed.
    runs = summary["rl"]["classifier reward"]
    assert [r["folder"].rsplit("/", 1)[1] for r in runs] == ["classifier-seed0"]
    rl = runs[0]
    assert rl["learner_updates"] > 0 and rl["env_steps"] >= 60
    assert rl["robot_policy_version"] > 0
    assert rl["eval"]["episodes"] == 2 and rl["eval"]["policy_version"] > 0
    assert rl["policy_change"] > 0.0
    assert summary["untrained_eval"]["policy_version"] is None

    report = (run_dir / "report.md").read_text()
    row = next(line for line in report.splitlines() if line.startswith("| classifier reward seed 0 |"))
    assert re.search(r"\| \d+% \(\d+/2\) \| \d+ \|", row), row  # eval and env steps filled in
    # The headline is the evaluation curve (lock-step, a point every 20 env steps), every seed on it.
    assert report.index("plots/eval_curve.png") < report.index("plots/success_intervention.png")
    for seed in (0,):
        curve = [
            line for line in report.splitlines() if line.startswith(f"| classifier reward seed {seed} | ")
        ]
        steps = [line.split("|")[2].strip() for line in curve[1:]]  # the runs-table row comes first
        assert steps == ["0", "20", "40", "60"], curve
    assert "## Seeds" in report and re.search(r"\| classifier reward \| 1 \(0\) \|", report)
    out = capsys.readouterr().out
    assert "no defects found" in out and "pretrained_model:" in out
    assert "classifier reward: 1 seed, final success" in out
    assert "Untrained policy" in report and "Success without intervention: " in report
    for png in ("success_intervention", "episode_return", "losses", "classifier_pr_curve"):
        assert (run_dir / "plots" / f"{png}.png").stat().st_size > 1000
        assert f"plots/{png}.png" in report

    # The next classifier: the final policy's evaluation episodes are a labeled dataset, and the old
    # and the next checkpoint are scored on the same held-out sets (or the report says why not).
    from reward.dataset_source import SourceDataset

    eval_set = SourceDataset(run_dir / "rl" / "classifier-seed0" / "eval_episodes")
    assert len(eval_set.lengths) == 2 and sum(eval_set.lengths.values()) >= 2
    assert "## The next classifier" in report
    comparison = summary["next_classifier"]
    if comparison["checkpoint"]:
        assert (run_dir / "next_reward_classifier" / "pretrained_model" / "model.safetensors").is_file()
        names = [row["name"] for row in comparison["rows"]]
        assert names == ["scripted held-out", "evaluation episodes of the final policy"]
        assert all(row["frames"] > 0 and set(row["old"]) == set(row["next"]) for row in comparison["rows"])
        assert "false positive rate, old -> next" in report
    else:
        assert "agreed with the simulator on every frame" in report

    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
