"""The main job on the simulated default: from recording to a trained HIL-SERL policy and its report.

    hilserl demo                                   # configs/sim_default.json, budget 'small'
    hilserl demo --budget full                     # + configs/demo_full.json (the real run)
    hilserl demo --budget tiny                     # + configs/demo_tiny.json (the test's size)
    hilserl demo --config_path my_demo.json --env.num_episodes=20

Steps, each the same code the individual commands run:

1. record   demos with the MuJoCo SO-101 and the scripted human     (hilserl record)
            (and ``rl_demo_episodes`` more that end at the success frame, for the RL demo buffer;
            and ``near_miss_episodes`` in which the human fails on purpose, the classifier's negatives)
2. record   held-out episodes with another seed, for evaluation
3. doctor   both datasets must be free of defects                   (hilserl doctor)
4. train    the reward classifier as a Ray Train job                (hilserl train-reward)
5. evaluate it on the held-out episodes                             (hilserl eval-reward)
6. evaluate the untrained policy (no intervention)
7. the HIL-SERL run on Ray with the frozen classifier reward, the demos in the demo buffer and
   scripted interventions that taper off; then evaluation episodes without intervention
                                                                    (hilserl run)
8. the same run (seed, budget) with the terminal-only sparse reward (budget permitting)
9. the next classifier: trained on the demos plus the run's disagreement log; the old and the
   next checkpoint scored on the same held-out episodes (scripted, and the final policy's)
10. report.md + plots/ in the run folder                           (cluster.report)

Every launch writes a new run folder under ``output_dir``; nothing existing is touched.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from actors.roles.stats import LearnerStats
from configs import preset_path
from configs.common import FeatureSpec
from configs.demo import BUDGETS, DemoConfig
from configs.errors import UserError
from configs.parsing import load_config_dict, parse_config
from configs.rl import TrainRLConfig, seeds_argv

logger = logging.getLogger(__name__)

CLASSIFIER_RUN = "classifier reward"
SPARSE_RUN = "sparse reward"


def _banner(step: str) -> None:
    print(f"\n=== {step} ===", flush=True)


def record_step(
    cfg: DemoConfig,
    root: Path,
    seed: int,
    num_episodes: int,
    after_success: int | None = None,
    failure_prob: float | None = None,
) -> dict:
    from actors.loop.record import run as record

    env_cfg = copy.deepcopy(cfg.env)
    if after_success is not None:
        env_cfg.number_of_steps_after_success = after_success
    if failure_prob is not None:
        env_cfg.teleop.failure_prob = failure_prob
    env_cfg.mode = "record"
    env_cfg.dataset_root = str(root)
    env_cfg.repo_id = env_cfg.repo_id or f"local/{root.name}"
    env_cfg.seed = seed
    env_cfg.num_episodes = num_episodes
    summary = record(env_cfg, progress=True)
    print(summary.text(), flush=True)
    return summary.as_dict()


def rehearsal_calibration(cfg: DemoConfig, run_dir: Path) -> None:
    """A rehearsed demo (``env.rehearse``) without calibration folders gets the simulated arm's own
    calibration in ``<run>/calibration`` (a rehearsal's buses use it whatever the files say; the
    config check wants files that exist and hold the reset pose)."""
    from actors.robots.servo_sim.cli import write_sim_calibration

    folder = run_dir / "calibration"
    for env in (cfg.env, cfg.rl.env):
        if not env.rehearse:
            continue
        for device in (env.robot, env.teleop if env.teleop.type == "leader" else None):
            if device is not None and not device.calibration_dir:
                write_sim_calibration(folder, device.id)
                device.calibration_dir = str(folder.resolve())
    if folder.is_dir():
        print(f"rehearsal: the simulated arm's calibration in {folder}", flush=True)


def doctor_step(root: Path) -> None:
    from reward.dataset_checks import check_dataset
    from reward.dataset_source import SourceDataset

    findings = check_dataset(SourceDataset(root), "next.reward")
    if findings:
        raise UserError(f"the recorded dataset {root} has defects: run `hilserl doctor {root}` to see them")
    print(f"{root}: no defects found", flush=True)


def classifier_config(cfg: DemoConfig):
    """The classifier training config, its image size and cameras taken from the recording env."""
    train_cfg = copy.deepcopy(cfg.reward)
    size = cfg.env.image_size
    policy = train_cfg.policy
    policy.image_size = size
    keys = list(policy.input_features) or ["observation.images.front", "observation.images.wrist"]
    policy.input_features = {k: FeatureSpec(type="VISUAL", shape=[3, size, size]) for k in keys}
    policy.num_cameras = len(keys)
    return train_cfg


def train_step(
    cfg: DemoConfig, dataset_root: Path, out_dir: Path, extra_roots: list[Path] | None = None
) -> Path:
    from cluster.train_job import train_and_export

    train_cfg = classifier_config(cfg)
    train_cfg.dataset.root = str(dataset_root)
    train_cfg.dataset.extra_roots = [str(r) for r in extra_roots] if extra_roots else None
    train_cfg.dataset.repo_id = f"local/{dataset_root.name}"
    train_cfg.output_dir = str(out_dir)
    path = train_and_export(train_cfg)
    print(f"pretrained_model: {path}", flush=True)
    return path


def evaluate_step(checkpoint: Path, dataset_root: Path, out_dir: Path) -> dict:
    from reward.evaluate import evaluate_checkpoint, format_report

    report = evaluate_checkpoint(checkpoint, dataset_root, out_dir=out_dir)
    print(format_report(report), flush=True)
    return report


def _rate3(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def disagreement_logs(run_folder: Path) -> list[Path]:
    """The run's next-classifier datasets (one per robot and restart) that hold at least one frame."""
    return sorted(
        p
        for p in (Path(run_folder) / "next_classifier").glob("robot-*")
        if (p / "meta" / "info.json").is_file()
    )


