"""The in-process runner: the four roles wired in one process, no Ray.

    summary = LocalRunner(cfg).run()        # what the unit tests use; also a bare GPU box's runner

The same ``RobotRole``, ``RewardRole``, ``ReplayRole`` and ``LearnerRole`` objects as the Ray run,
called through ``LocalPeer``. With one robot the learner steps between env steps (with
``runtime.pace=lockstep`` the robot calls its ``catch_up`` itself, in the pattern the Ray run
follows, and both give the same run for a seed); with several, each robot and the learner run in
threads (torch releases the GIL in its kernels).

    robot ──step──▶ reward.score ──▶ transition ──▶ replay.add (chunks) ──▶ learner.step ──▶ weights
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from actors.roles.learner import LearnerRole
from actors.roles.peers import Done, LocalPeer, PeerUnavailable
from actors.roles.replay import ReplayRole
from actors.roles.reward import RewardRole
from actors.roles.robot import RobotRole
from actors.roles.rundir import RunMonitor, fill_state_statistics, prepare_run_dir, record_classifier
from configs.rl import TrainRLConfig

logger = logging.getLogger(__name__)


class LocalRewardPeer(LocalPeer):
    """``score`` of one frame through the batch API (in-process there is nothing to batch across)."""

    def call(self, method: str, *args: Any) -> Done:
        if method == "score" and not self.down:
            return Done(self.target.score_batch([args[0]])[0])
        return super().call(method, *args)


def build_reward(cfg: TrainRLConfig) -> RewardRole | None:
    block = cfg.classifier()
    if cfg.reward.source != "classifier":
        return None
    return RewardRole(
        block.pretrained_path,
        cfg.learner.image_keys,
        cfg.env.image_size,
        success_threshold=block.success_threshold,
        success_reward=block.success_reward,
        device=cfg.reward.device,
    )


class LocalRunner:
    """Builds the roles for ``cfg`` in a run folder and runs them to the env-step budget."""

    def __init__(self, cfg: TrainRLConfig, folder: Path | None = None, envs: list | None = None):
        self.cfg = cfg.resolve()
        fill_state_statistics(cfg)
        self.folder = folder or prepare_run_dir(cfg)
        self.reward = build_reward(cfg)
        record_classifier(
            self.folder, self.reward.identity() if self.reward else None, cfg.allow_classifier_change
        )
        self.replay = ReplayRole(cfg.learner, self.folder / "replay", cfg.runtime.replay_snapshot_every)
        if cfg.demo_dataset and not cfg.resume:
            added = self.replay.import_demos(cfg.demo_dataset)
            logger.info("demo buffer: %d transitions from %s", added, cfg.demo_dataset)
        self.replay_peer = LocalPeer(self.replay)
        self.learner = LearnerRole(cfg, self.replay_peer, self.folder / "checkpoints")
        self.learner_peer = LocalPeer(self.learner)
        self.reward_peer = LocalRewardPeer(self.reward) if self.reward else None
        envs = envs or [None] * cfg.runtime.num_robots
        self.robots = [
            RobotRole(
                cfg, i, self.reward_peer, self.replay_peer, self.learner_peer, env=envs[i], folder=self.folder
            )
            for i in range(cfg.runtime.num_robots)
        ]
        self.monitor = RunMonitor(self.folder, cfg)
        self.stop = threading.Event()
        self._last_record = 0.0

    def _record(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last_record >= 1.0:
            self._last_record = now
            self.monitor.record([r.status() for r in self.robots], self.learner.status())

    def _learn_between_steps(self) -> None:
        if not self.learner.lockstep:  # in lockstep the robot has called catch_up already
            try:
                self.learner.step()
            except PeerUnavailable:
                pass  # the replay is down: the learner waits, the robot holds on its own
        self._record()

    def run(self) -> dict[str, Any]:
        import torch

        threads = torch.get_num_threads()
        if self.cfg.runtime.torch_threads:  # as each Ray actor does: results depend on the thread count
            torch.set_num_threads(self.cfg.runtime.torch_threads)
        try:
            if len(self.robots) == 1:
                self.robots[0].on_step.append(self._learn_between_steps)
                self.robots[0].run(self.stop)
            else:
                threads = [
                    threading.Thread(target=r.run, args=(self.stop,), daemon=True) for r in self.robots
                ]
                learner = threading.Thread(target=self.learner.run, args=(self.stop,), daemon=True)
                for t in [*threads, learner]:
                    t.start()
                while any(t.is_alive() for t in threads):
                    self._record()
                    time.sleep(0.2)
                self.stop.set()
                learner.join()
        finally:
            self.stop.set()
            self.learner.checkpoint()
            self._record(force=True)
            self.monitor.close()
            for robot in self.robots:
                robot.close()
            self.replay.close()
            torch.set_num_threads(threads)
        return {
            "folder": str(self.folder),
            "robots": [r.status() for r in self.robots],
            "learner": self.learner.status(),
            "history": self.monitor.history,
        }
