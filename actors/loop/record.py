"""Record mode: drive the arm (simulated or real) with a human in the loop and write a NEW LeRobotDataset.

    hilserl record --config_path configs/sim_record.json                      # simulator + scripted human
    hilserl record --config_path configs/so101_record.json --dataset_root=data/run7
    hilserl record --config_path configs/so101_record.json --dataset_root=data/try1 --rehearse   # no arm

The dataset is written with LeRobot's own writer (``LeRobotDataset.create`` / ``add_frame`` /
``save_episode``), so LeRobot and every tool in this project load it. Rules:

- The root must not exist: recording never writes into or over an existing dataset.
  Nothing is pushed to the hub unless ``push_to_hub`` is true.
- A frame is (observation o_t, executed action a_t, ``next.reward`` r_t+1, ``next.done``), LeRobot's
  dataset convention. The executed action is the human's while intervening, otherwise the policy's
  (the neutral action [0, 0, 0, stay] in record mode, as in LeRobot: the arm holds still).
- ``complementary_info.is_intervention`` flags each frame a human drove.
- Success (the human's success key, or the simulator's ground truth) labels that frame
  ``next.reward = 1``; with ``terminate_on_success`` the episode then goes on for
  ``number_of_steps_after_success`` more frames, all labeled 1, and the last one is ``next.done``
  (the positives a reward classifier needs). Failure key or time limit: ``next.done``
  (``complementary_info.truncated`` is set on a time-limit end),
  reward 0.
- Images are stored as uint8 video (LeRobot's writer rejects float images in [0, 255]).
- Reset frames are excluded: frames are added only between the end of ``env.reset()`` and the end
  of the episode, so the reset motion never enters the dataset and need not be cut out when labeling.
- Re-record (``r``, gamepad X) discards the current episode and records it again; terminate (esc,
  gamepad B) discards the unfinished episode and ends the session with what was saved.

The episode rules are those of ``actors.loop.episode`` (the loop the RL robot runs too). The loop holds ``fps`` with a deadline (``actors/loop/rate.py``) and the summary reports the step
period p50/p99 and overruns. With the simulator and the scripted human it runs free (no wall-clock
pacing, ``realtime`` to override) and needs no one at the keyboard.
"""

from __future__ import annotations

import json
import logging
import shutil
import signal
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from actors.intervention.base import InterventionSource
from actors.intervention.factory import make_intervention_source
from actors.loop.episode import EpisodeLoop, EpisodeResult, EpisodeStep
from actors.loop.rate import RateKeeper, RateStats
from actors.robots.contract import ACTION_DIM, ACTION_NAMES
from configs.env import EnvConfig, rehearse_argv
from configs.errors import UserError

logger = logging.getLogger(__name__)

REWARD = "next.reward"
DONE = "next.done"
INTERVENTION = "complementary_info.is_intervention"
PENALTY = "complementary_info.discrete_penalty"
TRUNCATED = "complementary_info.truncated"
IMAGE_WRITER_THREADS = 2
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)
"""Ctrl-C, ``kill`` and a closed terminal all stop a recording the same way: the episode being
saved is finished, the unfinished one dropped, the dataset finalized."""
ACTION = "action"

Policy = Callable[[dict[str, Any]], np.ndarray]


@dataclass
class RecordSummary:
    """What a recording session produced."""

    root: str
    repo_id: str
    episodes: int = 0
    frames: int = 0
    successes: int = 0
    intervention_frames: int = 0
    success_frames: int = 0
    rerecorded: int = 0
    terminated_early: bool = False
    episode_lengths: list[int] = field(default_factory=list)
    rate: RateStats | None = None

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    @property
    def intervention_rate(self) -> float:
        return self.intervention_frames / self.frames if self.frames else 0.0

    def as_dict(self) -> dict:
        out = asdict(self)
        out["success_rate"] = self.success_rate
        out["intervention_rate"] = self.intervention_rate
        return out

    def text(self) -> str:
        if not self.root:
            return "stopped before any episode was saved: nothing written"
        lines = [
            f"recorded {self.episodes} episodes, {self.frames} frames -> {self.root} (repo_id {self.repo_id})",
            f"success rate {self.success_rate:.0%} ({self.successes}/{self.episodes}), "
            f"success-labeled frames {self.success_frames}, intervention rate {self.intervention_rate:.0%}, "
            f"re-recorded {self.rerecorded}",
        ]
        if self.rate is not None:
            lines.append(self.rate.summary())
        if self.terminated_early:
            lines.append("stopped early by the terminate key")
        return "\n".join(lines)


