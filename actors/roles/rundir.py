"""A run's folder and its monitor: what a run records, shared by the in-process and the Ray runner.

    outputs/rl/<run>/      <run>: --run_name, else <date>-<time>-<reward source>; a TensorBoard run
        config.json        the resolved TrainRLConfig
        classifier.json    the classifier of every start of this run: path, weights_sha256, val metrics
        run.json           live summary: env steps, updates, success and intervention rates, checkpoint
        history.jsonl      every monitor record (the scalars below), one JSON object a line, and
                           every periodic evaluation point as a line of its own (eval_* keys)
        events.out.tfevents.*  TensorBoard: the same scalars as the progress line and the Ray gauges,
                           the config, the settings (HParams) and evaluation camera frames
        checkpoints/       learner checkpoints (learner.checkpoint)
        replay/            replay snapshot + append-only log (actors.roles.replay)
        eval.json          the evaluation episodes after training, when asked for

``hilserl runs [DIR]`` reads ``run.json`` and ``classifier.json`` of every run under DIR.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from actors.roles.stats import LearnerStats, RewardStats, RobotStats
from configs.errors import UserError
from configs.parsing import save_config
from configs.rl import TrainRLConfig

logger = logging.getLogger(__name__)


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=float) + "\n")
    os.replace(tmp, path)


def fill_state_statistics(cfg: TrainRLConfig) -> None:
    """With ``learner.normalize_state``, the state's scaling from the demo dataset, once, by the
    driver: every role gets the config with the numbers in it (a robot node may not hold the
    demos), and ``config.json`` records them. Without demos the state goes in unscaled."""
    learner = cfg.learner
    if learner.normalize_state and learner.state_scale is None and cfg.demo_dataset:
        from learner.demos import state_statistics

        loc, scale = state_statistics(cfg.demo_dataset, learner.state_key)
        if len(loc) != learner.state_dim:
            raise UserError(
                f"the demo dataset {cfg.demo_dataset} has {len(loc)} state entries but the robot has "
                f"{learner.state_dim}: record the demos with this robot's env"
            )
        learner.state_loc, learner.state_scale = loc, scale


def prepare_run_dir(cfg: TrainRLConfig) -> Path:
    """The run folder: new (refused if it exists) or, with ``resume``, the existing one. Fills in
    the state's scaling first (``fill_state_statistics``)."""
    fill_state_statistics(cfg)
    backbone = None
    if cfg.learner.image_keys:  # missing weights: one line before anything is written; random: said loudly
        from vision.resnet10 import check_resnet10

        backbone = check_resnet10(
            cfg.learner.vision_model_name,
            cfg.learner.allow_random_vision_weights,
            "the learner's vision encoder",
        )
    name = cfg.run_name or dt.datetime.now().strftime("%Y%m%d-%H%M%S-") + cfg.reward.source
    folder = Path(cfg.output_dir) / name
    if cfg.resume:
        if not (folder / "run.json").is_file():
            raise UserError(
                f"--resume: no run at {folder}; pass --run_name of an existing run under {cfg.output_dir}"
            )
        try:
            _read_object(folder / "run.json")
        except (ValueError, UnicodeDecodeError) as err:
            raise UserError(
                f"--resume: {folder / 'run.json'} is unreadable ({str(err)[:80]}); restore it from a copy or "
                "start a new run (its checkpoints and replay are untouched)"
            ) from None
    elif folder.exists():
        raise UserError(f"run folder {folder} already exists: pick another --run_name or add --resume=true")
    folder.mkdir(parents=True, exist_ok=True)
    save_config(cfg, folder / "config.json")
    if not (folder / "run.json").is_file():
        _write_json(
            folder / "run.json",
            {
                "name": name,
                "started": dt.datetime.now().isoformat(timespec="seconds"),
                "vision_backbone": backbone,
            },
        )
    return folder


def episodes_so_far(folder: str | Path) -> int:
    """The run's episodes before this start: the last history line that counts them (0 for a new run)."""
    path = Path(folder) / "history.jsonl"
    episodes = 0
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            if isinstance(record, dict) and "episodes" in record:
                episodes = int(record["episodes"])
    return episodes


