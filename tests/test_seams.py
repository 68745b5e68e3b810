"""Round trips across the seams: sim step -> recorded dataset -> demo import -> grasp critic -> Policy.act -> env.

One gripper convention (LeRobot's 0 close / 1 stay / 2 open, ``learner.types.Gripper``), truncation
kept apart from termination through a recording, and one gripper unit (0-100) in the state.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from actors.intervention.base import InterventionSource, InterventionState
from actors.loop.record import TRUNCATED, run
from actors.robots.contract import STATE, make_action
from actors.robots.sim.env import SO101SimEnv
from configs.env import EnvConfig, ProcessorConfig, ResetConfig
from configs.learner import LearnerConfig
from learner.demos import import_lerobot_dataset
from learner.networks import Policy
from learner.replay import ReplayBuffer
from learner.types import Gripper, gripper_index
from vision.backbone import FrozenBackbone
from vision.resnet10 import ResNet10

SIZE = 32
KEYS = ["observation.images.front", "observation.images.wrist"]
COMMANDS = [Gripper.CLOSE, Gripper.CLOSE, Gripper.STAY, Gripper.OPEN, Gripper.OPEN, Gripper.STAY]


class GripperScript(InterventionSource):
    """A human holding the arm still and commanding the gripper by a fixed script."""

    def __init__(self):
        super().__init__()
        self.step = 0

    def _poll(self, obs, info):
        command = COMMANDS[self.step % len(COMMANDS)]
        self.step += 1
        return InterventionState(is_intervening=True, action=make_action(0, 0, 0, float(command)))

    def reset(self):
        super().reset()
        self.step = 0


def env_config(root=None, steps=6) -> EnvConfig:
    return EnvConfig(
        mode="record",
        repo_id="test/seams",
        dataset_root=None if root is None else str(root),
        num_episodes=1,
        image_size=SIZE,
        realtime=False,
        teleop={"type": "none"},
        processor=ProcessorConfig(reset=ResetConfig(control_time_s=steps / 10.0)),
    )


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    root = tmp_path_factory.mktemp("seams") / "demo"
    cfg = env_config(root)
    env = SO101SimEnv(cfg)
    try:
        summary = run(cfg, env=env, source=GripperScript())
    finally:
        env.close()
    assert summary.episodes == 1 and summary.frames == len(COMMANDS)
    return root


def test_recorded_gripper_commands_reach_the_grasp_critic_as_the_same_columns(recorded):
    buffer = ReplayBuffer(64, KEYS, (3, SIZE, SIZE), STATE, 18, 4)
    added = import_lerobot_dataset(buffer, recorded)
    # Time-limit end: the last frame is only the final observation (truncation, bootstrap).
    assert added == len(COMMANDS) - 1
    batch = buffer.gather(np.arange(buffer.capacity)[buffer.valid[: buffer.capacity]])
    stored = batch.action[:, -1]
    expected = torch.tensor([float(c) for c in COMMANDS[:added]])
    assert torch.equal(stored, expected)
    assert torch.equal(gripper_index(stored), expected.long())
    # Truncation stays truncation through the dataset: no step of this episode is terminal.
    assert not bool(batch.terminated.any()) and bool(batch.truncated[-1])


def test_recorded_dataset_flags_a_time_limit_end_as_truncated(recorded):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset("test/seams", root=recorded, video_backend="pyav")  # LeRobot reads the flag too
    assert TRUNCATED in dataset.meta.features
    done = [bool(dataset.hf_dataset[i]["next.done"]) for i in range(len(dataset))]
    truncated = [bool(dataset.hf_dataset[i][TRUNCATED]) for i in range(len(dataset))]
    assert done[-1] and truncated[-1] and not any(truncated[:-1])


@pytest.mark.parametrize("command", list(Gripper))
def test_policy_gripper_output_drives_the_env_the_same_way(command):
    cfg = LearnerConfig(
        image_keys=KEYS, image_size=SIZE, state_dim=18, action_dim=4, allow_random_vision_weights=True
    )
    torch.manual_seed(0)
    policy = Policy(cfg, FrozenBackbone(ResNet10(), SIZE)).eval()
    last = policy.grasp_critic.net[-1]
    with torch.no_grad():  # a grasp critic whose greedy choice is `command`
        last.weight.zero_()
        last.bias.copy_(torch.nn.functional.one_hot(torch.tensor(int(command)), 3).float())
    env = SO101SimEnv(env_config(steps=20))
    try:
        obs, _ = env.reset(seed=0)
        before = float(obs[STATE][5])
        batched = {
            k: torch.from_numpy(obs[k]).permute(2, 0, 1).unsqueeze(0)
            if k in KEYS
            else torch.from_numpy(obs[k])[None]
            for k in obs
        }
        action = policy.act(batched, deterministic=True)[0].numpy()
        assert action[-1] == float(command)
        action[:3] = 0.0
        for _ in range(3):
            obs, *_ = env.step(action)
        after = float(obs[STATE][5])
    finally:
        env.close()
    if command == Gripper.CLOSE:
        assert after < before - 5
    elif command == Gripper.OPEN:
        assert after > before + 5
    else:
        assert after == pytest.approx(before, abs=2.0)
