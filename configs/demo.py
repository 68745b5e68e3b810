"""`hilserl demo`: the main job on the simulated default.

record demos -> doctor -> train the reward classifier (Ray Train) -> evaluate it -> the HIL-SERL
run on Ray with the frozen classifier reward (and, budget permitting, the same run with the
sparse reward) -> evaluation episodes without intervention -> report.md + plots.

``budget`` picks a preset (``configs/demo_<budget>.json``) merged over ``configs/sim_default.json``
before the command line, so any preset value can still be overridden:

    hilserl demo                      # budget 'small' (sim_default.json as it is)
    hilserl demo --budget full        # + configs/demo_full.json
    hilserl demo --budget tiny        # + configs/demo_tiny.json (tests)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.env import EnvConfig
from configs.reward import RewardTrainConfig
from configs.rl import TrainRLConfig

BUDGETS = ("tiny", "small", "full")


@dataclass
class DemoConfig:
    """Everything the main job needs; each step's own config is nested unchanged."""

    output_dir: str = "outputs/demo"
    """Parent folder; each launch writes a new run folder inside it and never touches older ones."""
    run_name: str | None = None
    """Run folder name (default: a timestamp). An existing run folder is an error, never overwritten."""
    budget: str = "small"
    """Size preset: 'tiny' (tests, ~2 min), 'small' (shows learning in ~15 min on 2 CPU cores) or
    'full' (the real run); selects configs/demo_<budget>.json, merged under the command line."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """Recording: simulator + scripted human (env.num_episodes demos). Its task, image_size and fps
    are also the RL run's (one source: the classifier and the robot must see the same images)."""
    eval_episodes: int = 2
    """Extra held-out episodes, recorded with another seed, on which the classifier is evaluated."""
    rl_demo_episodes: int = 0
    """Demos recorded for the RL demo buffer alone, ending at the success frame (a terminal
    transition, as online episodes end); 0 reuses the classifier's demos, whose
    number_of_steps_after_success frames after a success are non-terminal reward-1 steps."""
    near_miss_episodes: int = 0
    """Episodes in which the scripted human misses on purpose (env.teleop.failure_prob=1: hovers
    around the cube with the gripper open, closes it beside or above the cube, or waves the arm
    about), recorded with another
    seed and added to the classifier's training set: the near-success negatives that clean
    demonstrations lack and that a policy otherwise learns to exploit."""
    reward: RewardTrainConfig = field(default_factory=RewardTrainConfig)
    """Reward classifier training (dataset.root, output_dir and the image size are filled in by the demo)."""
    rl: TrainRLConfig = field(default_factory=TrainRLConfig)
    """The HIL-SERL run on Ray. Filled in by the demo: output_dir, run_name, demo_dataset (the
    recorded demos), the classifier checkpoint, env.task/image_size/fps (from env)."""
    seeds: list[int] | None = None
    """Seeds of the RL runs (``--seeds 0,1,2``): each setting (classifier, sparse) runs once per
    seed and the report gives every seed's curve and the mean, min and max over the seeds.
    Recording and the classifier are done once. None: one run with rl.seed."""
    pick_lift_episode_s: float = 5.0
    """RL episode length (seconds) when env.task is pick_lift; the rl block's control_time_s is
    reach_grasp's. The expert with exploration-sized noise finishes pick_lift within 25 steps in
    18 of 30 episodes and within 50 in 30 of 30."""
    sparse_comparison: bool = True
    """Also run the same RL run (same seed and budget) with the terminal-only sparse reward."""
    next_classifier: bool = True
    """After the classifier-reward run, train the next classifier on the demos plus the run's
    disagreement log, and compare the old and the next checkpoint's false-positive rates on the same
    held-out episodes (the scripted ones and the recorded evaluation episodes of the final policy)."""
    untrained_eval_episodes: int | None = None
    """Evaluation episodes of the untrained policy (default: rl.runtime.eval_episodes)."""
    torch_threads: int | None = 1
    """Torch intra-op threads of the demo's own process (evaluations, in-process training; the Ray
    actors set their own). 1 for a busy small CPU, where more threads make the evaluations much
    slower, not faster. None: torch's default."""