def next_classifier_step(
    cfg: DemoConfig,
    run_dir: Path,
    demos: Path,
    old: Path,
    run_folder: Path,
    test_sets: dict[str, Path],
    extra_roots: list[Path] = (),
) -> dict:
    """Train the next checkpoint on the old one's data (demos + ``extra_roots``) plus the run's
    disagreement log, and score the old and the next checkpoint on the same held-out episodes (each
    at its own run-time threshold)."""
    from reward.checkpoint import read_checkpoint_info
    from reward.dataset_source import SourceDataset
    from reward.evaluate import evaluate_checkpoint

    logs = disagreement_logs(run_folder)
    if not logs:
        reason = "The frozen classifier agreed with the simulator on every frame: no disagreement log to learn from."
        print(reason, flush=True)
        return {"checkpoint": None, "reason": reason}
    log_frames = sum(sum(SourceDataset(p).lengths.values()) for p in logs)
    print(f"disagreement log: {log_frames} frames in {', '.join(map(str, logs))}", flush=True)
    new = train_step(cfg, demos, run_dir / "next_reward_classifier", extra_roots=[*extra_roots, *logs])
    rows = []
    for name, root in test_sets.items():
        row: dict[str, Any] = {"name": name, "root": str(root)}
        for which, checkpoint in (("old", old), ("next", new)):
            threshold = read_checkpoint_info(checkpoint).success_threshold
            out_dir = run_dir / "next_eval" / f"{which}-{root.name}"
            metrics = evaluate_checkpoint(checkpoint, root, out_dir=out_dir, threshold=threshold)["metrics"][
                "requested"
            ]
            (tn, fp), (fn, tp) = metrics["confusion_matrix"]
            row.update(frames=tn + fp + fn + tp, negatives=tn + fp)
            row[which] = {
                "threshold": threshold,
                "accuracy": metrics["accuracy"],
                "false_positive_rate": metrics["false_positive_rate"]
                if tn + fp
                else None,  # None: no such frames
                "false_negative_rate": metrics["false_negative_rate"] if fn + tp else None,
            }
        rows.append(row)
        rates = {
            k: [_rate3(row[w][k]) for w in ("old", "next")]
            for k in ("false_positive_rate", "false_negative_rate")
        }
        print(
            f"{name}: false positive rate {' -> '.join(rates['false_positive_rate'])} (old -> next), "
            f"false negative rate {' -> '.join(rates['false_negative_rate'])} "
            f"({row['frames']} frames, {row['negatives']} failure frames)",
            flush=True,
        )
    return {
        "checkpoint": str(new),
        "trained_on": [str(demos), *map(str, extra_roots)],
        "logs": [str(p) for p in logs],
        "log_frames": log_frames,
        "rows": rows,
    }


