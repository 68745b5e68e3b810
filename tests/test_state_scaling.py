"""The state's scaling: computed from the demos, applied before the networks, carried by every
checkpoint and export; feature replay refuses an augmentation it cannot apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.errors import ConfigError
from learner.checkpoint import load_checkpoint, save_checkpoint
from learner.demos import STATE_SCALE_FLOOR, state_statistics
from learner.export import architecture_id, export_policy, load_policy
from learner.sac import SACAgent
from tests.learner_fixtures import single_thread_torch, tiny_config  # noqa: F401 (autouse fixture)

LOC, SCALE = [1.0, -2.0, 50.0], [0.5, 0.01, 20.0]


def _state_batch() -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    obs = {
        k: torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8, generator=gen)
        for k in ("observation.images.front", "observation.images.wrist")
    }
    obs["observation.state"] = torch.tensor(LOC) + torch.tensor(SCALE) * torch.randn(4, 3, generator=gen)
    return obs


def test_the_encoder_sees_the_scaled_state():
    from learner.networks import ObservationEncoder

    torch.manual_seed(0)
    scaled = ObservationEncoder(
        tiny_config(image_keys=[], normalize_state=True, state_loc=LOC, state_scale=SCALE)
    )
    torch.manual_seed(0)
    raw = ObservationEncoder(tiny_config(image_keys=[]))  # same weights, no scaling
    state = torch.tensor(LOC) + torch.tensor(SCALE) * torch.randn(5, 3)
    standard = (state - torch.tensor(LOC)) / torch.tensor(SCALE)
    assert torch.allclose(scaled({}, state), raw({}, standard), atol=1e-5)
    assert not torch.allclose(scaled({}, state), raw({}, state), atol=1e-2)
    # Off: the statistics are ignored.
    off = ObservationEncoder(
        tiny_config(image_keys=[], state_loc=LOC, state_scale=SCALE, normalize_state=False)
    )
    assert torch.equal(off.state_loc, torch.zeros(3)) and torch.equal(off.state_scale, torch.ones(3))


def test_scaling_round_trips_through_export_and_checkpoint(tmp_path):
    scaled = tiny_config(normalize_state=True, state_loc=LOC, state_scale=SCALE)
    agent = SACAgent(scaled)
    obs = _state_batch()
    expected = agent.policy.act(obs, deterministic=True)

    # An export loads into a policy built without the statistics (a robot's default config) and acts the same.
    backbone = agent.policy.backbone
    policy = load_policy(export_policy(agent.policy, version=1), tiny_config(), backbone)
    assert torch.equal(policy.encoder.state_scale, torch.tensor(SCALE))
    assert torch.equal(policy.act(obs, deterministic=True), expected)

    # A checkpoint restores them into a learner built with other statistics.
    save_checkpoint(agent, tmp_path / "ckpt")
    other = SACAgent(
        tiny_config(normalize_state=True, state_loc=[0.0] * 3, state_scale=[9.0] * 3), backbone=backbone
    )
    load_checkpoint(other, tmp_path / "ckpt")
    assert torch.equal(other.policy.encoder.state_loc, torch.tensor(LOC))
    assert torch.equal(other.policy.act(obs, deterministic=True), expected)


def test_weights_saved_before_scaling_load_as_unscaled():
    agent = SACAgent(tiny_config())
    export = export_policy(agent.policy, version=3)
    for key in [k for k in export["state_dict"] if k.endswith(("state_loc", "state_scale"))]:
        del export["state_dict"][key]  # what an export of an earlier version holds
    export["architecture"] = architecture_id(export["state_dict"])
    policy = load_policy(export, tiny_config(state_loc=LOC, state_scale=SCALE), agent.policy.backbone)
    assert torch.equal(policy.encoder.state_loc, torch.zeros(3)) and torch.equal(
        policy.encoder.state_scale, torch.ones(3)
    )


def test_statistics_come_from_every_frame_of_the_demos(tmp_path):
    from tests.lerobot_data import write_state_dataset

    states = write_state_dataset(tmp_path / "demos")
    loc, scale = state_statistics(tmp_path / "demos", "observation.state")
    assert np.allclose(loc, states.mean(axis=0), atol=1e-5)
    expected = np.maximum(states.std(axis=0), STATE_SCALE_FLOOR * np.abs(states.mean(axis=0)))
    assert np.allclose(scale, expected, rtol=1e-4)
    assert scale[-1] == pytest.approx(STATE_SCALE_FLOOR * 90.0, rel=1e-3)  # the constant entry: floored


def test_bad_statistics_and_an_augmentation_feature_replay_cannot_apply_are_one_line_errors():
    with pytest.raises(ConfigError, match="state_scale has 2 entries but the state has 3"):
        tiny_config(state_scale=[1.0, 1.0])
    with pytest.raises(ConfigError, match="state_scale must be positive"):
        tiny_config(state_scale=[1.0, 0.0, 1.0])
    with pytest.raises(ConfigError, match="feature replay cannot apply") as err:
        tiny_config(feature_cache=True, augment=True)
    assert "\n" not in str(err.value)
    # The ways out the message names all work.
    tiny_config(feature_cache=True, augment=True, feature_augment="map_shift")
    tiny_config(feature_cache=True)  # augment unset: feature_augment decides
    assert tiny_config(feature_cache=False).pixel_augment and not tiny_config(augment=False).pixel_augment


def test_the_run_fills_the_statistics_in_once_from_its_demos(tmp_path):
    from actors.roles.rundir import fill_state_statistics
    from configs.errors import UserError
    from configs.rl import TrainRLConfig
    from tests.lerobot_data import write_state_dataset

    states = write_state_dataset(tmp_path / "demos")
    cfg = TrainRLConfig(demo_dataset=str(tmp_path / "demos"))
    cfg.learner.state_dim = 6
    fill_state_statistics(cfg)  # off by default: nothing filled in
    assert cfg.learner.state_scale is None
    cfg.learner.normalize_state = True
    fill_state_statistics(cfg)
    assert np.allclose(cfg.learner.state_loc, states.mean(axis=0), atol=1e-5)
    cfg.learner.state_loc = cfg.learner.state_scale = None
    cfg.learner.state_dim = 18
    with pytest.raises(UserError, match="has 6 state entries but the robot has 18"):
        fill_state_statistics(cfg)
