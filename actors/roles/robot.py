"""The robot role: the acting loop, the transition writer and the weight client, on one arm.

    robot = RobotRole(cfg, index=0, reward=reward_peer, replay=replay_peer, learner=learner_peer)
    robot.run(stop)            # episodes until stop is set or the run's env-step budget is spent

Three parts, each its own object:

    acting    ``actors.loop.episode.EpisodeLoop`` (the same loop evaluation runs): the local policy
              copy acts (or the human), the env steps, the reward role scores the new frame (the
              classifier's success ends the episode; the human's keys override)
    writer    ``actors.roles.writer.TransitionWriter``: each step becomes a ``Transition`` carrying
              the policy version that proposed its action, sent in acknowledged chunks of
              ``runtime.chunk_size`` (interventions reach both buffers: ``MixedReplay`` routes them)
    weights   ``actors.roles.weights.WeightClient``: polled without blocking, swapped between steps

This class joins them: the budget, the holds, the lockstep turn, the periodic evaluation, the
classifier's agreement with the simulator's truth, and ``status``.

When a peer it needs is down (a failed or timed-out call) or the send queue is full, the robot
holds a safe stop (the env's ``hold`` when it has one; the simulator simply waits) and retries;
it goes on when the peer is back.

Lockstep (``runtime.pace=lockstep``), one fixed pattern per env step t::

    act with the weights applied at t-1, step, score ─▶ wait for the learner's catch_up of t-1
    ─▶ send transition t, wait for its ack ─▶ apply the newest published weights
    ─▶ start the learner's catch_up of t (it updates while the robot steps t+1)

so the replay holds the same transitions at every update and the same weights act at every step,
whatever the machine's speed. Exploration noise has its own seeded generator.

Periodic evaluation (``runtime.eval_every``, robot 0): at every multiple of ``eval_every`` run env
steps (and at step 0) the current weights act alone for ``eval_every_episodes`` episodes on a
second simulated env (``eval_env='separate'``, at once) or, on a real arm, on the training env
after the current episode (``'shared'``); nothing of it reaches the replay or the training counts.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from actors.intervention.factory import make_intervention_source
from actors.loop.episode import EpisodeLoop, EpisodeResult, EpisodeStep, ground_truth_success, true_success
from actors.loop.rate import RateKeeper
from actors.loop.record import is_realtime
from actors.robots.factory import make_env
from actors.roles.clients import LearnerClient, ReplayClient, RewardClient
from actors.roles.evaluate import PeriodicEvaluator, mean_action, to_chw
from actors.roles.peers import Call, Peer, PeerUnavailable
from actors.roles.relabel import DisagreementLog
from actors.roles.rundir import episodes_so_far
from actors.roles.stats import RobotStats, empty_agreement
from actors.roles.weights import WeightClient
from actors.roles.writer import TransitionWriter
from configs.errors import UserError
from configs.rl import TrainRLConfig
from learner.networks import Policy
from vision.backbone import FrozenBackbone, weights_sha256

logger = logging.getLogger(__name__)


class StopRun(Exception):
    """Raised inside the loop when the run is asked to stop."""


class _VersionedPolicy:
    """The loop's policy: acts with the robot's local copy and names the weights' version."""

    def __init__(self, robot: RobotRole):
        self.robot = robot

    def __call__(self, obs: dict[str, Any]) -> np.ndarray:
        return self.robot._act(obs)

    @property
    def version(self) -> int:
        return self.robot.version