def dataset_root(cfg: EnvConfig) -> Path:
    """Where the dataset goes: always an explicit ``dataset_root`` (an implicit root under the
    Hugging Face cache can let a hub copy replace local data)."""
    if not cfg.dataset_root:
        raise UserError(
            "dataset_root is not set: pass --dataset_root=data/NAME (recordings never go into the Hugging Face cache)"
        )
    return Path(cfg.dataset_root)


def check_config(cfg: EnvConfig) -> Path:
    """Validate the record-mode fields; return the (new) root. Raises UserError before anything is written."""
    if cfg.mode not in (None, "record"):
        raise UserError(f"mode is '{cfg.mode}' but `hilserl record` records: set mode to 'record' (or null)")
    if not cfg.repo_id:
        raise UserError(
            "repo_id is not set: pass --repo_id=<user>/<name> (a label; nothing is pushed by default)"
        )
    if cfg.num_episodes < 1:
        raise UserError(f"num_episodes must be at least 1, got {cfg.num_episodes}")
    if cfg.fps <= 0:
        raise UserError(f"fps must be positive, got {cfg.fps}")
    if cfg.number_of_steps_after_success < 0:
        raise UserError(
            f"number_of_steps_after_success must be >= 0, got {cfg.number_of_steps_after_success}"
        )
    root = dataset_root(cfg)
    if root.exists():
        raise UserError(
            f"dataset root '{root}' already exists: record into a new --dataset_root (nothing was written)"
        )
    return root


def to_uint8_image(image: Any) -> np.ndarray:
    """HxWx3 uint8. Float images are clamped: [0, 1] scaled by 255, [0, 255] kept (LeRobot's writer
    rejects float images in [0, 255])."""
    if hasattr(image, "detach"):
        image = image.detach().cpu().numpy()
    image = np.asarray(image)
    if image.dtype == np.uint8:
        return image
    image = image.astype(np.float32)
    if image.size and float(image.max()) <= 1.0:
        image = image * 255.0
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def dataset_features(
    observation: dict[str, Any], use_gripper: bool = True, video: bool = True
) -> dict[str, dict]:
    """LeRobot features for the env's observation plus action, reward, done, the truncation and
    intervention flags and (with the gripper) the grasp penalty, as LeRobot's gym_manipulator records
    it. ``next.done`` marks both episode ends; ``complementary_info.truncated`` tells a time-limit
    end (bootstrap) from a terminal one."""
    features: dict[str, dict] = {}
    for key, value in observation.items():
        value = np.asarray(value)
        if value.ndim == 3:
            features[key] = {
                "dtype": "video" if video else "image",
                "shape": tuple(value.shape),
                "names": ["height", "width", "channels"],
            }
        else:
            features[key] = {"dtype": "float32", "shape": tuple(value.reshape(-1).shape), "names": None}
    features[ACTION] = {"dtype": "float32", "shape": (ACTION_DIM,), "names": ACTION_NAMES}
    features[REWARD] = {"dtype": "float32", "shape": (1,), "names": None}
    features[DONE] = {"dtype": "bool", "shape": (1,), "names": None}
    features[TRUNCATED] = {"dtype": "bool", "shape": (1,), "names": None}
    features[INTERVENTION] = {"dtype": "bool", "shape": (1,), "names": None}
    if use_gripper:
        features[PENALTY] = {"dtype": "float32", "shape": (1,), "names": None}
    return features


def observation_frame(observation: dict[str, Any], features: dict[str, dict]) -> dict[str, np.ndarray]:
    frame = {}
    for key, value in observation.items():
        if features[key]["dtype"] in ("video", "image"):
            frame[key] = to_uint8_image(value)
        else:
            frame[key] = np.asarray(value, dtype=np.float32).reshape(-1)
    return frame


def is_realtime(cfg: EnvConfig) -> bool:
    if cfg.realtime is not None:
        return cfg.realtime
    from actors.robots.factory import backend

    return not (backend(cfg) == "sim" and cfg.teleop.type in ("scripted", "none"))


