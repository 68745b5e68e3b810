"""The main job end to end through its real entry point, with a tiny budget (in-process trainer)."""

import json

import pytest

from cluster.cli import main

TINY = [
    "--env.num_episodes=2",
    "--eval_episodes=1",
    "--env.image_size=64",
    "--env.number_of_steps_after_success=3",
    "--reward.policy.image_size=64",
    '--reward.policy.input_features={"observation.images.front": {"type": "VISUAL", "shape": [3, 64, 64]}, '
    '"observation.images.wrist": {"type": "VISUAL", "shape": [3, 64, 64]}}',
    "--reward.steps=4",
    "--reward.eval_freq=2",
    "--reward.log_freq=2",
    "--reward.batch_size=8",
    "--reward.use_ray=false",
    "--reward.val_fraction=0.5",
]


@pytest.mark.slow
def test_demo_runs_the_pipeline_and_never_reuses_a_run_folder(tmp_path, capsys):
    argv = ["demo", f"--output_dir={tmp_path}", "--run_name=r1", *TINY]
    assert main(argv) == 0
    run_dir = tmp_path / "r1"
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["record"]["episodes"] == 2 and summary["record_held_out"]["episodes"] == 1
    assert (run_dir / "reward_classifier" / "pretrained_model" / "model.safetensors").is_file()
    assert set(summary["held_out_metrics"]) >= {"0.5"}
    out = capsys.readouterr().out
    assert "no defects found" in out and "pretrained_model:" in out

    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
