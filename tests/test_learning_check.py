"""The learning check: seeded SAC must learn, and must NOT when the algorithm is broken.

Figures (seed 0, shared 2-core box; table in ``lab/AUGMENTATION.md``, "Learning check"):

    state  working 1.02; flipped TD sign 0.65 FAIL; frozen target 0.38 FAIL;
           flipped temperature 1.06, discount 0.5 1.02, max over critics 1.06 (all pass: not caught)
    goal   working 1.02 (value error 0.39, entropy gap -0.45); flipped temperature FAIL (entropy gap
           -7.3); discount 0.5 FAIL (value error 0.76); max over critics passes (value error 0.04)
    image  working 1.01

Max over the critics is caught by the fast unit test ``test_sac.py::test_td_target_masks_...``
(the target must be the min), a flipped temperature by ``test_temperature_falls_above_...``.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from lab.check import passed, run_check

VARIANTS = {
    "state": dict(variant="state"),
    "goal": dict(variant="goal", env_steps=3000, warmup_steps=500),
    "image": dict(variant="image", env_steps=2000, warmup_steps=400),
}


def flip_td_sign(agent):
    correct = agent.td_target
    # r - gamma * (1 - terminated) * V(s') instead of r + ...
    agent.td_target = lambda batch, next_embedding: 2 * batch.reward - correct(batch, next_embedding)


def freeze_target(agent):
    agent.soft_update = lambda: None


def flip_temperature_sign(agent):
    # The temperature loss with its sign flipped: alpha grows while the entropy is above target.
    agent.log_alpha.register_hook(lambda grad: -grad)


def discount_half(agent):
    agent.cfg = dataclasses.replace(agent.cfg, discount=0.5)


def max_over_critics(agent):
    target = agent.critic_target
    forward = target.forward
    # Every row is the max over the heads, so td_target's min over rows is the max.
    target.forward = lambda *args: (
        forward(*args).max(dim=0, keepdim=True).values.expand(len(target.heads), -1)
    )


IMAGE_CAUGHT: list[str] = []

BREAKAGES = {
    "flipped-td-sign": flip_td_sign,
    "frozen-target": freeze_target,
    "flipped-temperature-sign": flip_temperature_sign,
    "discount-0.5": discount_half,
    "max-over-critics": max_over_critics,
}

# Which breakages each variant catches (measured; see the figures above).
CAUGHT = {
    "state": ["flipped-td-sign", "frozen-target"],
    "goal": ["flipped-temperature-sign", "discount-0.5"],
    "image": IMAGE_CAUGHT,
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sac_learns_every_variant(variant):
    result = run_check(seed=0, **VARIANTS[variant])
    assert passed(result), result


@pytest.mark.slow
@pytest.mark.parametrize(
    "variant, breakage", [(v, b) for v, caught in CAUGHT.items() for b in caught], ids=lambda x: str(x)
)
def test_the_check_fails_when_the_algorithm_is_broken(variant, breakage):
    result = run_check(seed=0, agent_hook=BREAKAGES[breakage], **VARIANTS[variant])
    assert not passed(result), result


def test_the_breakages_break_what_they_claim():
    """Cheap guards that each hook really changes the algorithm (so a passing check means something)."""
    from learner.sac import SACAgent
    from tests.learner_fixtures import fill, tiny_config

    cfg = tiny_config(image_keys=[], action_dim=2, num_critics=3)
    torch.manual_seed(0)
    agent = SACAgent(cfg)
    batch = fill(cfg).sample(8)
    _, next_embedding = agent.encode(batch)
    max_over_critics(agent)
    q = agent.critic_target(next_embedding, torch.zeros(8, 1))
    assert torch.equal(q.min(dim=0).values, q.max(dim=0).values)
    discount_half(agent)
    assert agent.cfg.discount == 0.5
