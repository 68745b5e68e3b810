"""`hilserl bench run --json`: a short HIL-SERL run on Ray with the robot held at 10 Hz.

The simulated SO-101 (two 128x128 cameras) runs in real time at ``fps`` while the learner trains on
the same machine, against the reward actor (a classifier with random weights: the cost is the
same) and the replay actor. Reported from the run's own monitor records, after a warm-up:

    env_steps_per_s, learner_updates_per_s        medians over the records
    period_p50_ms, period_p99_ms, overruns        the robot's control loop (target 1000/fps ms)
    version_lag_updates, version_lag_s            learner version minus the robot's, and the
                                                  publish-to-apply delay of the weights
    bytes_per_s                                   robot->replay + replay->learner + learner->robot
    backbone_frames_per_env_step                  ResNet-10 passes per env step, all roles together

Twice, alternating, in one process: ``encode_once`` (each frame encoded once, on the robot, its
maps sent to the feature replay and the classifier) and ``encode_everywhere``
(``runtime.encode_once=false``: the replay and the reward actor encode the pixels again). With
``--repeats`` > 1 the modes alternate and each figure is the median over its runs.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

import numpy as np


def bench_config(folder: Path, steps: int, fps: int, batch: int, encode_once: bool = True):
    from benchmarks.reward import make_classifier
    from configs.env import EnvConfig, ProcessorConfig, ResetConfig, RewardClassifierEnvConfig, TeleopConfig
    from configs.learner import LearnerConfig
    from configs.rl import RuntimeConfig, TrainRLConfig

    checkpoint = make_classifier(folder / "clf", 128)
    return TrainRLConfig(
        output_dir=str(folder / "runs"),
        run_name="bench",
        env=EnvConfig(
            task="reach_grasp",
            fps=fps,
            realtime=True,
            image_size=128,
            teleop=TeleopConfig(type="scripted", schedule="decay"),
            processor=ProcessorConfig(
                reset=ResetConfig(control_time_s=6.0),
                # Random weights: no frame is a success, so episodes run to their time limit as a
                # learning run's early episodes do (at 0.5 about half the frames would end one).
                reward_classifier=RewardClassifierEnvConfig(
                    pretrained_path=str(checkpoint), success_threshold=1.0
                ),
            ),
        ),
        learner=LearnerConfig(
            batch_size=batch,
            allow_random_vision_weights=True,
            vision_model_name=str(folder / "no-weights"),
            online_capacity=10_000,
            demo_capacity=10_000,
        ),
        runtime=RuntimeConfig(
            total_env_steps=steps,
            learning_starts=min(50, steps // 4),
            max_updates_per_env_step=0,
            checkpoint_every=10**6,
            progress=False,
            dashboard=False,
            encode_once=encode_once,
        ),
    )


def run(steps: int = 400, fps: int = 10, batch: int = 256, repeats: int = 1) -> dict:
    from benchmarks import machine_info

    modes = {"encode_once": True, "encode_everywhere": False}
    runs: dict[str, list[dict]] = {mode: [] for mode in modes}
    for _ in range(repeats):  # alternate so both modes see the same machine
        for mode, encode_once in modes.items():
            runs[mode].append(_one_run(steps, fps, batch, encode_once))
    out: dict = {
        mode: {key: float(np.median([r[key] for r in results])) for key in results[0]}
        for mode, results in runs.items()
    }
    return out | {
        "repeats": repeats,
        "batch_size": batch,
        "load_average_1m": os.getloadavg()[0],
        "machine": machine_info(),
    }


def _one_run(steps: int, fps: int, batch: int, encode_once: bool) -> dict:
    from cluster.rl_run import run as run_hilserl

    with tempfile.TemporaryDirectory() as tmp:
        cfg = bench_config(Path(tmp), steps, fps, batch, encode_once)
        summary = run_hilserl(cfg)
    history = summary["history"]
    warm = [h for h in history if h["learner_updates"] > 0][1:-1] or history[1:-1] or history
    robot = summary["robots"][0]  # actors.roles.stats.RobotStats

    def median(key: str) -> float:
        return float(np.median([h[key] for h in warm]))

    reward, replay = summary["reward"], summary["replay"]
    backbone_frames = (
        robot.backbone_frames + replay["backbone_frames"] + (reward.pixel_frames if reward else 0)
    )

    return {
        "env_steps": int(robot.env_steps),
        "env_steps_per_s": median("env_steps_per_s"),
        "learner_updates": int(summary["learner"].updates),
        "learner_updates_per_s": median("learner_updates_per_s"),
        "period_target_ms": 1000.0 / fps,
        "period_p50_ms": float(robot.period_p50_ms),
        "period_p99_ms": float(robot.period_p99_ms),
        "overruns": int(robot.overruns),
        "version_lag_updates": median("policy_version_lag"),
        "version_lag_s": float(robot.version_lag_s_p50),
        "version_lag_s_max": float(robot.version_lag_s_max),
        "bytes_per_s": median("bytes_moved_per_s"),
        "backbone_frames_per_env_step": backbone_frames / max(1, robot.env_steps),
        "utd_ratio": cfg.learner.utd_ratio,
        "records": len(warm),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hilserl bench run", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the JSON only")
    parser.add_argument("--steps", type=int, default=400, help="env steps (at 10 Hz: 40 s)")
    parser.add_argument("--fps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=1, help="runs of each mode, alternating")
    args = parser.parse_args(argv)
    result = run(args.steps, args.fps, args.batch_size, args.repeats)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