def record_classifier(folder: Path, identity: dict | None, allow_change: bool) -> None:
    """Append this start's classifier to classifier.json; a different one on resume needs ``allow_change``."""
    path = folder / "classifier.json"
    history = json.loads(path.read_text()) if path.is_file() else []
    entry = {"started": dt.datetime.now().isoformat(timespec="seconds"), **(identity or {"source": "sparse"})}
    if history:
        before = history[-1].get("weights_sha256")
        if before != entry.get("weights_sha256") and not allow_change:
            raise UserError(
                f"this run used classifier {history[-1].get('path')} (sha256 {str(before)[:12]}) and is resumed "
                f"with {entry.get('path')} (sha256 {str(entry.get('weights_sha256'))[:12]}); pass "
                "--allow_classifier_change=true to continue with it (recorded), or start a new run"
            )
        if before != entry.get("weights_sha256"):
            entry["changed_on_resume"] = True
    history.append(entry)
    _write_json(path, history)


class RunMonitor:
    """Aggregates role statuses into TensorBoard scalars, run.json and one live terminal line."""

    def __init__(self, folder: Path, cfg: TrainRLConfig, extra_sinks: list | None = None):
        self.folder = folder
        self.cfg = cfg
        self.sinks = list(extra_sinks or [])  # callables(scalars: dict[str, float]) e.g. Ray gauges
        self.start = time.monotonic()
        self.history: list[dict[str, float]] = []
        self._writer = None
        self._last_steps = 0
        self._last_time = self.start
        self._last_updates = 0
        self._last_bytes = 0
        self._last_line = 0.0
        self._evals_written: set[tuple[str, int]] = set()
        self._frames_written: set[tuple[str, int]] = set()
        self.last_eval: dict[str, float] | None = None
        self.summary = json.loads(
            (folder / "run.json").read_text()
        )  # run.json is read once, written per record

    def writer(self):
        """TensorBoard's writer. Its events lie in the run folder itself, so that `tensorboard --logdir
        <output_dir>` names each run by its folder (``<date>-<time>-classifier``, ``classifier-seed0``);
        the first time, it logs the resolved config as text and the run's settings as hparams."""
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.folder))
            self._log_settings(self._writer)
        return self._writer

    def _log_settings(self, writer) -> None:
        from torch.utils.tensorboard.summary import hparams

        config = (
            (self.folder / "config.json").read_text() if (self.folder / "config.json").is_file() else "{}"
        )
        writer.add_text("config", "```json\n" + config + "\n```")
        cfg = self.cfg
        settings = {
            "task": cfg.env.task,
            "reward": cfg.reward.source,
            "seed": cfg.seed,
            "image_size": cfg.env.image_size,
            "batch_size": cfg.learner.batch_size,
            "utd_ratio": cfg.learner.utd_ratio,
            "bc_weight": cfg.learner.bc_weight,
            "total_env_steps": cfg.runtime.total_env_steps,
        }
        settings = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in settings.items()}
        experiment, start, end = hparams(settings, {"eval/success_rate": 0.0, "true_success_rate": 0.0})
        for summary in (experiment, start, end):
            writer.file_writer.add_summary(summary)

    def _write_frames(self, robot: RobotStats) -> None:
        """The periodic evaluations' frames (first episode, a few per camera) as TensorBoard images."""
        for frames in robot.eval_frames:
            if (robot.robot, frames["env_steps"]) in self._frames_written:
                continue
            self._frames_written.add((robot.robot, frames["env_steps"]))
            for key, images in frames["images"].items():
                self.writer().add_images(
                    f"eval_frames/{key.split('.')[-1]}", images, frames["env_steps"], dataformats="NCHW"
                )

    def scalars(
        self, robots: list[RobotStats], learner: LearnerStats, reward: RewardStats | None
    ) -> dict[str, float]:
        now = time.monotonic()
        steps = sum(r.env_steps for r in robots)
        updates = int(learner.updates)
        dt_s = max(1e-6, now - self._last_time)
        moved = sum(r.sent_bytes + r.weight_bytes for r in robots) + learner.batch_bytes
        out = {
            "env_steps": float(steps),
            "env_steps_per_s": (steps - self._last_steps) / dt_s,
            "learner_updates": float(updates),
            "learner_updates_per_s": (updates - self._last_updates) / dt_s,
            "episodes": float(sum(r.episodes for r in robots)),
            "success_rate": float(np.mean([r.success_rate for r in robots])),
            "intervention_rate": float(np.mean([r.intervention_rate for r in robots])),
            "episode_return": float(np.mean([r.episode_return for r in robots])),
            "replay_online": float(learner.replay.get("online", 0)),
            "replay_demo": float(learner.replay.get("demo", 0)),
            "policy_version_lag": float(max(0, updates - min(r.policy_version for r in robots))),
            "control_period_p99_ms": float(max(r.period_p99_ms for r in robots)),
            "control_overruns": float(sum(r.overruns for r in robots)),
            "robot_holds": float(sum(r.holds for r in robots)),
            "bytes_moved_per_s": max(0.0, moved - self._last_bytes) / dt_s,
            "policy_version_lag_s": float(max(r.version_lag_s_p50 for r in robots)),
            "wall_s": now - self.start,
        }
        truths = [r.true_success_rate for r in robots if r.true_success_rate is not None]
        if truths:  # the simulator's success; success_rate is the reward's (the classifier's) judgement
            out["true_success_rate"] = float(np.mean(truths))
        agreement = {k: sum(r.agreement[k] for r in robots) for k in ("tp", "fp", "fn", "tn")}
        negatives, positives = agreement["fp"] + agreement["tn"], agreement["tp"] + agreement["fn"]
        if negatives or positives:
            out["classifier_false_positive_rate"] = agreement["fp"] / max(1, negatives)
            out["classifier_false_negative_rate"] = agreement["fn"] / max(1, positives)
        first = {k: sum(r.agreement.get("first_" + k, 0) for r in robots) for k in ("tp", "fn")}
        if first["tp"] + first["fn"]:
            # One frame per episode: a detected grasp ends the episode on one true positive, while a
            # missed one goes on and adds a false negative per frame the cube stays held.
            out["classifier_first_success_miss_rate"] = first["fn"] / (first["tp"] + first["fn"])
        for key, value in learner.losses.items():
            out["loss/" + key] = float(value)
        if reward is not None:
            out.update(reward.scalars())
        self._last_steps, self._last_time, self._last_updates, self._last_bytes = steps, now, updates, moved
        return out

    def _write(self, scalars: dict[str, float]) -> None:
        """One history line, its TensorBoard scalars at its env step (``eval_x`` as ``eval/x``), the sinks."""
        self.history.append(scalars)
        step = int(scalars["env_steps"])
        writer = self.writer()
        for key, value in scalars.items():
            writer.add_scalar("eval/" + key[5:] if key.startswith("eval_") else key, value, step)
        writer.flush()
        with open(self.folder / "history.jsonl", "a") as f:
            f.write(json.dumps(scalars) + "\n")
        is_eval = (
            "eval_success_rate" in scalars
        )  # its own env_steps and wall_s must not move the run's gauges
        for sink in self.sinks:
            sink({k: v for k, v in scalars.items() if k.startswith("eval_")} if is_eval else scalars)

    def record_evals(self, robots: list[RobotStats]) -> None:
        """Each new periodic evaluation point of the robots, once: a history line, 'eval/...' in TensorBoard."""
        for robot in robots:
            self._write_frames(robot)
            for point in robot.evals:
                key = (robot.robot, int(point["env_steps"]))
                if key in self._evals_written:
                    continue
                self._evals_written.add(key)
                record = {
                    "env_steps": float(point["env_steps"]),
                    "wall_s": time.monotonic() - self.start,
                    "robot_time_s": point["env_steps"] / max(1, self.cfg.env.fps),
                    **{k: v for k, v in point.items() if k.startswith("eval_")},
                }
                self._write(record)
                self.last_eval = record
                self.summary.setdefault("evals", []).append(
                    {"env_steps": key[1], "success_rate": record["eval_success_rate"]}
                )

    def record(
        self, robots: list[RobotStats], learner: LearnerStats, reward: RewardStats | None = None
    ) -> dict[str, float]:
        scalars = self.scalars(robots, learner, reward)
        self._write(scalars)
        self.record_evals(robots)
        step = int(scalars["env_steps"])
        summary = self.summary
        summary.update(
            env_steps=step,
            updates=int(scalars["learner_updates"]),
            success_rate=scalars["success_rate"],
            intervention_rate=scalars["intervention_rate"],
            last_checkpoint=_latest_checkpoint(self.folder),
            wall_s=round(scalars["wall_s"], 1),
            transitions_sha256=[r.transitions_sha256 for r in robots],
        )
        _write_json(self.folder / "run.json", summary)
        if self.cfg.runtime.progress:
            self.progress_line(scalars)
        return scalars

    def progress_line(self, s: dict[str, float]) -> None:
        budget = self.cfg.runtime.total_env_steps
        line = (
            f"\rsteps {int(s['env_steps'])}{'/' + str(budget) if budget else ''}  "
            f"{s['env_steps_per_s']:.1f} steps/s  updates {int(s['learner_updates'])}  "
            f"success {s['success_rate']:.0%}"
            + (f" (simulator {s['true_success_rate']:.0%})" if "true_success_rate" in s else "")
            + f"  intervention {s['intervention_rate']:.0%}  "
            f"return {s['episode_return']:.2f}  replay {int(s['replay_online'])}+{int(s['replay_demo'])}  "
            f"lag {int(s['policy_version_lag'])}"
            + (
                f"  eval {self.last_eval['eval_success_rate']:.0%} @{int(self.last_eval['env_steps'])}"
                if self.last_eval
                else ""
            )
            + "   "
        )
        if sys.stderr.isatty():
            sys.stderr.write(line)
        elif time.monotonic() - self._last_line >= 15.0:  # a log file gets a line every 15 s, not a flood
            self._last_line = time.monotonic()
            sys.stderr.write(line.strip("\r").rstrip() + "\n")
        sys.stderr.flush()

    def close(self) -> None:
        if self.cfg.runtime.progress and sys.stderr.isatty():
            sys.stderr.write("\n")
        if self._writer is not None:
            self._writer.close()