class DatasetSink:
    """Episode sink that writes LeRobot frames: (o_t, a_t, next.reward, next.done, flags) per step."""

    def __init__(self, cfg: EnvConfig, root: Path, summary: RecordSummary, durable: bool = True):
        """``durable``: close the dataset's files after every episode (see ``_close_files``); off
        only for data that can be regenerated, such as evaluation episodes."""
        self.cfg = cfg
        self.root = root
        self.summary = summary
        self.durable = durable
        self.dataset: Any = None
        self.features: dict[str, dict] = {}
        self.on_saved: Callable[[], None] | None = None  # called per saved episode instead of the log line

    def create(self, observation: dict[str, Any]) -> None:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        from reward.dataset_write import quiet_third_party_output

        quiet_third_party_output()
        gripper = self.cfg.processor.gripper
        self.features = dataset_features(
            observation, use_gripper=gripper.use_gripper if gripper else True, video=self.cfg.video
        )
        self.dataset = LeRobotDataset.create(
            repo_id=self.cfg.repo_id,
            fps=self.cfg.fps,
            features=self.features,
            root=self.root,
            robot_type="so101",
            use_videos=self.cfg.video,
            video_backend="pyav",
            image_writer_threads=IMAGE_WRITER_THREADS,  # PNG writes off the control thread
        )

    def add(self, step: EpisodeStep) -> None:
        frame = observation_frame(step.observation, self.features)
        frame[ACTION] = step.action
        frame[REWARD] = np.array([step.reward], dtype=np.float32)
        frame[DONE] = np.array([step.done], dtype=bool)
        frame[TRUNCATED] = np.array([step.truncated], dtype=bool)
        frame[INTERVENTION] = np.array([step.is_intervention], dtype=bool)
        if PENALTY in self.features:
            frame[PENALTY] = np.array([step.penalty], dtype=np.float32)
        frame["task"] = self.cfg.task_description
        self.dataset.add_frame(frame)

    def end_episode(self, result: EpisodeResult) -> None:
        # A save interrupted halfway would leave a dataset doctor cannot repair: Ctrl-C waits until the
        # episode is saved and counted, then stops the session.
        with deferred_interrupt():
            self.dataset.save_episode()
            if self.durable:
                self._close_files()
            summary = self.summary
            summary.episodes += 1
            summary.frames += result.steps
            summary.episode_lengths.append(result.steps)
            summary.intervention_frames += result.intervention_steps
            summary.success_frames += result.success_steps
            summary.successes += int(result.success)
            if self.on_saved is not None:
                self.on_saved()
                return
            logger.info(
                "episode %d saved: %d frames, %s",
                summary.episodes - 1,
                result.steps,
                "success" if result.success else "no success",
            )

    def _close_files(self) -> None:
        """Make the saved episodes durable before the next one starts.

        LeRobot keeps its data and episode-meta parquet writers open until ``finalize()``, so a
        session killed outright (SIGKILL, power loss, out of memory) would leave every episode in files
        without a footer: all of it lost. Finalize after each episode and reopen the dataset with
        ``LeRobotDataset.resume``, LeRobot's own append path, which starts new data, video and meta
        files: a kill then costs at most the episode being saved, and ``hilserl doctor --fix
        --drop-lost`` leaves that one out."""
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        from reward.dataset_write import quiet_third_party_output

        self.dataset.finalize()  # also stops the image writer
        self.dataset = LeRobotDataset.resume(
            self.cfg.repo_id, root=self.root, video_backend="pyav", image_writer_threads=IMAGE_WRITER_THREADS
        )
        quiet_third_party_output()  # LeRobot's loader turns the `datasets` progress bars back on

    def discard_episode(self) -> None:
        if self.dataset is not None and self.dataset.has_pending_frames():
            self.dataset.clear_episode_buffer()


class deferred_interrupt:
    """Hold the stop signals until the block is done, then raise KeyboardInterrupt (main thread only)."""

    def __enter__(self):
        self.interrupted = False
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.signal(sig, self._handler) for sig in STOP_SIGNALS}
        return self

    def _handler(self, signum, frame) -> None:
        self.interrupted = True
        logger.warning("%s: finishing the episode being saved, then stopping", signal.Signals(signum).name)

    def __exit__(self, *exc) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)
        if self.interrupted and exc[0] is None:
            raise KeyboardInterrupt


