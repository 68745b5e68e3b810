"""SAC agent contracts with tiny shapes: UTD pulls, frozen backbone, tau, targets, grasp critic, export."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from configs.errors import ConfigError
from learner.export import export_from_bytes, export_policy, export_to_bytes, load_policy
from learner.sac import SACAgent
from learner.types import gripper_index
from tests.learner_fixtures import fill, single_thread_torch, tiny_config  # noqa: F401 (autouse fixture)


class CountingIterator:
    def __init__(self, inner):
        self.inner, self.pulled = inner, 0

    def __iter__(self):
        return self

    def __next__(self):
        self.pulled += 1
        return next(self.inner)


@pytest.fixture(scope="module")
def replay():
    return fill(tiny_config())


def make_agent(seed: int = 0, **overrides) -> SACAgent:
    torch.manual_seed(seed)
    return SACAgent(tiny_config(**overrides))


def test_update_pulls_exactly_utd_batches_and_runs_the_backbone_once_per_batch(replay):
    agent = make_agent(utd_ratio=3)
    calls = []
    original = agent.policy.backbone.net.forward
    agent.policy.backbone.net.forward = lambda x: calls.append(x.shape[0]) or original(x)
    batches = CountingIterator(replay.batches(agent.cfg.batch_size))
    metrics = agent.update(batches)
    assert batches.pulled == 3
    assert agent.critic_step == 3 and agent.update_step == 1
    # One backbone pass per batch: 2 cameras x (obs + next obs) x batch 8 images.
    assert calls == [2 * 2 * 8] * 3
    for key in ("critic_loss", "grasp_critic_loss", "actor_loss", "temperature", "entropy"):
        assert key in metrics and metrics[key] == metrics[key], key  # present and not NaN


def test_frozen_backbone_is_bitwise_unchanged_while_heads_train(replay):
    agent = make_agent()
    backbone = {k: v.clone() for k, v in agent.policy.backbone.state_dict().items()}
    heads = {k: v.clone() for k, v in agent.policy.encoder.state_dict().items()}
    batches = replay.batches(agent.cfg.batch_size)
    for _ in range(2):
        agent.update(batches)
    for key, value in agent.policy.backbone.state_dict().items():
        assert torch.equal(value, backbone[key]), key
    assert all(p.grad is None and not p.requires_grad for p in agent.policy.backbone.parameters())
    changed = [k for k, v in agent.policy.encoder.state_dict().items() if not torch.equal(v, heads[k])]
    assert any("pools" in k for k in changed) and any("projections" in k for k in changed)


def test_target_networks_move_by_exactly_tau(replay):
    agent = make_agent(utd_ratio=1)
    before = [p.clone() for p in agent.critic_target.parameters()]
    grasp_before = [p.clone() for p in agent.grasp_target.parameters()]
    agent.update(replay.batches(agent.cfg.batch_size))
    tau = agent.cfg.tau
    for old, new, online in zip(
        before, agent.critic_target.parameters(), agent.critic.parameters(), strict=True
    ):
        torch.testing.assert_close(new, old + tau * (online - old), rtol=0, atol=1e-7)
    for old, new, online in zip(
        grasp_before, agent.grasp_target.parameters(), agent.policy.grasp_critic.parameters(), strict=True
    ):
        torch.testing.assert_close(new, old + tau * (online - old), rtol=0, atol=1e-7)
    moved = [not torch.equal(a, b) for a, b in zip(before, agent.critic_target.parameters(), strict=True)]
    assert any(moved)


def test_td_target_masks_termination_but_bootstraps_truncation(replay):
    agent = make_agent()
    batch = replay.sample(8).to(agent.device)
    _, next_embedding = agent.encode(batch)
    batch.terminated = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0], dtype=torch.float32)
    batch.truncated = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1], dtype=torch.bool)
    torch.manual_seed(1)
    target = agent.td_target(batch, next_embedding)
    torch.manual_seed(1)
    next_action, _ = agent.policy.actor(next_embedding)
    next_v = agent.critic_target(next_embedding, next_action).min(dim=0).values
    assert torch.equal(target[:4], batch.reward[:4])
    torch.testing.assert_close(target[4:], batch.reward[4:] + agent.cfg.discount * next_v[4:].detach())


def test_grasp_target_is_double_q_with_the_penalty(replay):
    agent = make_agent()
    with torch.no_grad():
        for p in agent.grasp_target.parameters():
            p.add_(torch.randn_like(p))  # make the target differ from the online critic
    batch = replay.sample(8).to(agent.device)
    _, next_embedding = agent.encode(batch)
    target = agent.grasp_td_target(batch, next_embedding)
    best = agent.policy.grasp_critic(next_embedding).argmax(dim=-1)
    value = agent.grasp_target(next_embedding)[torch.arange(8), best]
    reward = batch.reward + batch.complementary_info["grasp_penalty"]
    torch.testing.assert_close(target, reward + agent.cfg.discount * (1 - batch.terminated) * value.detach())
    assert gripper_index(torch.tensor([0.0, 0.4, 1.05, 1.95, 2.0, 3.0, -1.0])).tolist() == [
        0,
        0,
        1,
        2,
        2,
        2,
        0,
    ]


def test_exported_policy_holds_no_backbone_and_acts_identically(replay):
    agent = make_agent()
    agent.update(replay.batches(agent.cfg.batch_size))
    export = export_from_bytes(export_to_bytes(export_policy(agent.policy, version=agent.update_step)))
    assert export["version"] == 1
    assert not any("backbone" in key or key.startswith("net.") for key in export["state_dict"])
    trainable = [*agent.policy.encoder.parameters(), *agent.policy.actor.parameters()]
    trainable += list(agent.policy.grasp_critic.parameters())
    trainable += [agent.policy.encoder.state_loc, agent.policy.encoder.state_scale]  # the state's scaling
    exported_floats = sum(v.numel() for v in export["state_dict"].values())
    assert exported_floats == sum(p.numel() for p in trainable)
    assert all(v.device.type == "cpu" for v in export["state_dict"].values())

    torch.manual_seed(99)  # a fresh policy with other initial weights, the same backbone weights
    fresh = load_policy(export, agent.cfg, backbone=agent.policy.backbone)
    observation = replay.sample(5).observation
    assert torch.equal(fresh.act(observation, deterministic=True), agent.act(observation, deterministic=True))
    torch.manual_seed(3)
    sampled = agent.act(observation)
    torch.manual_seed(3)
    assert torch.equal(fresh.act(observation), sampled)
    assert sampled.shape == (5, 3) and set(sampled[:, -1].tolist()) <= {0.0, 1.0, 2.0}


def test_state_only_critic_fits_terminal_rewards_without_a_backbone():
    cfg = tiny_config(image_keys=[], grasp_critic=False, action_dim=2, critic_lr=3e-3)
    torch.manual_seed(0)
    agent = SACAgent(cfg)
    assert agent.policy.backbone is None
    online = fill(cfg).online
    batch = online.gather(np.flatnonzero(online.valid)[:16])  # 16 distinct transitions
    batch.terminated = torch.ones(16)  # Q(s, a) = r exactly: a regression the critic must fit
    batch.reward = torch.linspace(-1, 1, 16)
    first = agent.update_critic(batch, *agent.encode(batch))["critic_loss"]
    for _ in range(150):
        last = agent.update_critic(batch, *agent.encode(batch))["critic_loss"]
    assert "grasp_critic_loss" not in agent.update(iter([batch, batch]))
    assert last < 0.05 * first, (first, last)


def test_ensemble_of_ten_takes_the_min_over_a_random_pair(replay):
    agent = make_agent(num_critics=10, num_subsample_critics=2)
    assert len(agent.critic.heads) == 10
    with torch.no_grad():
        for i, head in enumerate(agent.critic_target.heads):
            head[-1].bias.fill_(float(i))  # heads differ by a constant: the pair is identifiable
    batch = replay.sample(8).to(agent.device)
    batch.terminated = torch.zeros(8)
    _, next_embedding = agent.encode(batch)
    pairs = set()
    for seed in range(6):
        torch.manual_seed(seed)
        target = agent.td_target(batch, next_embedding)
        torch.manual_seed(seed)
        next_action, _ = agent.policy.actor(next_embedding)
        q = agent.critic_target(next_embedding, next_action)  # (10, B)
        v = (target - batch.reward) / agent.cfg.discount
        matching = [
            (i, j)
            for i in range(10)
            for j in range(i + 1, 10)
            if torch.allclose(torch.minimum(q[i], q[j]), v, atol=1e-5)
        ]
        assert matching, "the target is not the min over any pair of critics"
        assert not torch.allclose(q.min(dim=0).values, v, atol=1e-5) or (0, 1) in matching
        pairs.update(matching)
    assert len(pairs) > 1  # a fresh random pair per target, not a fixed one
    agent.update(replay.batches(agent.cfg.batch_size))
    with pytest.raises(ConfigError, match="num_subsample_critics"):
        tiny_config(num_critics=2, num_subsample_critics=3)


def test_drq_shift_moves_each_frame_independently_within_pad():
    cfg = tiny_config(image_size=16, pad=2)
    agent = make_agent(image_size=16, pad=2)
    batch = fill(cfg).sample(64)
    # Every pixel of a 16 x 16 frame has its own value: a shifted centre pixel reveals (dy, dx).
    unique = torch.arange(256, dtype=torch.int32).to(torch.uint8).view(1, 1, 16, 16).expand(64, 3, 16, 16)
    for obs in (batch.observation, batch.next_observation):
        for key in cfg.image_keys:
            obs[key] = unique.clone()
    shifted = agent.augment(batch)
    shifts = {}
    for name, obs in (("obs", shifted.observation), ("next", shifted.next_observation)):
        for key in cfg.image_keys:
            centre = obs[key][:, 0, 8, 8].long()
            dy, dx = centre // 16 - 8, centre % 16 - 8
            assert dy.abs().max() <= 2 and dx.abs().max() <= 2
            assert torch.equal(obs[key][:, 0], obs[key][:, 2])  # one shift per frame, all channels
            shifts[name, key] = torch.stack([dy, dx], 1)
    values = list(shifts.values())
    assert all((v != 0).any() for v in values)
    assert not torch.equal(values[0], values[1]) and not torch.equal(values[0], values[2])
    off = make_agent(image_size=16, augment=False).augment(batch)
    assert torch.equal(off.observation[cfg.image_keys[0]], batch.observation[cfg.image_keys[0]])


@pytest.mark.parametrize("log_std, direction", [(0.0, "falls"), (-4.0, "rises")])
def test_temperature_falls_above_the_entropy_target_and_rises_below(log_std, direction):
    cfg = tiny_config(image_keys=[], action_dim=3, grasp_critic=False, temperature_lr=1e-2)
    torch.manual_seed(0)
    agent = SACAgent(cfg)
    with torch.no_grad():
        agent.policy.actor.log_std.weight.zero_()
        agent.policy.actor.log_std.bias.fill_(log_std)
    embedding = torch.randn(64, agent.policy.encoder.output_dim)
    before = agent.temperature.item()
    metrics = agent.update_actor(embedding)
    above = metrics["entropy"] > agent.target_entropy
    assert above == (direction == "falls"), metrics
    after = agent.temperature.item()
    assert (after < before) if direction == "falls" else (after > before), (before, after)


def test_defaults_are_hil_serl_values():
    cfg = tiny_config()
    agent = SACAgent(cfg)
    assert agent.temperature.item() == pytest.approx(0.01)
    assert agent.target_entropy == -cfg.action_dim / 2
    assert (cfg.discount, cfg.tau, cfg.utd_ratio, cfg.num_critics, cfg.online_ratio, cfg.pad) == (
        0.97,
        0.005,
        2,
        2,
        0.5,
        4,
    )


def test_bfloat16_export_is_half_the_size_and_acts_close(replay):
    agent = make_agent()
    full = export_to_bytes(export_policy(agent.policy, version=0))
    half = export_policy(agent.policy, version=0, dtype=torch.bfloat16)
    assert len(export_to_bytes(half)) < 0.6 * len(full)
    fresh = load_policy(half, agent.cfg, backbone=agent.policy.backbone)
    observation = replay.sample(5).observation
    torch.testing.assert_close(
        fresh.act(observation, deterministic=True),
        agent.act(observation, deterministic=True),
        atol=0.05,
        rtol=0,
    )


def test_bc_weight_pulls_the_policy_toward_the_humans_actions(replay):
    """With bc_weight the actor's mean action moves toward the human's on the human's steps and the
    grasp critic ranks the human's gripper command first; without it neither is asked for."""

    def human_error(agent, batch):
        human = batch.is_intervention
        embedding = agent.encode(agent.augment(batch))[0].detach()
        mean, _ = agent.policy.actor.distribution(embedding[human])
        continuous = (torch.tanh(mean) - batch.action[human, :2]).pow(2).mean().item()
        grasp = agent.policy.grasp_critic(embedding[human]).argmax(dim=1)
        agreement = (grasp == gripper_index(batch.action[human, -1])).float().mean().item()
        return continuous, agreement

    batch = next(replay.batches(64))
    results = {}
    for weight in (0.0, 1.0):
        agent = make_agent(seed=1, bc_weight=weight, utd_ratio=1, image_keys=[])  # state only: fast
        before = human_error(agent, batch)
        for _ in range(150):
            metrics = agent.update(iter([batch]))
        results[weight] = (before, human_error(agent, batch))
        assert ("bc_loss" in metrics) == (weight > 0) and ("grasp_margin_loss" in metrics) == (weight > 0)
    (before, after), (_, plain) = results[1.0], results[0.0]
    assert after[0] < 0.5 * before[0] and after[0] < 0.5 * plain[0]
    assert after[1] == 1.0 and plain[1] < 1.0
