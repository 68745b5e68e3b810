"""The main job on the simulated default: the user's day from recording to a checked reward model.

    hilserl demo                                   # configs/sim_default.json
    hilserl demo --config_path my_demo.json --env.num_episodes=20

Steps, each the same code the individual commands run:

1. record   demos with the MuJoCo SO-101 and the scripted human     (hilserl record)
2. record   held-out episodes with another seed, for evaluation
3. doctor   both datasets must be free of defects                   (hilserl doctor)
4. train    the reward classifier as a Ray Train job                (hilserl train-reward)
5. evaluate it on the held-out episodes                             (hilserl eval-reward)

Every launch writes a new run folder under ``output_dir``; nothing existing is touched.
The HIL-SERL RL run will be the next step of this pipeline.
"""

from __future__ import annotations

import copy
import json
import logging
import sys
import time
from pathlib import Path

from configs import preset_path
from configs.demo import DemoConfig
from configs.errors import UserError
from configs.parsing import parse_config

logger = logging.getLogger(__name__)


def _banner(step: str) -> None:
    print(f"\n=== {step} ===", flush=True)


def record_step(cfg: DemoConfig, root: Path, seed: int, num_episodes: int) -> dict:
    from actors.loop.record import run as record

    env_cfg = copy.deepcopy(cfg.env)
    env_cfg.mode = "record"
    env_cfg.dataset_root = str(root)
    env_cfg.repo_id = env_cfg.repo_id or f"local/{root.name}"
    env_cfg.seed = seed
    env_cfg.num_episodes = num_episodes
    summary = record(env_cfg)
    print(summary.text(), flush=True)
    return summary.as_dict()


def doctor_step(root: Path) -> None:
    from reward.dataset_checks import check_dataset
    from reward.dataset_source import SourceDataset

    findings = check_dataset(SourceDataset(root), "next.reward")
    if findings:
        raise UserError(f"the recorded dataset {root} has defects: run `hilserl doctor {root}` to see them")
    print(f"{root}: no defects found", flush=True)


def train_step(cfg: DemoConfig, dataset_root: Path, out_dir: Path) -> Path:
    from cluster.train_job import train_and_export

    train_cfg = copy.deepcopy(cfg.reward)
    train_cfg.dataset.root = str(dataset_root)
    train_cfg.dataset.repo_id = f"local/{dataset_root.name}"
    train_cfg.output_dir = str(out_dir)
    path = train_and_export(train_cfg)
    print(f"pretrained_model: {path}", flush=True)
    return path


def evaluate_step(checkpoint: Path, dataset_root: Path, out_dir: Path) -> dict:
    from reward.evaluate import evaluate_checkpoint

    report = evaluate_checkpoint(checkpoint, dataset_root, out_dir=out_dir)
    print(
        f"{'threshold':<16}{'value':>7}{'accuracy':>10}{'precision':>11}{'recall':>8}{'f1':>7}  confusion [[tn fp] [fn tp]]"
    )
    for name, m in report["metrics"].items():
        if "threshold" not in m:
            print(f"{name:<16}{'':>7}{m.get('accuracy', float('nan')):>10.3f}")
            continue
        print(
            f"{name:<16}{m['threshold']:>7.3f}{m['accuracy']:>10.3f}{m['precision']:>11.3f}"
            f"{m['recall']:>8.3f}{m['f1']:>7.3f}  {m['confusion_matrix']}"
        )
    print(f"plots: {', '.join(str(v) for v in (report.get('plots') or {}).values())}", flush=True)
    return report


def run(cfg: DemoConfig) -> dict:
    """Run the pipeline; returns a summary dict (also written to <run>/summary.json)."""
    run_dir = Path(cfg.output_dir) / (cfg.run_name or time.strftime("%Y%m%d-%H%M%S"))
    if run_dir.exists():
        raise UserError(
            f"run folder {run_dir} already exists: choose another --run_name (nothing was written)"
        )
    run_dir.mkdir(parents=True)
    started = time.perf_counter()
    summary: dict = {"run_dir": str(run_dir.resolve())}

    _banner(f"1/5 record {cfg.env.num_episodes} demo episodes (simulator + scripted human)")
    demos = run_dir / "demos"
    summary["record"] = record_step(cfg, demos, cfg.env.seed, cfg.env.num_episodes)

    _banner(f"2/5 record {cfg.eval_episodes} held-out episodes (seed {cfg.env.seed + 1000})")
    held_out = run_dir / "held_out"
    summary["record_held_out"] = record_step(cfg, held_out, cfg.env.seed + 1000, cfg.eval_episodes)

    _banner("3/5 doctor")
    doctor_step(demos)
    doctor_step(held_out)

    _banner("4/5 train the reward classifier")
    checkpoint = train_step(cfg, demos, run_dir / "reward_classifier")
    summary["checkpoint"] = str(checkpoint)

    _banner("5/5 evaluate on the held-out episodes")
    report = evaluate_step(checkpoint, held_out, run_dir / "eval")
    summary["held_out_metrics"] = report["metrics"]
    summary["plots"] = report.get("plots")
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nDone in {summary['wall_s']} s. Everything is in {run_dir}", flush=True)
    print(f"Use the classifier in an env config: processor.reward_classifier.pretrained_path={checkpoint}")
    return summary


def main(argv: list[str]) -> int:
    if not any(a == "--config_path" or a.startswith("--config_path=") for a in argv):
        argv = ["--config_path", preset_path("sim_default"), *argv]
    try:
        cfg = parse_config(DemoConfig, argv, prog="hilserl demo")
        run(cfg)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
