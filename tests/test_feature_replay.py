"""Feature replay: frozen-backbone maps stored once per frame, consumed by SACAgent without the backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.errors import ConfigError, UserError
from learner.replay import MixedReplay, ReplayBuffer
from learner.sac import SACAgent
from tests.learner_fixtures import fill, single_thread_torch, tiny_config  # noqa: F401 (autouse fixture)
from vision.backbone import FrozenBackbone
from vision.features import FeatureEncoder
from vision.resnet10 import ResNet10

STATE = "observation.state"


def backbone(image_size: int = 32, seed: int = 0) -> FrozenBackbone:
    torch.manual_seed(seed)
    return FrozenBackbone(ResNet10(), image_size)


@pytest.fixture(scope="module")
def shared():
    """One backbone, a pixel replay and a feature replay holding the same transitions."""
    net = backbone()
    pixels = fill(tiny_config(), backbone=net)
    features = fill(tiny_config(feature_cache=True), backbone=net)
    return net, pixels, features


def count_images(net: FrozenBackbone) -> list[int]:
    calls: list[int] = []
    original = net.net.forward
    net.net.forward = lambda x: calls.append(x.shape[0]) or original(x)
    return calls


def test_each_frame_is_encoded_exactly_once_in_one_batched_call_per_extend():
    net = backbone()
    cfg = tiny_config(feature_cache=True, image_keys=["observation.images.front"])
    buffer = ReplayBuffer.from_config(cfg, 64, encoder=FeatureEncoder.from_config(cfg, net))
    calls = count_images(net)
    rng = np.random.default_rng(0)
    frames = [
        {
            "observation.images.front": rng.integers(0, 256, (3, 32, 32), dtype=np.uint8),
            STATE: np.full(3, i, np.float32),
        }
        for i in range(11)
    ]
    from learner.types import Transition

    episode = [
        Transition(frames[i], np.zeros(3, np.float32), 0.0, frames[i + 1], False, i == 9) for i in range(10)
    ]
    buffer.extend(episode)
    assert calls == [11] and buffer.size == 11 and len(buffer) == 10
    assert buffer.frames["observation.images.front"].dtype == np.float16
    assert buffer.frames["observation.images.front"].shape[1:] == net.map_shape()
    expected = net(torch.from_numpy(np.stack([f["observation.images.front"] for f in frames]))).half()
    torch.testing.assert_close(torch.from_numpy(buffer.frames["observation.images.front"][:11]), expected)


def test_a_stored_transition_is_128_px_features_under_48_kib():
    cfg = tiny_config(feature_cache=True, image_size=128, state_dim=18, action_dim=4)
    replay = MixedReplay.from_config(cfg, backbone=backbone(128))
    assert replay.online.frames[cfg.image_keys[0]].shape[1:] == (512, 4, 4)
    assert replay.online.bytes_per_slot <= 48 * 1024, replay.online.bytes_per_slot


def test_feature_batches_give_the_pixel_paths_losses_without_running_the_backbone(shared):
    net, pixels, features = shared
    indices = np.flatnonzero(pixels.online.valid)[:8]
    pixel_batch, feature_batch = pixels.online.gather(indices), features.online.gather(indices)
    assert feature_batch.has_features and not pixel_batch.has_features
    torch.manual_seed(0)
    agent = SACAgent(tiny_config(augment=False), backbone=net)
    agent.policy.eval()  # no dropout: both paths must give the same embedding
    with torch.no_grad():
        a, a_next = agent.encode(pixel_batch)
        b, b_next = agent.encode(feature_batch)
    torch.testing.assert_close(a, b, atol=2e-2, rtol=0)
    torch.testing.assert_close(a_next, b_next, atol=2e-2, rtol=0)

    torch.manual_seed(0)
    feature_agent = SACAgent(tiny_config(feature_cache=True), backbone=net)
    calls = count_images(net)
    metrics = feature_agent.update(features.batches(8))
    assert calls == [] and feature_agent.critic_step == 2
    assert np.isfinite(metrics["critic_loss"]) and np.isfinite(metrics["actor_loss"])
    # Acting still takes raw uint8 frames.
    observation = pixels.sample(3).observation
    assert feature_agent.act(observation).shape == (3, 3) and calls


def test_map_shift_moves_features_and_none_keeps_them(shared):
    net, _, features = shared
    batch = features.online.sample(16)
    key = tiny_config().image_keys[0]
    stored = batch.observation[key].float().clone()
    plain = SACAgent(tiny_config(feature_cache=True), backbone=net).augment_features(batch)
    assert torch.equal(plain.observation[key], stored)
    big = tiny_config(feature_cache=True, image_size=96, feature_augment="map_shift")
    net96 = backbone(96)
    maps = torch.randn(64, 512, *net96.map_shape()[1:]).half()
    from vision.features import augment_features

    shifted = augment_features(maps, big.feature_augment, big.feature_pad)
    assert shifted.dtype == torch.float32 and shifted.shape == maps.shape
    assert not torch.equal(shifted, maps.float())


def test_pixel_shifts_store_k_maps_and_draw_one_per_sample():
    net = backbone()
    cfg = tiny_config(feature_cache=True, feature_augment="pixel_shifts", feature_shifts=2)
    replay = fill(cfg, backbone=net)
    stored = replay.online.frames[cfg.image_keys[0]]
    assert stored.shape[1:] == (2, *net.map_shape())
    assert not np.array_equal(stored[:, 0], stored[:, 1])
    index = np.flatnonzero(replay.online.valid)[:1].repeat(40)
    drawn = replay.online.gather(index).observation[cfg.image_keys[0]].numpy()
    matches = {int(np.flatnonzero([np.array_equal(d, s) for s in stored[index[0]]])[0]) for d in drawn}
    assert matches == {0, 1}
    with pytest.raises(ConfigError, match="feature_augment"):
        tiny_config(feature_augment="crop")


def test_saved_features_resume_without_recomputing_and_refuse_other_weights(shared, tmp_path):
    net, _, features = shared
    features.save(tmp_path / "replay")
    calls = count_images(net)
    loaded = MixedReplay.load(tmp_path / "replay", backbone=net)
    assert loaded.stores_features
    assert all(n == 1 for n in calls)  # nothing re-encoded: only map_shape's one-image dry runs
    key = tiny_config().image_keys[0]
    np.testing.assert_array_equal(loaded.online.frames[key], features.online.frames[key])
    assert len(loaded.online) == len(features.online)
    with pytest.raises(UserError, match="online.npz.*other ResNet-10 weights"):
        MixedReplay.load(tmp_path / "replay", backbone=backbone(seed=1))
    with pytest.raises(UserError, match="holds backbone features"):
        ReplayBuffer.load(tmp_path / "replay" / "online.npz")


def test_a_continuing_intervention_segment_is_detected_in_feature_mode(shared):
    _, pixels, features = shared
    # fill() writes the same transitions one by one; both modes must use the same slots.
    assert features.online.size == pixels.online.size and features.demo.size == pixels.demo.size
    np.testing.assert_array_equal(features.demo.valid, pixels.demo.valid)
    np.testing.assert_array_equal(features.online.state, pixels.online.state)


@pytest.mark.slow
def test_demo_import_fills_the_feature_replay_one_batched_pass_per_episode(tmp_path):
    from learner.demos import import_lerobot_dataset
    from tests.lerobot_data import make_dataset

    make_dataset(tmp_path / "d", episode_lengths=(5, 4), cameras=("front",), image_size=32, use_videos=False)
    net = backbone()
    cfg = tiny_config(feature_cache=True, image_keys=["observation.images.front"], state_dim=6, action_dim=4)
    buffer = ReplayBuffer.from_config(cfg, 64, encoder=FeatureEncoder.from_config(cfg, net))
    calls = count_images(net)
    assert import_lerobot_dataset(buffer, tmp_path / "d") == 4 + 3
    assert calls == [5, 4]  # every frame once, one call per episode


def test_an_intervention_stored_in_both_buffers_is_encoded_once():
    net = backbone()
    cfg = tiny_config(feature_cache=True, image_keys=["observation.images.front"])
    replay = MixedReplay.from_config(cfg, backbone=net)
    calls = count_images(net)
    rng = np.random.default_rng(0)
    frames = [
        {
            "observation.images.front": rng.integers(0, 256, (3, 32, 32), dtype=np.uint8),
            STATE: np.full(3, i, np.float32),
        }
        for i in range(5)
    ]
    from learner.types import Transition

    steps = [
        Transition(frames[i], np.zeros(3, np.float32), 0.0, frames[i + 1], False, i == 3, True)
        for i in range(4)
    ]
    replay.extend(steps)
    assert len(replay.online) == len(replay.demo) == 4
    assert calls == [5]  # the demo buffer reused the online buffer's maps
    np.testing.assert_array_equal(
        replay.online.frames["observation.images.front"][:5],
        replay.demo.frames["observation.images.front"][:5],
    )
