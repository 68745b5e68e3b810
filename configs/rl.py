"""``TrainRLConfig``: the one schema of a HIL-SERL run (env, learner, reward actor, runtime).

    hilserl run --config_path configs/sim_rl.json [--runtime.num_robots=2] [--env.task=reach_grasp]

The env block is the same ``EnvConfig`` that recording uses (LeRobot's gym_manipulator shapes load
unchanged, including ``env.processor.reward_classifier`` and the older
``env.reward_classifier_pretrained_path``). ``resolve()`` derives what the learner must agree on
from the env (camera keys, image size, state and action layout, the seed) and refuses
contradictions with one line, so no fact of a run has two sources.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from typing import Any

from configs.env import EnvConfig, RewardClassifierEnvConfig
from configs.errors import ConfigError
from configs.learner import LearnerConfig

ENV_IMAGE_KEYS = ["observation.images.front", "observation.images.wrist"]
ENV_STATE_KEY = "observation.state"
ENV_STATE_DIM = 18
ENV_ACTION_DIM = 4
PACES = ("async", "lockstep")
EVAL_ENVS = ("separate", "shared")


def check_finite(config: Any, where: str = "") -> None:
    """Every float of a (nested) config is finite: NaN or infinity is one line naming the field."""
    if not dataclasses.is_dataclass(config):
        return
    for item in dataclasses.fields(config):
        value = getattr(config, item.name)
        name = f"{where}{item.name}"
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(isinstance(v, float) and not math.isfinite(v) for v in values):
            raise ConfigError(f"{name}={value} must be a finite number; fix --{name}")
        if dataclasses.is_dataclass(value):
            check_finite(value, name + ".")


@dataclass
class RewardActorConfig:
    """The frozen learned reward served to every robot."""

    source: str = "classifier"
    """'classifier' (the checkpoint in env.processor.reward_classifier) or 'sparse' (the env's own
    terminal success signal: the simulator's ground truth, or the human's success key on the arm)."""
    max_batch: int = 64
    """Most frames one forward pass serves (all queued requests up to this many)."""
    device: str = "cpu"
    """Torch device of the classifier."""


@dataclass
class RuntimeConfig:
    """How the roles run: counts, schedules, placement."""

    num_robots: int = 1
    """Robot actors, each with its own env and intervention source, all against one reward, replay and learner."""
    total_env_steps: int = 2000
    """Stop after this many env steps summed over all robots (0: run until stopped)."""
    learning_starts: int = 100
    """Transitions in the replay before the learner's first update."""
    max_updates_per_env_step: float = 1.0
    """Learner updates allowed per collected env step (keeps a fast learner from overfitting a small
    buffer; 0 = unlimited)."""
    weight_push_every: int = 5
    """Learner updates between two weight publications (a latest-only mailbox, never a queue)."""
    checkpoint_every: int = 200
    """Learner updates between two checkpoints (learner and replay snapshot)."""
    chunk_size: int = 8
    """Transitions per send from a robot to the replay (at most one send in flight)."""
    max_queued_chunks: int = 16
    """Chunks a robot keeps while the replay is slow or down; when full the robot holds a safe stop."""
    replay_snapshot_every: int = 2000
    """Transitions between two replay snapshots (the append-only log covers the rest)."""
    robot_resource: str | None = None
    """Custom Ray resource the robot actor needs (e.g. 'so101': `ray start --resources '{"so101": 1}'`
    on the node with the USB arm). Default: 'so101' for the real arm, none for the simulator."""
    learner_gpus: float = 0.0
    """GPUs the learner actor asks for (1 to place it on a GPU node)."""
    robot_cpus: float = 0.5
    """CPUs each robot actor reserves: about what its control loop, env and local policy use, so
    that Ray's scheduling and the dashboard's cluster page tell the truth."""
    learner_cpus: float = 0.5
    """CPUs the learner actor reserves (its update loop; more on a CPU-only learner, less on a GPU)."""
    reward_cpus: float = 0.25
    """CPUs the reward actor reserves (batched classifier forward passes)."""
    replay_cpus: float = 0.25
    """CPUs the replay actor reserves (buffer appends, snapshots, batches)."""
    resource_timeout_s: float = 60.0
    """Seconds to wait for an actor's resources before failing with the `ray start` flag that provides them."""
    ray_address: str | None = None
    """Ray cluster to join ('auto' for a `ray start` cluster); None starts a private local Ray."""
    num_cpus: int | None = None
    """CPUs of a private local Ray (None: all of this machine's)."""
    dashboard: bool = True
    """Start the Ray dashboard with a private local Ray."""
    torch_threads: int = 1
    """Torch threads of each actor process: robots, reward, replay and learner share the CPUs, and
    several processes with many threads each slow the control loop down (0: torch's default)."""
    policy_device: str = "cpu"
    """Torch device of each robot's local policy copy."""
    encode_once: bool = True
    """Each camera frame runs through the frozen ResNet-10 once, on the robot that acts on it: its
    maps travel to a feature replay and to a classifier on the same weights, which run only their
    heads. False: the replay and the reward actor each encode the pixels again (for comparison:
    ``hilserl bench run``)."""
    deterministic_policy: bool = False
    """Robots act with the policy's mean (evaluation) instead of sampling."""
    eval_episodes: int = 0
    """Episodes run after training with the final policy alone (no human, mean action), simulator only."""
    eval_record: bool = False
    """Also write the evaluation episodes, labeled with the simulator's success, as a LeRobot dataset
    (<run>/eval_episodes): held-out on-policy frames on which to compare reward classifiers."""
    progress: bool = True
    """One live progress line in the terminal."""
    pace: str = "async"
    """How the robot and the learner share time. 'async': they run concurrently (the robot at
    env.fps in real time on a real arm or with env.realtime, the learner as fast as
    max_updates_per_env_step allows), so which weights act depends on timing. 'lockstep' (one
    simulated robot): they take turns in a fixed pattern, nothing sleeps to a wall clock, every
    random source is seeded: a seed gives bit-identical transitions, weights and evaluation
    curves, on the in-process runner and on Ray, as fast as the machine allows."""
    eval_every: int = 0
    """Env steps between two periodic evaluations of the current policy (and one at step 0): the
    learning curve in history.jsonl, TensorBoard, the Ray gauges and the progress line. 0: off."""
    eval_every_episodes: int = 10
    """Episodes per periodic evaluation: the policy alone (mean action, no human, no exploration
    noise), on the same evaluation seeds every time, which training never uses."""
    eval_env: str | None = None
    """Where periodic evaluation runs. 'separate': a second env of the robot's actor (simulated
    robots; takes no step from training). 'shared': the training env, between training episodes,
    counted apart (a real arm has one). Default: separate for the simulator, shared for the arm."""


