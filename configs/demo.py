"""`hilserl demo`: the main job on the simulated default (record -> check -> train reward -> evaluate)."""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.env import EnvConfig
from configs.reward import RewardTrainConfig


@dataclass
class DemoConfig:
    """Everything the main job needs; each step's own config is nested unchanged."""

    output_dir: str = "outputs/demo"
    """Parent folder; each launch writes a new run folder inside it and never touches older ones."""
    run_name: str | None = None
    """Run folder name (default: a timestamp). An existing run folder is an error, never overwritten."""
    env: EnvConfig = field(default_factory=EnvConfig)
    """Recording: simulator + scripted human (env.num_episodes demos)."""
    eval_episodes: int = 2
    """Extra held-out episodes, recorded with another seed, on which the classifier is evaluated."""
    reward: RewardTrainConfig = field(default_factory=RewardTrainConfig)
    """Reward classifier training (dataset.root and output_dir are filled in by the demo)."""
