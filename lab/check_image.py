"""The learning check's tiny-image variant: feature replay, UTD 2, grasp critic, demos mixed in.

The double integrator of ``lab.check`` with a camera and a gripper. The frame (3 x 64 x 64)
draws the mass as a bright bar at its position; the state is (x, v, gripper closed). The gripper
must be closed near the target (|x| < NEAR) and open away from it: each step costs
-(|x| + MISMATCH * [gripper wrong]); a change costs the grasp penalty. Gripper commands are
LeRobot's (``Gripper``: 0 close, 1 stay, 2 open), so the demos teach the grasp critic the stored
convention. The demo buffer holds DEMO_EPISODES episodes of the expert (PD + gripper rule) and
batches are mixed 50/50 online/demo (RLPD). The replay stores backbone features (feature_cache).

The score is normalized like the state check: 0 is the random policy, 1 the expert.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from configs.learner import LearnerConfig
from lab.check import DT, HORIZON, CheckResult, DoubleIntegrator, pd_controller
from learner.replay import MixedReplay
from learner.sac import SACAgent
from learner.types import GRASP_PENALTY, Gripper, Transition

CAMERA = "observation.images.front"
STATE = "observation.state"
SIZE = 64
NEAR = 0.3
MISMATCH = 0.5
PENALTY = -0.02
DEMO_EPISODES = 5


class GripperIntegrator:
    """DoubleIntegrator + a gripper + a camera frame; actions (a in [-1, 1], Gripper command)."""

    def __init__(self, rng: np.random.Generator, image_only: bool = False):
        self.body = DoubleIntegrator(rng)
        self.closed = 0.0
        self.image_only = image_only  # the state hides x and v: only the frame shows them

    def observe(self) -> dict[str, np.ndarray]:
        x, v = self.body.observe()
        frame = np.zeros((3, SIZE, SIZE), dtype=np.uint8)
        column = int(np.clip((x + 2.0) / 4.0 * (SIZE - 1), 0, SIZE - 1))
        frame[:, :, max(column - 2, 0) : column + 3] = 255
        frame[1, : int(8 * (1 + np.clip(v, -1, 1))) + 1, :4] = 200  # velocity gauge
        if self.image_only:
            x = v = 0.0
        return {CAMERA: frame, STATE: np.array([x, v, self.closed], dtype=np.float32)}

    def reset(self, start: float | None = None) -> dict[str, np.ndarray]:
        self.body.reset(start)
        self.closed = 0.0
        return self.observe()

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, float]:
        """-> (observation, reward, truncated, grasp penalty)."""
        _, reward, _, truncated = self.body.step(float(action[0]))
        command = int(np.clip(np.round(action[-1]), Gripper.CLOSE, Gripper.OPEN))
        before = self.closed
        if command == Gripper.CLOSE:
            self.closed = 1.0
        elif command == Gripper.OPEN:
            self.closed = 0.0
        wanted = 1.0 if abs(self.body.x) < NEAR else 0.0
        reward -= MISMATCH * float(self.closed != wanted)
        return self.observe(), reward, truncated, PENALTY * float(self.closed != before)


def expert_for(env: GripperIntegrator):
    """The expert reads the true state from the env (the observation may hide it)."""
    return lambda observation: expert(
        {STATE: np.array([env.body.x, env.body.v, env.closed], dtype=np.float32)}
    )


def expert(observation: dict[str, np.ndarray]) -> np.ndarray:
    x, v, closed = observation[STATE]
    command = Gripper.STAY
    if abs(x + DT * v) < NEAR and not closed:
        command = Gripper.CLOSE
    elif abs(x + DT * v) >= NEAR and closed:
        command = Gripper.OPEN
    return np.array([pd_controller(np.array([x, v])), float(command)], dtype=np.float32)


def noisy_expert(action: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    action = action.copy()
    action[0] = np.clip(action[0] + rng.normal(0.0, 0.1), -1.0, 1.0)
    return action


def image_check_config(**overrides) -> LearnerConfig:
    values = dict(
        image_keys=[CAMERA],
        image_size=SIZE,
        state_dim=3,
        action_dim=2,
        grasp_critic=True,
        feature_cache=True,
        batch_size=64,
        utd_ratio=2,
        hidden_dims=[64, 64],
        latent_dim=16,
        state_latent_dim=32,
        image_embedding_pooling_dim=2,
        critic_lr=1e-3,
        actor_lr=1e-3,
        temperature_lr=1e-2,  # fast enough that a flipped temperature loss shows within the budget
        grasp_critic_lr=1e-3,
        online_capacity=5000,
        demo_capacity=2000,
        vision_model_name="/nonexistent/resnet10",
        allow_random_vision_weights=True,
    )
    values.update(overrides)
    return LearnerConfig(**values)


def evaluate(policy, starts: list[float], image_only: bool = False, expert_policy: bool = False) -> float:
    """Mean return over fixed starts, all episodes in lockstep; ``policy`` maps a list of
    observations to (N, 2) actions (one batched backbone call per step)."""
    envs = [GripperIntegrator(np.random.default_rng(0), image_only) for _ in starts]
    if expert_policy:
        experts = [expert_for(env) for env in envs]
        policy = lambda observations: np.stack([e(o) for e, o in zip(experts, observations, strict=True)])  # noqa: E731
    observations = [env.reset(start) for env, start in zip(envs, starts, strict=True)]
    totals = np.zeros(len(envs))
    for _ in range(HORIZON):  # no termination in this variant: every episode lasts HORIZON steps
        actions = policy(observations)
        for i, env in enumerate(envs):
            observations[i], reward, _, penalty = env.step(actions[i])
            totals[i] += reward + penalty
    return float(totals.mean())


def batched(policy):
    return lambda observations: np.stack([policy(o) for o in observations])


def rollout(env: GripperIntegrator, policy) -> list[Transition]:
    observation, done, steps = env.reset(), False, []
    while not done:
        action = policy(observation)
        following, reward, done, penalty = env.step(action)
        steps.append(
            Transition(observation, action, reward, following, False, done, True, {GRASP_PENALTY: penalty})
        )
        observation = following
    return steps


def run_image_check(
    env_steps: int,
    warmup_steps: int,
    seed: int,
    cfg: LearnerConfig | None,
    agent_hook,
    image_only: bool = False,
) -> CheckResult:
    started = time.perf_counter()
    cfg = cfg or image_check_config(seed=seed)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    agent = SACAgent(cfg)
    if agent_hook is not None:
        agent_hook(agent)
    replay = MixedReplay.from_config(cfg, backbone=agent.policy.backbone)
    env = GripperIntegrator(rng, image_only)
    noisy = np.random.default_rng(seed + 2)
    demo_expert = expert_for(env)
    for _ in range(DEMO_EPISODES):
        replay.demo.extend(rollout(env, lambda o: noisy_expert(demo_expert(o), noisy)))

    def act_all(observations: list[dict[str, np.ndarray]], deterministic: bool = False) -> np.ndarray:
        # Scored as it acts (sampled continuous action, greedy gripper): see lab.check.
        stacked = {k: torch.from_numpy(np.stack([o[k] for o in observations])) for k in observations[0]}
        return agent.act(stacked, deterministic=deterministic).numpy()

    starts = list(np.random.default_rng(1234).choice([-1, 1], 16) * np.linspace(0.5, 1.0, 16))
    random_actions = np.random.default_rng(seed + 1)

    def random_policy(_):
        return np.array([random_actions.uniform(-1, 1), random_actions.integers(0, 3)], dtype=np.float32)

    random_return = evaluate(batched(random_policy), starts, image_only)
    expert_return = evaluate(None, starts, image_only, expert_policy=True)
    initial_return = evaluate(act_all, starts, image_only)

    observation = env.reset()
    batches = replay.batches(cfg.batch_size)
    updates = 0
    for step in range(env_steps):
        action = random_policy(observation) if step < warmup_steps else act_all([observation], False)[0]
        following, reward, truncated, penalty = env.step(action)
        replay.add(
            Transition(
                observation, action, reward, following, False, truncated, False, {GRASP_PENALTY: penalty}
            )
        )
        observation = env.reset() if truncated else following
        if step >= warmup_steps:
            agent.update(batches)
            updates += 1
    final_return = evaluate(act_all, starts, image_only)
    score = (final_return - random_return) / (expert_return - random_return)
    return CheckResult(
        random_return,
        expert_return,
        initial_return,
        final_return,
        score,
        env_steps,
        updates,
        time.perf_counter() - started,
    )
