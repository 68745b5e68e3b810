"""Replay storage contracts: frames stored once, episode boundaries, wrap-around, RLPD mix, disk round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.errors import UserError
from learner.replay import MixedReplay, ReplayBuffer
from learner.types import Transition

IMAGE = "observation.images.front"
STATE = "observation.state"


def make_buffer(capacity: int = 64, seed: int = 0) -> ReplayBuffer:
    return ReplayBuffer(capacity, [IMAGE], (3, 4, 4), STATE, state_dim=2, action_dim=2, seed=seed)


def obs(episode: int, step: int) -> dict[str, np.ndarray]:
    """An observation that encodes (episode, step) in its state and image."""
    return {
        IMAGE: np.full((3, 4, 4), (episode * 16 + step) % 256, dtype=np.uint8),
        STATE: np.array([episode, step], dtype=np.float32),
    }


def episode(
    index: int, length: int, end: str = "truncated", intervention=lambda step: False
) -> list[Transition]:
    return [
        Transition(
            observation=obs(index, step),
            action=np.array([index, step], dtype=np.float32),
            reward=float(step),
            next_observation=obs(index, step + 1),
            terminated=end == "terminated" and step == length - 1,
            truncated=end == "truncated" and step == length - 1,
            is_intervention=intervention(step),
            complementary_info={"grasp_penalty": -0.02 * step},
        )
        for step in range(length)
    ]


def check_consistent(batch) -> None:
    """Every sampled next observation is the step after its observation, in the same episode."""
    state, next_state = batch.observation[STATE], batch.next_observation[STATE]
    assert torch.equal(next_state[:, 0], state[:, 0]), "bootstrapped across an episode boundary"
    assert torch.equal(next_state[:, 1], state[:, 1] + 1)
    assert torch.equal(batch.action, state)
    expected_image = (state[:, 0] * 16 + state[:, 1] + 1).remainder(256).to(torch.uint8)
    assert torch.equal(batch.next_observation[IMAGE][:, 0, 0, 0], expected_image)


def test_frames_are_stored_once_per_step_plus_one_per_episode():
    buffer = make_buffer(capacity=64)
    buffer.extend(episode(0, 5))
    buffer.extend(episode(1, 3, end="terminated"))
    assert len(buffer) == 8
    assert buffer.size == (5 + 1) + (3 + 1)
    assert buffer.frames[IMAGE].dtype == np.uint8
    check_consistent(buffer.sample(200))


def test_truncated_step_bootstraps_from_its_own_next_observation_and_termination_masks():
    buffer = make_buffer()
    buffer.extend(episode(0, 4, end="truncated"))
    buffer.extend(episode(1, 4, end="terminated"))
    batch = buffer.gather(np.arange(buffer.size)[buffer.valid[: buffer.size]])
    check_consistent(batch)
    last_of_truncated = (batch.observation[STATE][:, 0] == 0) & (batch.observation[STATE][:, 1] == 3)
    last_of_terminated = (batch.observation[STATE][:, 0] == 1) & (batch.observation[STATE][:, 1] == 3)
    # Its next observation is (episode 0, step 4), not episode 1's first frame.
    assert batch.next_observation[STATE][last_of_truncated].tolist() == [[0.0, 4.0]]
    assert batch.terminated[last_of_truncated].item() == 0.0 and batch.truncated[last_of_truncated].item()
    assert batch.terminated[last_of_terminated].item() == 1.0
    assert batch.terminated.sum().item() == 1.0


def test_pending_step_is_not_sampled_until_its_segment_continues():
    buffer = make_buffer()
    steps = episode(0, 3)
    buffer.add(steps[0])
    assert len(buffer) == 1 and buffer.size == 2
    buffer.add(steps[1])  # continues: reuses the stored frame, adds one
    assert len(buffer) == 2 and buffer.size == 3


def test_wraparound_keeps_every_sampled_index_consistent():
    buffer = make_buffer(capacity=7)
    for index in range(6):
        buffer.extend(episode(index, 2 + index % 3))
        check_consistent(buffer.sample(100))
    assert buffer.size == 7
    # Episodes 4 (4 steps) and 5 (2 steps) take 5 + 3 slots > 7: only the newest survive.
    episodes = set(buffer.sample(200).observation[STATE][:, 0].tolist())
    assert episodes <= {4.0, 5.0} and 5.0 in episodes
    assert len(buffer) == int(buffer.valid.sum())


def test_wraparound_mid_episode_keeps_indices_valid():
    buffer = make_buffer(capacity=5)
    buffer.extend(episode(0, 12))
    assert len(buffer) == 4  # 5 slots: 4 transitions + the final observation
    batch = buffer.gather(np.flatnonzero(buffer.valid))
    check_consistent(batch)
    assert sorted(batch.observation[STATE][:, 1].tolist()) == [8.0, 9.0, 10.0, 11.0]


def test_intervention_segments_in_the_demo_buffer_keep_their_own_next_observation():
    replay = MixedReplay(make_buffer(seed=1), make_buffer(seed=2), online_ratio=0.5)
    # Human drives steps 1-2 and 5-6: two pieces of one episode.
    for transition in episode(0, 8, intervention=lambda step: step in (1, 2, 5, 6)):
        replay.add(transition)
    assert len(replay.online) == 8 and len(replay.demo) == 4
    demo = replay.demo.gather(np.flatnonzero(replay.demo.valid))
    check_consistent(demo)
    assert sorted(demo.observation[STATE][:, 1].tolist()) == [1.0, 2.0, 5.0, 6.0]
    assert bool(demo.is_intervention.all())
    assert replay.demo.size == 6  # two segments of 2 steps: 3 frames each


def test_mixing_ratio_is_half_online_half_demo():
    replay = MixedReplay(make_buffer(seed=1), make_buffer(seed=2), online_ratio=0.5)
    replay.online.extend(episode(0, 10))
    assert replay.split(256) == (256, 0)  # no demos yet: all online
    replay.demo.extend(episode(1, 10, intervention=lambda step: True))
    batch = replay.sample(256)
    assert len(batch) == 256
    assert int((batch.source == 0).sum()) == 128 and int((batch.source == 1).sum()) == 128
    assert torch.equal(batch.observation[STATE][batch.source == 1, 0], torch.ones(128))
    assert torch.equal(batch.is_intervention, batch.source == 1)
    replay.online_ratio = 0.25
    assert replay.split(256) == (64, 192)


def test_save_load_round_trip_is_exact_and_keeps_sampling_state(tmp_path):
    buffer = make_buffer(capacity=9, seed=3)
    for index in range(4):
        buffer.extend(episode(index, 3, intervention=lambda step: step == 1))
    buffer.add(episode(9, 3)[0])  # leave a segment open
    path = buffer.save(tmp_path / "buffer.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["buffer.npz"]  # no temp file left behind
    loaded = ReplayBuffer.load(path)
    for name in ("write_pos", "size", "num_valid", "episode_open", "added"):
        assert getattr(loaded, name) == getattr(buffer, name), name
    a, b = buffer.sample(32), loaded.sample(32)
    for key in (IMAGE, STATE):
        assert torch.equal(a.observation[key], b.observation[key])
        assert torch.equal(a.next_observation[key], b.next_observation[key])
    assert torch.equal(a.is_intervention, b.is_intervention) and bool(a.is_intervention.any())
    assert torch.equal(a.complementary_info["grasp_penalty"], b.complementary_info["grasp_penalty"])
    # The open segment continues after loading exactly as it would have before.
    buffer.add(episode(9, 3)[1])
    loaded.add(episode(9, 3)[1])
    assert loaded.size == buffer.size and len(loaded) == len(buffer)


def test_interrupted_save_leaves_the_previous_file_intact(tmp_path, monkeypatch):
    buffer = make_buffer()
    buffer.extend(episode(0, 4))
    path = buffer.save(tmp_path / "buffer.npz")
    before = path.read_bytes()
    buffer.extend(episode(1, 4))

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError):
        buffer.save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["buffer.npz"]
    assert len(ReplayBuffer.load(path)) == 4


def test_bad_transition_shape_is_rejected():
    buffer = make_buffer()
    bad = episode(0, 1)[0]
    bad.observation[IMAGE] = bad.observation[IMAGE].astype(np.float32)
    with pytest.raises(ValueError, match="uint8"):
        buffer.add(bad)
    with pytest.raises(UserError):
        ReplayBuffer.load("/nonexistent/buffer.npz")


@pytest.mark.slow
def test_demo_import_from_a_lerobot_video_dataset(tmp_path):
    from learner.demos import import_lerobot_dataset
    from tests.lerobot_data import make_dataset, tree_hash

    root = tmp_path / "demos"
    make_dataset(
        root,
        episode_lengths=(4, 3),
        cameras=("front",),
        image_size=32,
        use_videos=True,
        reward_fn=lambda e, i: float(i == 2 and e == 1),
    )
    before = tree_hash(root)
    buffer = ReplayBuffer(32, [IMAGE], (3, 16, 16), STATE, state_dim=6, action_dim=4)
    assert import_lerobot_dataset(buffer, root) == 3 + 2  # the last frame of each episode is a final obs
    assert tree_hash(root) == before
    batch = buffer.gather(np.flatnonzero(buffer.valid))
    # Resized 32 -> 16 on import. make_dataset's brightness encodes (episode, frame); video coding may move it by a few levels.
    level = batch.observation[IMAGE].float().mean(dim=(1, 2, 3))
    next_level = batch.next_observation[IMAGE].float().mean(dim=(1, 2, 3))
    assert torch.allclose(next_level - level, torch.full_like(level, 5.0), atol=3.0)
    assert batch.truncated.sum().item() == 2 and batch.terminated.sum().item() == 0
    assert bool(batch.is_intervention.all())
    assert batch.reward.sum().item() == 0.0  # reward 1 sat on the last frame of episode 1, a final obs


def test_demo_import_rejects_a_dataset_without_rewards(tmp_path):
    from learner.demos import import_lerobot_dataset
    from tests.lerobot_data import make_dataset

    make_dataset(tmp_path / "d", episode_lengths=(3,), image_size=8, use_videos=False, with_reward=False)
    buffer = ReplayBuffer(32, [IMAGE], (3, 8, 8), STATE, state_dim=6, action_dim=4)
    with pytest.raises(UserError, match="next.reward"):
        import_lerobot_dataset(buffer, tmp_path / "d")
