"""The learner reads LeRobot's gripper convention (0 close, 1 stay, 2 open), validates batches with
ValueError, and reads our recorder's ``complementary_info.truncated`` column on demo import."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from learner.networks import Policy
from learner.replay import ReplayBuffer
from learner.sac import SACAgent
from learner.types import GRASP_ACTIONS, Gripper, gripper_index
from tests.learner_fixtures import fill, single_thread_torch, tiny_config  # noqa: F401 (autouse fixture)

STATE = "observation.state"


def test_the_convention_is_lerobots():
    assert (Gripper.CLOSE, Gripper.STAY, Gripper.OPEN) == (0, 1, 2) and GRASP_ACTIONS == 3
    assert gripper_index(torch.tensor([0.0, 1.0, 2.0])).tolist() == [0, 1, 2]


def test_a_stored_close_trains_q_column_zero():
    cfg = tiny_config(image_keys=[], action_dim=2)
    agent = SACAgent(cfg)
    batch = fill(cfg).sample(8)
    batch.action[:, -1] = float(Gripper.CLOSE)
    batch.reward = torch.full_like(batch.reward, 10.0)  # a TD error on the taken column for sure
    embedding, next_embedding = agent.encode(batch)
    agent.update_critic(batch, embedding, next_embedding)
    # Only the taken column's output bias gets a gradient from the grasp loss.
    grad = agent.policy.grasp_critic.net[-1].bias.grad
    assert grad[0].abs() > 0 and grad[1:].abs().max() == 0, grad


def test_policy_act_emits_the_argmax_column_as_the_command():
    cfg = tiny_config(image_keys=[], action_dim=2)
    policy = Policy(cfg, None)
    with torch.no_grad():
        last = policy.grasp_critic.net[-1]
        last.weight.zero_()
        last.bias.copy_(torch.tensor([0.0, 0.0, 5.0]))  # prefer column 2 = OPEN
    action = policy.act({STATE: torch.zeros(4, cfg.state_dim)}, deterministic=True)
    assert action[:, -1].tolist() == [2.0] * 4
    with torch.no_grad():
        last.bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    assert policy.act({STATE: torch.zeros(1, cfg.state_dim)})[:, -1].tolist() == [float(Gripper.CLOSE)]


def test_batch_validate_raises_value_error_not_assert():
    cfg = tiny_config()
    batch = fill(cfg).sample(4)
    batch.validate(cfg.image_keys, cfg.state_key, cfg.action_dim)
    batch.reward = batch.reward.double()
    with pytest.raises(ValueError, match="reward"):
        batch.validate(cfg.image_keys, cfg.state_key, cfg.action_dim)
    batch = fill(cfg).sample(4)
    batch.observation[cfg.image_keys[0]] = batch.observation[cfg.image_keys[0]][:, :2]
    with pytest.raises(ValueError, match=cfg.image_keys[0]):
        batch.validate(cfg.image_keys, cfg.state_key, cfg.action_dim)


def make_done_dataset(root, truncated_flags: list[bool] | None):
    """Two 4-frame episodes, the last frame of each with next.done; optionally our truncated column."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        STATE: {"dtype": "float32", "shape": (2,), "names": None},
        "action": {"dtype": "float32", "shape": (2,), "names": None},
        "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
        "next.done": {"dtype": "bool", "shape": (1,), "names": None},
    }
    if truncated_flags is not None:
        features["complementary_info.truncated"] = {"dtype": "bool", "shape": (1,), "names": None}
    dataset = LeRobotDataset.create(
        repo_id="test/done", fps=10, features=features, root=root, use_videos=False
    )
    for episode in range(2):
        for i in range(4):
            last = i == 3
            frame = {
                STATE: np.array([episode, i], dtype=np.float32),
                "action": np.array([0.0, float(Gripper.STAY)], dtype=np.float32),
                "next.reward": np.array([float(last)], dtype=np.float32),
                "next.done": np.array([last]),
                "task": "pick",
            }
            if truncated_flags is not None:
                frame["complementary_info.truncated"] = np.array([last and truncated_flags[episode]])
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()


@pytest.mark.parametrize(
    "flags, terminated, truncated, transitions",
    [
        (None, 2, 0, 8),  # no column: next.done means termination (today's reading)
        ([False, False], 2, 0, 8),  # column present, not set: termination
        ([True, False], 1, 1, 7),  # episode 0 hit the time limit: truncation, bootstrap from its last frame
    ],
    ids=["no-column", "terminated", "one-truncated"],
)
def test_demo_import_reads_the_truncated_column(tmp_path, flags, terminated, truncated, transitions):
    from learner.demos import import_lerobot_dataset

    make_done_dataset(tmp_path / "d", flags)
    buffer = ReplayBuffer(32, [], (3, 8, 8), STATE, state_dim=2, action_dim=2)
    assert import_lerobot_dataset(buffer, tmp_path / "d") == transitions
    batch = buffer.gather(np.flatnonzero(buffer.valid))
    assert int(batch.terminated.sum()) == terminated and int(batch.truncated.sum()) == truncated
    if flags and flags[0]:
        end = batch.truncated
        # The truncated step is frame 2 -> frame 3 of episode 0 (frame 3 is its final observation).
        assert batch.observation[STATE][end].tolist() == [[0.0, 2.0]]
        assert batch.next_observation[STATE][end].tolist() == [[0.0, 3.0]]