def rl_config(
    cfg: DemoConfig, run_dir: Path, demos: Path, checkpoint: Path | None, source: str, seed: int | None = None
) -> TrainRLConfig:
    """The HIL-SERL run's config: the demo's rl block with what the pipeline produced filled in
    (``seed``: this seed's run, in its own folder ``<source>-seed<s>``)."""
    from configs.env import ProcessorConfig, ResetConfig, RewardClassifierEnvConfig

    rl = copy.deepcopy(cfg.rl)
    rl.output_dir = str(run_dir / "rl")
    rl.run_name = source if seed is None else f"{source}-seed{seed}"
    rl.seed = rl.seed if seed is None else seed
    rl.seeds = None
    rl.resume = False
    rl.demo_dataset = str(demos)
    rl.env.task, rl.env.image_size, rl.env.fps = cfg.env.task, cfg.env.image_size, cfg.env.fps
    rl.env.video = cfg.env.video  # the recorded evaluation episodes feed the next classifier
    rl.env.mode = None
    rl.reward.source = source
    if (
        source == "classifier"
    ):  # on-policy held-out frames: the next classifier's test set, every seed's FN / FP
        rl.runtime.eval_record = cfg.next_classifier or rl.runtime.eval_record
    processor = rl.env.processor = rl.env.processor or ProcessorConfig()
    if cfg.env.task == "pick_lift":
        processor.reset = processor.reset or ResetConfig()
        processor.reset.control_time_s = cfg.pick_lift_episode_s
    block = processor.reward_classifier = processor.reward_classifier or RewardClassifierEnvConfig()
    block.pretrained_path = str(checkpoint) if source == "classifier" and checkpoint else None
    rl.env.reward_classifier_pretrained_path = None
    return rl.resolve()


def policy_change(rl: TrainRLConfig, export: dict | None) -> float:
    """Largest absolute difference between the exported policy's weights and the initial policy's
    (the one ``evaluate_policy(cfg, None, n)`` scores): 0.0 means the policy never changed."""
    import torch

    from learner.networks import Policy
    from vision.backbone import FrozenBackbone

    if not export:
        return 0.0
    lcfg = rl.learner
    torch.manual_seed(rl.seed)
    initial = Policy(
        lcfg, FrozenBackbone.from_config(lcfg) if lcfg.image_keys else None
    ).trainable_state_dict()
    trained = export["state_dict"]
    return max(float((trained[k].float() - initial[k].float()).abs().max()) for k in initial)


def untrained_step(rl: TrainRLConfig, episodes: int) -> dict:
    from actors.roles.evaluate import evaluate_policy

    ev = evaluate_policy(rl, None, episodes)
    print(
        f"untrained policy: success {ev['successes']}/{ev['episodes']} ({ev['success_rate']:.0%}), "
        f"mean return {ev['mean_return']:.3f}",
        flush=True,
    )
    return ev


def rl_step(rl: TrainRLConfig) -> dict[str, Any]:
    """One HIL-SERL run on Ray (``hilserl run``'s code) with its evaluation; returns its headline numbers."""
    from cluster.rl_run import run as rl_run

    summary = rl_run(rl)
    robots = summary.get("robots") or []
    learner = summary.get("learner") or LearnerStats()
    history = summary.get("history") or []
    out = {
        "folder": summary["folder"],
        "env_steps": sum(r.env_steps for r in robots),
        "episodes": sum(r.episodes for r in robots),
        "learner_updates": int(learner.updates),
        "robot_policy_version": max((max(0, r.policy_version) for r in robots), default=0),
        "final_intervention_rate": robots[0].intervention_rate if robots else None,
        "train_wall_s": next((r["wall_s"] for r in reversed(history) if "wall_s" in r), None),
        "eval": summary.get("eval"),
        "policy_change": policy_change(rl, summary.get("export")),
    }
    ev = out["eval"] or {}
    print(
        f"{rl.run_name}: {out['env_steps']} env steps, {out['episodes']} episodes, "
        f"{out['learner_updates']} learner updates, policy version {ev.get('policy_version')}; "
        f"evaluation without intervention: {ev.get('successes')}/{ev.get('episodes')} "
        f"({ev.get('success_rate', 0.0):.0%})",
        flush=True,
    )
    return out


