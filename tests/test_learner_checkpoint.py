"""Learner checkpoints: round trip of every piece of state, and a resumed run that is bitwise the same."""

from __future__ import annotations

import pytest
import torch

from configs.errors import UserError
from learner.checkpoint import load_checkpoint, save_checkpoint
from learner.replay import MixedReplay
from learner.sac import SACAgent
from tests.learner_fixtures import fill, single_thread_torch, tiny_config  # noqa: F401 (autouse fixture)
from vision.backbone import FrozenBackbone


def snapshot(agent: SACAgent) -> dict[str, torch.Tensor]:
    tensors = {
        f"{name}.{k}": v.clone() for name, m in agent.modules().items() for k, v in m.state_dict().items()
    }
    tensors["log_alpha"] = agent.log_alpha.detach().clone()
    for name, optimizer in agent.optimizers().items():
        for index, state in optimizer.state_dict()["state"].items():
            for key, value in state.items():
                tensors[f"opt.{name}.{index}.{key}"] = torch.as_tensor(value).clone()
    return tensors


def assert_bitwise_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, different[:5]


def test_checkpoint_round_trip_restores_networks_optimizers_temperature_and_counters(tmp_path):
    cfg = tiny_config()
    replay = fill(cfg)
    torch.manual_seed(0)
    agent = SACAgent(cfg)
    batches = replay.batches(cfg.batch_size)
    for _ in range(2):
        agent.update(batches)
    assert agent.temperature.item() != pytest.approx(cfg.initial_temperature, abs=0, rel=1e-9)
    path = save_checkpoint(agent, tmp_path / "ckpt")
    assert sorted(p.name for p in path.iterdir()) == [
        "model.safetensors",
        "optimizers.json",
        "optimizers.safetensors",
        "rng.safetensors",
        "state.json",
    ]  # no pickle: every tensor is safetensors, the rest JSON
    torch.manual_seed(123)  # a fresh agent with other initial weights, the same backbone
    fresh = SACAgent(cfg, backbone=agent.policy.backbone)
    load_checkpoint(fresh, tmp_path / "ckpt")
    assert_bitwise_equal(snapshot(fresh), snapshot(agent))
    assert (fresh.update_step, fresh.critic_step) == (2, 4)
    assert fresh.temperature.item() == agent.temperature.item()


def test_resumed_learner_makes_exactly_the_uninterrupted_updates(tmp_path):
    cfg = tiny_config()
    torch.manual_seed(0)
    agent = SACAgent(cfg)
    replay = fill(cfg)
    batches = replay.batches(cfg.batch_size)
    agent.update(batches)
    save_checkpoint(agent, tmp_path / "ckpt")
    replay.save(tmp_path / "replay")
    for _ in range(2):
        agent.update(batches)
    uninterrupted = snapshot(agent)

    torch.manual_seed(7)
    resumed = SACAgent(cfg, backbone=FrozenBackbone(agent.policy.backbone.net, cfg.image_size))
    torch.rand(5)  # consume some randomness: the checkpoint must restore the generator
    load_checkpoint(resumed, tmp_path / "ckpt")
    resumed_batches = MixedReplay.load(tmp_path / "replay").batches(cfg.batch_size)
    for _ in range(2):
        resumed.update(resumed_batches)
    assert_bitwise_equal(snapshot(resumed), uninterrupted)


def test_latest_pointer_and_mismatched_backbone(tmp_path):
    cfg = tiny_config()
    torch.manual_seed(0)
    agent = SACAgent(cfg)
    first = save_checkpoint(agent, tmp_path / "ckpt")
    agent.update_step = 5
    second = save_checkpoint(agent, tmp_path / "ckpt")
    assert (tmp_path / "ckpt" / "latest").read_text() == second.name != first.name
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [first.name, second.name, "latest"]
    other = SACAgent(cfg)
    with torch.no_grad():  # another backbone (random backbones are seeded, so change its weights)
        next(other.policy.backbone.parameters()).add_(1.0)
    with pytest.raises(UserError, match="ResNet-10 weights"):
        load_checkpoint(other, tmp_path / "ckpt")
    with pytest.raises(UserError, match="no learner checkpoint"):
        load_checkpoint(agent, tmp_path / "missing")