class stop_signals_interrupt:
    """While recording, SIGTERM and SIGHUP raise KeyboardInterrupt as Ctrl-C does (main thread only):
    their default action would kill the process with the dataset's files still open."""

    def __enter__(self):
        self.previous: dict[int, Any] = {}
        if threading.current_thread() is threading.main_thread():
            for sig in STOP_SIGNALS:
                if sig != signal.SIGINT:
                    self.previous[sig] = signal.signal(sig, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        raise KeyboardInterrupt(f"stopped by {signal.Signals(signum).name}")

    def __exit__(self, *exc) -> None:
        for sig, previous in self.previous.items():
            signal.signal(sig, previous)


class Recorder:
    """One recording session: the episode loop with a LeRobot-dataset sink."""

    def __init__(
        self,
        cfg: EnvConfig,
        env: Any,
        source: InterventionSource,
        root: Path,
        policy: Policy | None = None,
    ) -> None:
        self.cfg = cfg
        self.root = root
        self.rate = RateKeeper(cfg.fps if is_realtime(cfg) else None)
        self.loop = EpisodeLoop(cfg, env, source, policy=policy, rate=self.rate)
        self.summary = RecordSummary(root=str(root), repo_id=cfg.repo_id)
        self.sink = DatasetSink(cfg, root, self.summary)

    @property
    def dataset(self) -> Any:
        return self.sink.dataset

    def run(self) -> RecordSummary:
        with stop_signals_interrupt():
            return self._run()

    def _run(self) -> RecordSummary:
        obs, info = self.loop.reset()
        self.sink.create(obs)
        self.rate.restart()  # creating the writer (imports, folders) is not a control step either
        try:
            while self.summary.episodes < self.cfg.num_episodes:
                try:
                    result, obs, info = self.loop.run_episode(obs, info, self.sink)
                except KeyboardInterrupt:
                    # Ctrl-C is the terminate key: keep what was saved, drop the unfinished episode.
                    self.sink.discard_episode()
                    result = EpisodeResult(outcome="terminate")
                self.summary.rerecorded += result.rerecorded
                if result.outcome == "terminate":
                    self.summary.terminated_early = True
                    break
                if self.summary.episodes < self.cfg.num_episodes:
                    obs, info = self.loop.reset()
        except BaseException:
            self.sink.discard_episode()
            self.dataset.finalize()
            if self.summary.episodes == 0:
                # Nothing was saved: remove the folder this session created, so the same
                # --dataset_root can be used again once the problem is fixed.
                shutil.rmtree(self.root, ignore_errors=True)
            raise
        self.dataset.finalize()
        self.summary.rate = self.rate.stats()
        if self.summary.episodes == 0:
            shutil.rmtree(self.root, ignore_errors=True)  # stopped before any episode: leave nothing
            self.summary.root = ""
            return self.summary
        if self.cfg.push_to_hub:
            logger.info("pushing %s to the hub as %s", self.root, self.cfg.repo_id)
            self.dataset.push_to_hub()
        return self.summary


def run(
    cfg: EnvConfig,
    env: Any = None,
    source: InterventionSource | None = None,
    policy: Policy | None = None,
    progress: bool = False,
) -> RecordSummary:
    """Record ``cfg.num_episodes`` episodes into a new dataset. ``env``/``source`` default from ``cfg``.
    ``progress``: one progress bar over the episodes instead of a log line per saved episode."""
    root = check_config(cfg)
    owns_env = env is None
    if env is None:
        from actors.robots.factory import make_env

        env = make_env(cfg)
    try:
        if source is None:
            source = make_intervention_source(cfg, env)
        recorder = Recorder(cfg, env, source, root, policy)
        try:
            if not progress:
                return recorder.run()
            from tqdm import tqdm

            with tqdm(total=cfg.num_episodes, desc="recording", unit="episode", leave=False) as bar:
                recorder.sink.on_saved = lambda: bar.update(1)
                return recorder.run()
        finally:
            source.close()
    finally:
        if owns_env:
            env.close()


def main(argv: list[str]) -> int:
    """``hilserl record --config_path cfg.json [--dataset_root=...] [--json]``."""
    from configs.parsing import parse_config

    as_json = "--json" in argv
    argv = rehearse_argv([a for a in argv if a != "--json"])
    cfg = parse_config(EnvConfig, argv, prog="hilserl record")
    summary = run(cfg)  # a UserError reaches the dispatcher, which prints it as one line
    print(json.dumps(summary.as_dict(), indent=2) if as_json else summary.text())
    return 0