def run(cfg: DemoConfig) -> dict:
    """Run the pipeline; returns a summary dict (also written to <run>/summary.json)."""
    if cfg.budget not in BUDGETS:
        raise UserError(f"--budget '{cfg.budget}': use one of {', '.join(BUDGETS)}")
    run_dir = Path(cfg.output_dir) / (cfg.run_name or time.strftime("%Y%m%d-%H%M%S"))
    if run_dir.exists():
        raise UserError(
            f"run folder {run_dir} already exists: choose another --run_name (nothing was written)"
        )
    run_dir.mkdir(parents=True)
    if cfg.torch_threads:
        import torch

        torch.set_num_threads(cfg.torch_threads)
    started = time.perf_counter()
    summary: dict = {"run_dir": str(run_dir.resolve()), "budget": cfg.budget}
    steps = 8 + int(cfg.sparse_comparison) + int(cfg.next_classifier)
    rehearsal_calibration(cfg, run_dir)

    _banner(f"1/{steps} record {cfg.env.num_episodes} demo episodes (simulator + scripted human)")
    demos = run_dir / "demos"
    summary["record"] = record_step(cfg, demos, cfg.env.seed, cfg.env.num_episodes)
    rl_demos = demos
    if cfg.rl_demo_episodes:
        print(
            f"\n{cfg.rl_demo_episodes} more, ending at the success frame, for the RL demo buffer", flush=True
        )
        rl_demos = run_dir / "rl_demos"
        summary["record_rl_demos"] = record_step(cfg, rl_demos, cfg.env.seed + 2000, cfg.rl_demo_episodes, 0)

    near_misses = None
    if cfg.near_miss_episodes:
        print(
            f"\n{cfg.near_miss_episodes} near misses (the human fails on purpose), negatives for the classifier",
            flush=True,
        )
        near_misses = run_dir / "near_misses"
        summary["record_near_misses"] = record_step(
            cfg, near_misses, cfg.env.seed + 3000, cfg.near_miss_episodes, failure_prob=1.0
        )
    classifier_extra = [near_misses] if near_misses else []

    _banner(f"2/{steps} record {cfg.eval_episodes} held-out episodes (seed {cfg.env.seed + 1000})")
    held_out = run_dir / "held_out"
    summary["record_held_out"] = record_step(cfg, held_out, cfg.env.seed + 1000, cfg.eval_episodes)

    _banner(f"3/{steps} doctor")
    for root in dict.fromkeys([demos, rl_demos, *classifier_extra, held_out]):
        doctor_step(root)

    _banner(f"4/{steps} train the reward classifier")
    checkpoint = train_step(cfg, demos, run_dir / "reward_classifier", extra_roots=classifier_extra)
    summary["checkpoint"] = str(checkpoint)

    _banner(f"5/{steps} evaluate the classifier on the held-out episodes")
    classifier_eval = run_dir / "eval"
    report = evaluate_step(checkpoint, held_out, classifier_eval)
    summary["held_out_metrics"] = report["metrics"]
    summary["plots"] = report.get("plots")

    seeds: list[int | None] = (
        list(cfg.seeds) if cfg.seeds else [None]
    )  # None: one run with rl.seed, as named before
    rl_cls = rl_config(cfg, run_dir, rl_demos, checkpoint, "classifier", seeds[0])
    n_untrained = cfg.untrained_eval_episodes
    n_untrained = rl_cls.runtime.eval_episodes if n_untrained is None else n_untrained
    _banner(f"6/{steps} evaluate the untrained policy ({n_untrained} episodes, no intervention)")
    untrained = untrained_step(rl_cls, n_untrained) if n_untrained else None
    summary["untrained_eval"] = untrained

    budget, pace = rl_cls.runtime.total_env_steps, rl_cls.runtime.pace
    runs: dict[str, list[dict]] = {CLASSIFIER_RUN: [], **({SPARSE_RUN: []} if cfg.sparse_comparison else {})}
    for seed in seeds:
        of_seeds = f", seed {seed} of {cfg.seeds}" if cfg.seeds else ""
        _banner(f"7/{steps} HIL-SERL run on Ray, classifier reward ({budget} env steps, {pace}{of_seeds})")
        if seed != seeds[0]:
            rl_cls = rl_config(cfg, run_dir, rl_demos, checkpoint, "classifier", seed)
        runs[CLASSIFIER_RUN].append(rl_step(rl_cls))
        if cfg.sparse_comparison:
            _banner(f"8/{steps} the same run with the sparse reward (seed {rl_cls.seed}, {budget} env steps)")
            runs[SPARSE_RUN].append(rl_step(rl_config(cfg, run_dir, rl_demos, None, "sparse", seed)))
    summary["rl"] = runs

    comparison = None
    if cfg.next_classifier:
        _banner(f"{steps - 1}/{steps} the next classifier: the demos plus this run's disagreement log")
        from actors.roles.evaluate import EVAL_EPISODES

        folder = Path(runs[CLASSIFIER_RUN][0]["folder"])  # the first seed's run
        test_sets = {"scripted held-out": held_out}
        if (folder / EVAL_EPISODES / "meta" / "info.json").is_file():
            test_sets["evaluation episodes of the final policy"] = folder / EVAL_EPISODES
        comparison = summary["next_classifier"] = next_classifier_step(
            cfg, run_dir, demos, checkpoint, folder, test_sets, classifier_extra
        )

    _banner(f"{steps}/{steps} report")
    extra = {"budget": cfg.budget, "pace": pace}
    for setting, seed_runs in runs.items():
        for seed, r in zip(seeds, seed_runs, strict=True):
            name = setting if seed is None else f"{setting} seed {seed}"
            extra[f"{name}: learner updates"] = r["learner_updates"]
            extra[f"{name}: policy version the robot acted with at the end"] = r["robot_policy_version"]
            extra[f"{name}: largest policy weight change"] = r["policy_change"]
            final = (r["eval"] or {}).get("success_rate")
            if untrained and final is not None:
                extra[f"{name}: eval success minus untrained"] = round(final - untrained["success_rate"], 3)
    summary["wall_s"] = round(time.perf_counter() - started, 1)
    extra["demo wall-clock s (all steps)"] = summary["wall_s"]
    from cluster.report import write_report

    path = write_report(
        run_dir,
        {
            name: [Path(r["folder"]) for r in rs] if cfg.seeds else Path(rs[0]["folder"])
            for name, rs in runs.items()
        },
        classifier_eval,
        untrained_eval=untrained,
        extra=extra,
        next_classifier=comparison,
    )
    summary["report"] = str(path)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"report: {path}")
    print(f"\nDone in {summary['wall_s']} s. Everything is in {run_dir}", flush=True)
    return summary