class RobotRole:
    """One arm (simulated or real), its human, its local policy and its link to the other roles."""

    def __init__(
        self,
        cfg: TrainRLConfig,
        index: int,
        reward: Peer | None,
        replay: Peer,
        learner: Peer,
        env: Any = None,
        source: Any = None,
        folder: str | Path | None = None,
    ):
        self.cfg = cfg
        self.index = index
        self.name = f"robot-{index}"
        self.reward = RewardClient(reward) if reward is not None else None
        self.replay, self.learner = ReplayClient(replay), LearnerClient(learner)
        env_cfg = cfg.env
        env_cfg.seed = cfg.seed + 1000 * index  # each robot its own cube placements and human
        self.env = env if env is not None else make_env(env_cfg)
        self.source = source if source is not None else make_intervention_source(env_cfg, self.env)
        torch.manual_seed(cfg.seed + index)
        lcfg = cfg.learner
        backbone = FrozenBackbone.from_config(lcfg) if lcfg.image_keys else None
        self.policy = Policy(lcfg, backbone).to(cfg.runtime.policy_device).eval()
        self.noise = torch.Generator(device=cfg.runtime.policy_device).manual_seed(cfg.seed + index)
        self.weights = WeightClient(self.learner, self.policy)
        # The one digest of the frozen backbone: the replay's and the classifier's are compared with it.
        self.backbone_sha256 = weights_sha256(backbone) if backbone is not None else None
        # A feature replay with the policy's frozen backbone stores the maps the robot computes to act.
        shares_maps = (
            cfg.runtime.encode_once
            and backbone is not None
            and lcfg.uses_feature_replay
            and lcfg.feature_augment != "pixel_shifts"
        )
        self.writer = TransitionWriter(
            self.replay,
            self.name,
            cfg.runtime,
            lcfg,
            hold=self._hold,
            encode=self._encode if shares_maps else None,
            features_sha256=self.backbone_sha256 if shares_maps else None,
        )
        self.writer.on_ack = self._replay_back
        self.scores_maps = False  # the reward's classifier has this backbone: it is sent maps (see run)
        self.lockstep = cfg.runtime.pace == "lockstep"
        realtime = is_realtime(env_cfg) and not self.lockstep  # lockstep never sleeps to a clock
        self.rate = RateKeeper(env_cfg.fps if realtime else None)
        self.loop = EpisodeLoop(
            env_cfg,
            self.env,
            self.source,
            policy=_VersionedPolicy(self),
            success=self._success,
            rate=self.rate,
            success_reward=self._success_reward(),
        )
        self.folder = Path(folder) if folder is not None else None
        self.stop_event = threading.Event()
        self.finished = False  # its share of the budget is done: nothing to restart
        self.fault: str | None = None  # the one-line hardware fault that stopped its arm
        self.on_step: list = []  # callbacks after each step (the in-process runner's learner)
        budget = cfg.runtime.total_env_steps
        # This robot's share of the env-step budget (the driver also stops the run at the total).
        self.max_steps: int | None = -(-budget // cfg.runtime.num_robots) if budget else None
        self._learner_turn: Call | None = None  # lockstep: the learner's catch_up in flight
        self._held = False
        # Counters the driver reads through status().
        self.steps = self.episodes = self.holds = 0
        if folder is not None:
            # Resumed, or this robot restarted mid-run: go on from the run's own episode count, so the
            # scripted human's help keeps tapering from where it was instead of starting over.
            self.episodes = episodes_so_far(folder) // cfg.runtime.num_robots
            continue_from = getattr(self.source, "continue_from", None)
            if continue_from is not None and self.episodes:
                continue_from(self.episodes)
        self.recent: deque[dict] = deque(maxlen=20)  # last episodes
        self.evaluator: PeriodicEvaluator | None = None
        self._frames_sent = -1  # env step of the evaluation frames last sent in a status
        self._eval_due = False  # a 'shared' evaluation waits for the training episode's end
        if cfg.runtime.eval_every and index == 0:
            shared = cfg.runtime.eval_env == "shared"
            self.evaluator = PeriodicEvaluator(
                cfg,
                mean_action(self.policy, lcfg),
                cfg.runtime.eval_every_episodes,
                env=self.env if shared else None,
                success=self._eval_success if shared else None,
            )
        # Classifier vs the simulator's truth on the frames the policy drove to (not the human's).
        # first_tp / first_fn: its verdict on each episode's first true success, the grasp frame.
        self.agreement = empty_agreement()
        self._episode_truth: bool | None = None  # the simulator's success in this episode (None: no truth)
        self.disagreements = None  # frames the classifier got wrong, for the next classifier
        if folder is not None and self.cfg.reward.source == "classifier" and reward is not None:
            self.disagreements = DisagreementLog(
                Path(folder) / "next_classifier" / self.name, env_cfg.fps, lcfg.image_keys, lcfg.state_key
            )

    def _success_reward(self) -> float:
        block = self.cfg.classifier()
        return block.success_reward if block is not None else 1.0

    @property
    def version(self) -> int:
        """The policy version acting now (-1 before the learner's first weights)."""
        return self.weights.version

    # ----------------------------------------------------------------- acting
    def _act(self, obs: dict[str, Any]) -> np.ndarray:
        frame = self.writer.converted(obs)  # the layout conversion (and backbone maps) the transition reuses
        batch = {k: torch.from_numpy(v)[None] for k, v in frame.items()}
        action = self.policy.act(
            batch,
            deterministic=self.cfg.runtime.deterministic_policy,
            generator=self.noise,
            features=self.writer.maps(obs),
        )
        return action[0].cpu().numpy().astype(np.float32)

    @torch.no_grad()
    def _encode(self, frame: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        """One frame's backbone maps, {camera: (1, C, h, w)}: the one backbone pass of this frame."""
        device = next(self.policy.encoder.parameters()).device
        return self.policy.features(
            {k: torch.from_numpy(frame[k])[None].to(device) for k in self.cfg.learner.image_keys}
        )

    def _eval_success(self, next_obs: dict[str, Any], next_info: dict[str, Any]) -> bool:
        """A shared-env evaluation's success: the world's truth where there is one (a rehearsal's
        scene), else the reward's judgement, logged nowhere (the real arm has no truth)."""
        truth = true_success(next_info)
        if truth is not None or self.cfg.reward.source == "sparse" or self.reward is None:
            return bool(truth)
        frames = {k: to_chw(next_obs[k]) for k in self.cfg.learner.image_keys}  # an evaluation's frame
        return bool(self.reward.score(frames).result(timeout=30)["success"])

    def _success(self, next_obs: dict[str, Any], next_info: dict[str, Any]) -> bool:
        truth = true_success(next_info)
        first_success = bool(truth) and not self._episode_truth  # the episode's first true success
        if truth is not None:
            self._episode_truth = bool(self._episode_truth) or truth
        if self.cfg.reward.source == "sparse" or self.reward is None:
            return ground_truth_success(next_obs, next_info)
        frame = self.writer.converted(next_obs)  # converted (and encoded) once: scored, stored, acted on
        if self.scores_maps:
            maps = self.writer.maps(next_obs)
            frames = {k: maps[k][0].cpu().numpy() for k in self.cfg.learner.image_keys}
        else:
            frames = {k: frame[k] for k in self.cfg.learner.image_keys}
        while True:
            try:
                scored = self.reward.score(frames).result(timeout=10)
                break
            except PeerUnavailable:
                self._hold("reward")
        if truth is not None and not self.source.intervening:  # the policy's frames: what it is rewarded for
            key = ("t" if scored["success"] == truth else "f") + ("p" if scored["success"] else "n")
            self.agreement[key] += 1
            if first_success:  # the frame a run ends on when the classifier agrees
                self.agreement["first_" + key] += 1
            if key in ("fp", "fn", "tp") and self.disagreements is not None:
                progress = self.steps / self.max_steps if self.max_steps else None
                self.disagreements.add(
                    next_obs, truth, scored["probability"], agreed=key == "tp", progress=progress
                )
        return bool(scored["success"])

    def _reward_takes_maps(self) -> bool:
        """Whether the reward's classifier runs this policy's frozen ResNet-10 at this image size, so
        that the maps computed to act can be scored instead of the pixels (one backbone pass a frame)."""
        if self.reward is None or self.writer.encode is None or self.cfg.reward.source != "classifier":
            return False
        while True:
            try:
                theirs = self.reward.backbone().result(timeout=30)
                break
            except PeerUnavailable:
                self._hold("reward")
        ours = (self.backbone_sha256, int(self.cfg.env.image_size))
        return theirs is not None and tuple(theirs) == ours

    # ----------------------------------------------------------------- peers
    def _hold(self, peer: str) -> None:
        """Safe stop while a peer is unreachable: the arm holds, nothing stale drives it."""
        if not self._held:
            logger.warning("%s: %s unreachable, holding a safe stop until it is back", self.name, peer)
        self._held = True
        self.holds += 1
        hold = getattr(self.env, "hold", None)
        if hold is not None:
            hold()
        if self.stop_event.wait(0.2):
            raise StopRun

    def _replay_back(self) -> None:
        if self._held:
            logger.info("%s: replay is back", self.name)
            self._held = False

    # ----------------------------------------------------------------- sink
    def add(self, step: EpisodeStep) -> None:
        self.writer.write(step)
        self.steps += 1
        if self.lockstep:
            self._take_turn()
        else:
            self.writer.send(step.done)
            self.weights.poll()
        self._maybe_evaluate(episode_ended=False)
        for callback in self.on_step:
            callback()
        if self.max_steps is not None and self.steps >= self.max_steps:
            self.finished = True
            raise StopRun
        if self.stop_event.is_set():
            raise StopRun

    # ----------------------------------------------------------------- lockstep
    def _take_turn(self) -> None:
        """Lockstep's fixed pattern after an env step (see the module docstring)."""
        self._await_learner()
        self.writer.send_and_wait()
        while True:
            try:
                self.weights.poll(block=True)
                break
            except PeerUnavailable:
                self._hold("learner")
        self._learner_turn = self.learner.catch_up()

    def _await_learner(self) -> None:
        """Wait for the learner's catch_up in flight; submitted again while the learner restarts."""
        while self._learner_turn is not None:
            try:
                self._learner_turn.result(timeout=None)
                self._learner_turn = None
            except PeerUnavailable:
                self._hold("learner")
                self._learner_turn = self.learner.catch_up()

    # ----------------------------------------------------------------- evaluation
    def run_env_steps(self) -> int:
        """The run's env steps as this robot counts them (its own times the robots: exact with one)."""
        return self.steps * self.cfg.runtime.num_robots

    def _maybe_evaluate(self, episode_ended: bool) -> None:
        """Evaluate when a multiple of eval_every is crossed: at once on a separate env, after the
        episode on a shared one."""
        if self.evaluator is None:
            return
        every, steps = self.cfg.runtime.eval_every, self.run_env_steps()
        if not episode_ended and steps // every > (steps - self.cfg.runtime.num_robots) // every:
            self._eval_due = True
        if self._eval_due and (episode_ended or self.cfg.runtime.eval_env == "separate"):
            self._evaluate(steps)

    def _evaluate(self, env_steps: int) -> None:
        self._eval_due = False
        point = self.evaluator(env_steps, self.version)
        logger.info(
            "%s: evaluation at %d env steps (policy version %d): success %d/%d",
            self.name,
            env_steps,
            self.version,
            point["eval_successes"],
            point["eval_episodes"],
        )
        self.rate.restart()  # the evaluation was not a control step

    def end_episode(self, result: EpisodeResult) -> None:
        self.episodes += 1
        if self.disagreements is not None:
            self.disagreements.end_episode()
        truth, self._episode_truth = self._episode_truth, None
        self.recent.append(
            {
                "success": bool(result.success),
                "true_success": truth,  # the simulator's; the success above is what the robot was rewarded for
                "return": result.episode_return,
                "steps": result.steps,
                "intervention_rate": result.intervention_steps / max(1, result.steps),
            }
        )

    def discard_episode(self) -> None:
        """RL keeps what was streamed: a re-recorded or cut episode simply ends (a truncation)."""
        self._episode_truth = None

    # ----------------------------------------------------------------- run
    def run(self, stop: threading.Event | None = None) -> RobotStats:
        """Episodes until stopped; returns the final status. Always leaves the arm safe."""
        if stop is not None:
            self.stop_event = stop
        try:
            self.writer.resume()
            self.scores_maps = self._reward_takes_maps()
            while self.version < 0:  # act only with the learner's weights (version 0 at least)
                try:
                    self.weights.poll(block=True)
                except PeerUnavailable:
                    self._hold("learner")
            if self.evaluator is not None and not self.evaluator.points:
                self._evaluate(self.run_env_steps())  # the curve starts with the policy it starts with
            obs, info = self.loop.reset()
            while True:
                result, obs, info = self.loop.run_episode(obs, info, self)
                if result.outcome == "terminate":
                    break
                self._maybe_evaluate(episode_ended=True)
                obs, info = self.loop.reset()
        except StopRun:
            pass
        except UserError as err:
            # The arm stopped itself safely (torque off: a servo fault, the bus or the leader gone, a
            # camera without frames). Nothing here can restart it, so its share of the run ends: what
            # it streamed is flushed below and the driver ends the run with its final checkpoint.
            logger.error("%s stopped: %s", self.name, err)
            self.fault = str(err)
            self.finished = True
        finally:
            self.flush()
            self._await_learner_quietly()
        return self.status(frames=False)  # the frames are for the monitor's next poll

    def _await_learner_quietly(self) -> None:
        """At the end: the last catch_up finishes (its updates belong to the run), never blocking a stop for long."""
        call, self._learner_turn = self._learner_turn, None
        if call is not None:
            try:
                call.result(timeout=300)
            except Exception:  # noqa: BLE001  (the run is ending; the learner's own checkpoint follows)
                logger.warning("%s: the learner's last lockstep updates did not finish", self.name)

    def flush(self, timeout_s: float = 30.0) -> None:
        """Send what is left (the partial chunk included), waiting at most ``timeout_s``."""
        self.writer.flush(timeout_s)

    def close(self) -> None:
        try:
            self.source.close()
        finally:
            self.env.close()  # the real arm switches torque off here
            if self.disagreements is not None:
                self.disagreements.close()
            if self.evaluator is not None:
                self.evaluator.close()
            self._write_rehearsal_report()

    def _write_rehearsal_report(self) -> None:
        """A rehearsal (``actors.robots.rehearsal``) leaves what its person did and each simulated
        bus's torque at exit in ``rehearsal-<robot>.json`` of the run folder."""
        rig = getattr(getattr(self.env, "unwrapped", self.env), "rehearsal", None)
        if rig is None or self.folder is None:
            return
        report = {
            "person": self.source.report() if hasattr(self.source, "report") else {},
            "exit_torques": rig.exit_torques,
        }
        (self.folder / f"rehearsal-{self.name}.json").write_text(json.dumps(report, indent=2) + "\n")

    def _new_eval_frames(self) -> list[dict[str, Any]]:
        """The evaluations' camera frames not sent yet, each in one status only: they are a few hundred
        KB, and status is polled every second (a lost reply loses those images)."""
        if self.evaluator is None:
            return []
        frames = [f for f in self.evaluator.frames if f["env_steps"] > self._frames_sent]
        if frames:
            self._frames_sent = frames[-1]["env_steps"]
        return frames

    def status(self, frames: bool = True) -> RobotStats:
        recent = list(self.recent)
        rate = self.rate.stats()
        lags = self.weights.lag_s
        return RobotStats(
            robot=self.name,
            finished=self.finished,
            fault=self.fault,
            env_steps=self.steps,
            episodes=self.episodes,
            acked=self.writer.acked,
            queued_chunks=self.writer.queued_chunks,
            holds=self.holds,
            policy_version=self.version,
            success_rate=float(np.mean([e["success"] for e in recent])) if recent else 0.0,
            true_success_rate=_mean_known([e.get("true_success") for e in recent]),
            intervention_rate=float(np.mean([e["intervention_rate"] for e in recent])) if recent else 0.0,
            episode_return=float(np.mean([e["return"] for e in recent])) if recent else 0.0,
            period_p50_ms=rate.period_p50_s * 1e3,
            period_p99_ms=rate.period_p99_s * 1e3,
            overruns=rate.overruns,
            period_counts=self.rate.period_counts(),
            agreement=dict(self.agreement),
            sent_bytes=self.writer.sent_bytes,
            weight_bytes=self.weights.weight_bytes,
            version_lag_s_p50=float(np.median(lags)) if lags else 0.0,
            version_lag_s_max=float(max(lags)) if lags else 0.0,
            recent=recent[-5:],
            evals=list(self.evaluator.points) if self.evaluator is not None else [],
            eval_frames=self._new_eval_frames() if frames else [],
            transitions_sha256=self.writer.digest.hexdigest(),
            backbone_frames=self.writer.frames_encoded,
            rehearsal=self.source.report() if hasattr(self.source, "report") else None,
        )


def _mean_known(values: list[bool | None]) -> float | None:
    """The rate over the episodes that have a value (None when none has: a real arm has no truth)."""
    known = [float(v) for v in values if v is not None]
    return float(np.mean(known)) if known else None