def _latest_checkpoint(folder: Path) -> str | None:
    latest = folder / "checkpoints" / "latest"
    return str(latest.parent / latest.read_text().strip()) if latest.is_file() else None


def _read_object(path: Path) -> dict[str, Any]:
    """A run file's JSON object; ValueError (or UnicodeDecodeError) when it is damaged."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("not the JSON object a run writes")
    return data


def list_runs(root: str | Path) -> list[dict[str, Any]]:
    """Every run under ``root``: date, classifier, env steps, success and intervention rates, checkpoint."""
    rows = []
    for run in sorted(Path(root).glob("*/run.json")):
        classifier_path = run.parent / "classifier.json"
        try:
            summary = _read_object(run)
            classifiers = json.loads(classifier_path.read_text()) if classifier_path.is_file() else []
            if not isinstance(classifiers, list) or not all(isinstance(c, dict) for c in classifiers):
                raise ValueError("not the list of objects a run writes")
            last = classifiers[-1] if classifiers else {}
        except (ValueError, UnicodeDecodeError) as err:  # a damaged file: one row says so
            rows.append({"run": str(run.parent), "unreadable": f"{type(err).__name__}: {str(err)[:80]}"})
            continue
        rows.append(
            {
                "run": str(run.parent),
                "started": summary.get("started"),
                "classifier": last.get("path", last.get("source", "-")),
                "classifier_sha256": (last.get("weights_sha256") or "")[:12],
                "env_steps": summary.get("env_steps", 0),
                "success_rate": summary.get("success_rate"),
                "intervention_rate": summary.get("intervention_rate"),
                "last_checkpoint": summary.get("last_checkpoint"),
                "eval": (summary.get("evals") or [None])[-1],  # the last periodic evaluation point
            }
        )
    return rows