def _flatten(tree: dict, prefix: str = "") -> list[str]:
    """Dotted ``--a.b=value`` overrides of a nested dict (leaf values as JSON)."""
    out: list[str] = []
    for key, value in tree.items():
        if isinstance(value, dict) and value and "." not in "".join(value):
            out += _flatten(value, f"{prefix}{key}.")
        else:
            out.append(f"--{prefix}{key}={json.dumps(value)}")
    return out


def _budget(argv: list[str]) -> str:
    for i, arg in enumerate(argv):
        if arg.startswith("--budget="):
            return arg.split("=", 1)[1]
        if arg == "--budget" and i + 1 < len(argv):
            return argv[i + 1]
    return DemoConfig.budget


def budget_overrides(budget: str) -> list[str]:
    """The overrides of ``configs/demo_<budget>.json`` (none for a budget without a file)."""
    if budget not in BUDGETS:
        raise UserError(f"--budget '{budget}': use one of {', '.join(BUDGETS)}")
    path = Path(preset_path("sim_default")).with_name(f"demo_{budget}.json")
    return _flatten(load_config_dict(path)) if path.is_file() else []


# A saturated 2-core box can starve the raylet long enough for the GCS's default health check
# (5 missed 3 s heartbeats) to declare the only node dead mid-run; the demo tolerates a minute.
RAY_PATIENCE = {"RAY_health_check_failure_threshold": "20", "RAY_health_check_timeout_ms": "20000"}


def main(argv: list[str]) -> int:
    for key, value in RAY_PATIENCE.items():
        os.environ.setdefault(key, value)
    if not any(a in ("-h", "--help") for a in argv):
        argv = [*budget_overrides(_budget(argv)), *argv]
    if not any(a == "--config_path" or a.startswith("--config_path=") for a in argv):
        argv = ["--config_path", preset_path("sim_default"), *argv]
    try:
        cfg = parse_config(DemoConfig, seeds_argv(argv), prog="hilserl demo")
        summary = run(cfg)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from cluster.report import format_seed_summary, seed_summary

    for name, rs in summary["rl"].items():
        if cfg.seeds:
            print(format_seed_summary(name, seed_summary([Path(r["folder"]) for r in rs])))
            continue
        ev = rs[0]["eval"] or {}
        print(f"{name}: eval success {ev.get('success_rate', 0.0):.0%} over {ev.get('episodes')} episodes")
    return 0
