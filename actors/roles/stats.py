"""What each role reports while it runs: one dataclass per role, the schema in one place.

    stats = robot.status()          # RobotStats; the driver polls it every second
    stats.env_steps, stats.agreement["fn"], stats.evals[-1]["eval_success_rate"]
    RobotStats.empty(index)         # before a robot's first answer (or while its actor restarts)

The driver (``cluster/rl_run.py``), the in-process runner and the monitor (``rundir.RunMonitor``)
read these fields by name; a renamed or removed field fails where it is read, not as a silent
``.get`` default. They cross Ray as plain pickled dataclasses.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

AGREEMENT_KEYS = ("tp", "fp", "fn", "tn", "first_tp", "first_fn")


def empty_agreement() -> dict[str, int]:
    """The classifier's verdicts against the simulator's truth on the policy's frames: tp/fp/fn/tn,
    and first_tp/first_fn on each episode's first true success (the grasp frame)."""
    return dict.fromkeys(AGREEMENT_KEYS, 0)


@dataclass
class RobotStats:
    """One robot: its counts, its last episodes, its control timing, its evaluations."""

    robot: str
    finished: bool = False  # its share of the budget is done (or a hardware fault ended it)
    fault: str | None = None  # the one-line hardware fault that stopped its arm
    env_steps: int = 0
    episodes: int = 0
    acked: int = 0  # transitions the replay acknowledged
    queued_chunks: int = 0
    holds: int = 0  # safe-stop waits for an unreachable peer
    policy_version: int = -1
    success_rate: float = 0.0  # of the last episodes, as the reward judged them
    true_success_rate: float | None = None  # the simulator's truth (None: a real arm has none)
    intervention_rate: float = 0.0
    episode_return: float = 0.0
    period_p50_ms: float = 0.0
    period_p99_ms: float = 0.0
    overruns: int = 0
    period_counts: list[int] = field(default_factory=list)  # cumulative, per histogram bucket
    agreement: dict[str, int] = field(default_factory=empty_agreement)
    sent_bytes: int = 0  # robot -> replay
    weight_bytes: int = 0  # learner -> robot
    version_lag_s_p50: float = 0.0  # publish-to-apply delay of the weights
    version_lag_s_max: float = 0.0
    recent: list[dict[str, Any]] = field(default_factory=list)  # the last few episodes
    evals: list[dict[str, Any]] = field(default_factory=list)  # the periodic evaluation points
    eval_frames: list[dict[str, Any]] = field(default_factory=list)  # their frames not sent before
    transitions_sha256: str = ""  # of every transition sent, in order
    backbone_frames: int = 0  # frames this robot ran through the backbone for the others (encode once)
    rehearsal: dict[str, Any] | None = None  # what a rehearsal's scripted person did
    running: bool = False  # set by the actor: its loop is running
    error: str | None = None  # set by the actor: its loop's last failure
    node_id: str | None = None  # set by the Ray actor: the node the arm is on

    @classmethod
    def empty(cls, index: int) -> RobotStats:
        return cls(robot=f"robot-{index}", policy_version=0)


@dataclass
class LearnerStats:
    """The learner: updates, timing, the replay sizes it last saw, the last losses."""

    updates: int = 0
    version: int = 0  # the weights' version (= updates)
    update_s_p50: float = 0.0
    checkpoints: int = 0
    batch_bytes: int = 0  # replay -> learner
    resumed_from: int | None = None  # the checkpoint's update step it resumed from
    replay: dict[str, int] = field(default_factory=dict)  # {"online", "demo", "added"}
    losses: dict[str, float] = field(default_factory=dict)
    running: bool = True  # set by the actor
    error: str | None = None  # set by the actor


@dataclass
class RewardStats:
    """The reward actor's batching: batches, frames, mean batch size, latency percentiles."""

    batches: int = 0
    frames: int = 0
    batch_size_mean: float = 0.0
    pixel_frames: int = 0  # frames whose pixels ran through the classifier's backbone (not the robot's maps)
    latency_p50_ms: float = 0.0
    latency_p99_ms: float = 0.0

    def scalars(self) -> dict[str, float]:
        """As TensorBoard's and the Ray dashboard's ``reward_*`` series."""
        return {
            "reward_batches": float(self.batches),
            "reward_frames": float(self.frames),
            "reward_batch_size_mean": self.batch_size_mean,
            "reward_pixel_frames": float(self.pixel_frames),
            "reward_latency_p50_ms": self.latency_p50_ms,
            "reward_latency_p99_ms": self.latency_p99_ms,
        }