@dataclass
class TrainRLConfig:
    """A HIL-SERL run."""

    output_dir: str = "outputs/rl"
    """Parent folder; each run writes a new run folder inside it."""
    run_name: str | None = None
    """Run folder name (default: a timestamp). An existing run folder is resumed only with --resume."""
    resume: bool = False
    """Resume the run folder named by run_name (learner checkpoint, replay snapshot and log)."""
    allow_classifier_change: bool = False
    """Resume with a classifier whose weights differ from the one the run started with (recorded)."""
    demo_dataset: str | None = None
    """LeRobot dataset of demonstrations loaded into the demo buffer at start (local root)."""
    seed: int = 0
    """The run's seed: the env's cube placements, the scripted human, the learner (one source)."""
    seeds: list[int] | None = None
    """Run once per seed (``--seeds 0,1,2``), each in its own folder ``<run_name>-seed<s>``, one
    after the other, and summarize the final success and the steps to 90 percent success over
    them (report.md in ``<run_name>-seeds/``). None: one run with ``seed``."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """Robot, teleop and processor (reward classifier, reset, gripper); the same block recording uses."""
    learner: LearnerConfig = field(default_factory=LearnerConfig)
    """SAC networks and replay; its layout fields are derived from env by resolve()."""
    reward: RewardActorConfig = field(default_factory=RewardActorConfig)
    """The reward actor."""
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    """Counts, schedules and placement."""

    def classifier(self) -> RewardClassifierEnvConfig | None:
        """The learned-reward block, wherever the JSON put it (processor.reward_classifier or the older field)."""
        return self.env.reward_classifier()

    def resolve(self) -> TrainRLConfig:
        """Derive the learner's layout from the env and check the run is coherent. Returns self."""
        env, learner = self.env, self.learner
        env.check_supported()
        check_finite(self)
        for name, value, low, high in (
            ("env.fps", env.fps, 0.0, None),
            ("env.image_size", env.image_size, 0.0, None),
            ("learner.discount", learner.discount, 0.0, 1.0),
            ("learner.batch_size", learner.batch_size, 0.0, None),
            ("learner.actor_lr", learner.actor_lr, 0.0, None),
            ("learner.critic_lr", learner.critic_lr, 0.0, None),
        ):
            if value is not None and not (value > low and (high is None or value <= high)):
                bound = f"in ({low:g}, {high:g}]" if high is not None else f"above {low:g}"
                raise ConfigError(f"{name}={value} must be {bound}; fix --{name}")
        if env.mode not in (None, "rl", "train"):
            raise ConfigError(f"env.mode is '{env.mode}' but `hilserl run` trains: set env.mode to null")
        if self.reward.source not in ("classifier", "sparse"):
            raise ConfigError(f"reward.source '{self.reward.source}': use 'classifier' or 'sparse'")
        block = self.classifier()
        if self.reward.source == "classifier" and not (block and block.pretrained_path):
            raise ConfigError(
                "reward.source is 'classifier' but no checkpoint is set: pass "
                "--env.processor.reward_classifier.pretrained_path=DIR (a pretrained_model/ folder) "
                "or --reward.source=sparse"
            )
        for name, ours, theirs in (
            ("image_size", learner.image_size, env.image_size),
            ("seed", learner.seed, self.seed),
        ):
            default = getattr(LearnerConfig, name, None)
            if ours != theirs and ours != default:
                raise ConfigError(
                    f"learner.{name}={ours} contradicts the run's {theirs}: drop learner.{name} "
                    f"(it is derived from {'env.image_size' if name == 'image_size' else 'seed'})"
                )
        learner.image_size = env.image_size
        learner.seed = env.seed = self.seed
        if learner.image_keys and sorted(learner.image_keys) != sorted(ENV_IMAGE_KEYS):
            unknown = sorted(set(learner.image_keys) - set(ENV_IMAGE_KEYS))
            if unknown:
                raise ConfigError(
                    f"learner.image_keys names {unknown[0]}, which the SO-101 env does not have; "
                    f"use a subset of {ENV_IMAGE_KEYS}"
                )
        learner.state_key, learner.state_dim, learner.action_dim = (
            ENV_STATE_KEY,
            ENV_STATE_DIM,
            ENV_ACTION_DIM,
        )
        runtime = self.runtime
        for name in (
            "num_robots",
            "chunk_size",
            "max_queued_chunks",
            "weight_push_every",
            "checkpoint_every",
        ):
            if getattr(runtime, name) < 1:
                raise ConfigError(f"runtime.{name}={getattr(runtime, name)} must be at least 1")
        if runtime.total_env_steps < 0 or runtime.learning_starts < 0:
            raise ConfigError("runtime.total_env_steps and runtime.learning_starts must be >= 0")
        for name in ("robot_cpus", "learner_cpus", "reward_cpus", "replay_cpus"):
            value = getattr(runtime, name)
            if value < 0:  # non-finite values were refused above
                raise ConfigError(f"runtime.{name}={value} must be a number of CPUs >= 0 (0 reserves none)")
        self._check_pace_and_eval()
        if self.seeds is not None and (not self.seeds or len(set(self.seeds)) != len(self.seeds)):
            raise ConfigError(f"seeds {self.seeds} must be distinct and at least one: e.g. --seeds 0,1,2")
        return self

    def _check_pace_and_eval(self) -> None:
        runtime = self.runtime
        simulated = self.env.robot.type == "sim"  # the factory refuses unknown types later
        if runtime.pace not in PACES:
            raise ConfigError(f"runtime.pace '{runtime.pace}': use one of {', '.join(PACES)}")
        if runtime.pace == "lockstep":
            if not simulated:
                raise ConfigError(
                    "runtime.pace=lockstep needs a simulated robot (a real arm moves in real time): "
                    "set runtime.pace=async"
                )
            if runtime.num_robots != 1:
                raise ConfigError(
                    f"runtime.pace=lockstep runs one robot, not {runtime.num_robots}: set "
                    "runtime.num_robots=1 or runtime.pace=async"
                )
            if runtime.max_updates_per_env_step <= 0:
                raise ConfigError(
                    "runtime.pace=lockstep needs runtime.max_updates_per_env_step > 0 (the learner's "
                    "updates per env step); 1.0 is the default"
                )
        if runtime.eval_every < 0 or runtime.eval_every_episodes < 1:
            raise ConfigError(
                f"runtime.eval_every={runtime.eval_every} must be >= 0 and runtime.eval_every_episodes="
                f"{runtime.eval_every_episodes} at least 1"
            )
        if runtime.eval_env is None:
            runtime.eval_env = "separate" if simulated else "shared"
        if runtime.eval_env not in EVAL_ENVS:
            raise ConfigError(f"runtime.eval_env '{runtime.eval_env}': use one of {', '.join(EVAL_ENVS)}")
        if runtime.eval_episodes and not simulated and not self.env.rehearse:
            raise ConfigError(
                f"runtime.eval_episodes={runtime.eval_episodes} needs a simulated robot: the final "
                "evaluation opens its own env in the driver, and a real arm has one, held by the robot "
                "actor; set runtime.eval_episodes=0 and use runtime.eval_every (between training episodes)"
            )
        if runtime.eval_env == "separate" and not simulated and runtime.eval_every:
            raise ConfigError(
                "runtime.eval_env=separate needs a simulated robot (a real arm has one env): set "
                "runtime.eval_env=shared to evaluate between training episodes"
            )


def seeds_argv(argv: list[str]) -> list[str]:
    """``--seeds 0,1,2`` (or ``--seeds=0,1,2``) as the JSON list the config parser reads; others unchanged."""
    out, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--seeds" and i + 1 < len(argv):
            arg, i = f"--seeds={argv[i + 1]}", i + 1
        if arg.startswith("--seeds="):
            value = arg.split("=", 1)[1].strip()
            if value and not value.startswith("["):
                try:
                    value = json.dumps([int(v) for v in value.split(",") if v.strip()])
                except ValueError:
                    raise ConfigError(
                        f"--seeds={value}: give integers separated by commas, e.g. --seeds 0,1,2"
                    ) from None
            arg = f"--seeds={value}"
        out.append(arg)
        i += 1
    return out
