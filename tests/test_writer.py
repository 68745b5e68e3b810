"""The robot's transition writer: each camera frame converted once and sent once per chunk."""

from __future__ import annotations

import pickle

import numpy as np

from actors.loop.episode import EpisodeStep
from actors.roles.clients import ReplayClient
from actors.roles.local import LocalRunner
from actors.roles.peers import LocalPeer
from actors.roles.writer import TransitionWriter, chunk_image_bytes
from configs.learner import LearnerConfig
from configs.rl import RuntimeConfig
from tests.rl_fixtures import KEYS, SIZE, tiny_config, write_classifier

STATE = "observation.state"


class _Replay:
    def __init__(self):
        self.chunks: list[bytes] = []

    def add(self, robot, seq, transitions):
        self.chunks.append(pickle.dumps(transitions, protocol=5))  # what Ray's serializer sends
        return {"added": len(transitions), "duplicate": 0}

    def next_seq(self, robot):
        return 0


def _observation(rng: np.random.Generator, size: int = 32) -> dict:
    obs = {k: rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for k in KEYS}
    obs[STATE] = rng.normal(size=18).astype(np.float32)
    return obs


def _steps(count: int, rng: np.random.Generator) -> list[EpisodeStep]:
    """An episode as the loop makes it: each step's observation is the previous step's next one."""
    obs, steps = _observation(rng), []
    for index in range(count):
        next_obs = _observation(rng)
        steps.append(
            EpisodeStep(
                obs, np.zeros(4, np.float32), False, next_obs, {}, 0.0, False, False, False, 0.0, index
            )
        )
        obs = next_obs
    return steps


def _writer(replay: _Replay, chunk_size: int = 8) -> TransitionWriter:
    lcfg = LearnerConfig(image_keys=list(KEYS), state_key=STATE)
    runtime = RuntimeConfig(chunk_size=chunk_size, max_queued_chunks=64)
    return TransitionWriter(ReplayClient(LocalPeer(replay)), "robot-0", runtime, lcfg, hold=lambda peer: None)


def test_each_frame_is_converted_once_and_sent_once_within_a_chunk():
    replay, rng = _Replay(), np.random.default_rng(0)
    writer = _writer(replay)
    steps = _steps(8, rng)
    for step in steps:
        writer.converted(step.observation)  # the policy acts on it first ...
        writer.write(step)  # ... and the transition reuses that conversion
        writer.send(step.done)
    writer.flush()
    assert writer.frames_converted == 9  # the reset's observation and one per step
    chunk = pickle.loads(replay.chunks[0])
    shared = [
        t.observation[KEYS[0]] is p.next_observation[KEYS[0]]
        for p, t in zip(chunk[:-1], chunk[1:], strict=True)
    ]
    assert shared == [True] * 7  # unpickled, still one array: it travelled once
    frame = chunk[0].observation[KEYS[0]]
    assert frame.shape == (3, 32, 32) and frame.flags.c_contiguous
    np.testing.assert_array_equal(frame, steps[0].observation[KEYS[0]].transpose(2, 0, 1))
    # 9 distinct frames per camera travel, not the 16 of 8 (observation, next_observation) pairs
    per_frame = sum(frame.nbytes for _ in KEYS)
    assert writer.sent_bytes == chunk_image_bytes(chunk, KEYS) == 9 * per_frame
    assert 9 * per_frame <= len(replay.chunks[0]) < 10 * per_frame


def test_a_run_converts_one_frame_per_env_step_and_reset(tmp_path):
    runner = LocalRunner(tiny_config(tmp_path, steps=24))
    summary = runner.run()
    robot, stats = runner.robots[0], summary["robots"][0]
    resets = stats.episodes + 1  # each finished episode and the one the budget cut
    assert stats.env_steps == 24
    assert robot.writer.frames_converted == stats.env_steps + resets


def test_one_backbone_pass_per_frame_the_robots_and_the_replay_stores_its_maps(tmp_path):
    """Feature replay with the policy's frozen backbone (the default): the robot encodes each frame
    once, to act; the replay stores those maps and runs the backbone on none of them."""
    runner = LocalRunner(tiny_config(tmp_path, steps=24))
    online = runner.replay.replay.online
    encoder = online.encoder
    assert runner.cfg.learner.uses_feature_replay and encoder is not None
    before = encoder.frames_encoded  # the demos' frames, encoded at import
    summary = runner.run()
    robot, stats = runner.robots[0], summary["robots"][0]
    resets = stats.episodes + 1
    assert robot.writer.frames_encoded == robot.writer.frames_converted == stats.env_steps + resets
    assert encoder.frames_encoded == before  # no online frame was encoded again
    # The newest stored map is the robot's map of its newest frame: what the replay's encoder makes
    # of those pixels (to float16 rounding: thread counts and batch sizes move the last bit).
    last = robot.writer.newest_frame
    for key in KEYS:
        expected = encoder.encode(last[key][None])[0].astype(np.float32)
        stored = online.frames[key][online._newest()].astype(np.float32)
        np.testing.assert_allclose(stored, expected, rtol=2e-3, atol=2e-3)

    # runtime.encode_once=false (the comparison path): the replay encodes every online frame itself.
    again = LocalRunner(tiny_config(tmp_path / "again", steps=12, encode_once=False))
    encoder = again.replay.replay.online.encoder
    before = encoder.frames_encoded
    again.run()
    assert again.robots[0].writer.frames_encoded == 0 and encoder.frames_encoded > before


def test_the_reward_scores_the_robots_maps_when_its_backbone_is_the_policys(tmp_path):
    """A classifier on the policy's frozen ResNet-10: the robot sends the maps it acted on and the
    reward actor runs only its heads (no backbone pass); on another backbone it gets the pixels."""
    import torch

    from actors.roles.reward import RewardRole

    shared = write_classifier(tmp_path / "shared" / "pretrained_model", policy_backbone=True)
    runner = LocalRunner(tiny_config(tmp_path / "a", shared, steps=12))
    summary = runner.run()
    role = runner.reward
    stats = summary["robots"][0]
    assert runner.robots[0].scores_maps
    assert role.frames >= stats.env_steps and role.pixel_frames == 0
    # acted on, scored and stored: still one backbone pass per frame
    assert runner.robots[0].writer.frames_encoded == stats.env_steps + stats.episodes + 1

    other = write_classifier(tmp_path / "other" / "pretrained_model", seed=1)  # its own ResNet-10
    runner = LocalRunner(tiny_config(tmp_path / "b", other, steps=12))
    runner.run()
    assert not runner.robots[0].scores_maps and runner.reward.pixel_frames == runner.reward.frames > 0

    # The same frame, scored from pixels and from the backbone's map, gets the same probability.
    role = RewardRole(shared, KEYS, SIZE)
    rng = np.random.default_rng(0)
    pixels = {k: rng.integers(0, 255, (3, SIZE, SIZE), dtype=np.uint8) for k in KEYS}
    with torch.no_grad():
        maps = {
            k: role.model.backbone(role.model.preprocess(torch.from_numpy(v)[None]))[0].numpy()
            for k, v in pixels.items()
        }
    from_pixels, from_maps = role.score_batch([pixels, maps])
    assert abs(from_pixels["probability"] - from_maps["probability"]) < 1e-4
