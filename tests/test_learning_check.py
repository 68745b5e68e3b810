"""The learning check: seeded SAC must learn the double integrator, and must NOT when the algorithm is broken.

Figures (2-core shared box, seed 0, 2400 env steps, 2000 updates): random policy -34.9, PD
controller -6.2, untrained actor -12.7; working agent -5.5 (score 1.02); TD target with a flipped
sign -16.0 (score 0.66); target network never updated -28.2 (score 0.24).
"""

from __future__ import annotations

import pytest

from learner.check import run_check

MIN_SCORE = 0.9  # of the way from the random policy to the PD controller
MIN_IMPROVEMENT = 4.0  # return gained over the untrained actor


@pytest.mark.slow
def test_sac_learns_the_double_integrator():
    result = run_check(seed=0)
    assert result.score >= MIN_SCORE, result
    assert result.final_return - result.initial_return >= MIN_IMPROVEMENT, result


def flip_td_sign(agent):
    correct = agent.td_target
    # r - gamma * (1 - terminated) * V(s') instead of r + ...
    agent.td_target = lambda batch, next_embedding: 2 * batch.reward - correct(batch, next_embedding)


def freeze_target(agent):
    agent.soft_update = lambda: None


@pytest.mark.slow
@pytest.mark.parametrize("breakage", [flip_td_sign, freeze_target], ids=["flipped-td-sign", "frozen-target"])
def test_the_check_fails_when_the_algorithm_is_broken(breakage):
    result = run_check(seed=0, agent_hook=breakage)
    passed = result.score >= MIN_SCORE and result.final_return - result.initial_return >= MIN_IMPROVEMENT
    assert not passed, result
