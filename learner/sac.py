"""The SAC agent of HIL-SERL with DrQ-v2 augmentation, in pure torch.

One ``update`` is the DrQ-v2 recipe, repeated for ``utd_ratio`` fresh batches::

    for each of utd_ratio batches:
        pixel batch (uint8 frames):     DrQ shift -> encode (backbone ONCE for obs + next obs, all cameras)
        feature batch (stored maps):    feature augmentation -> encode (no backbone)
        update_critic (critic ensemble + grasp critic, one optimizer step) -> soft_update(tau)
    on the last batch: update_actor -> update_temperature

Each step returns a metrics dict. The observation encoder heads are trained by the critic losses
only; the actor sees a detached embedding (the DrQ convention HIL-SERL follows). Target networks
are the critic heads (and grasp-critic heads); the next-observation embedding comes from the
online encoder without gradient, as in DrQ-v2.

    agent = SACAgent(cfg)
    metrics = agent.update(replay.batches(cfg.batch_size))
    action = agent.act(observation)               # (B, A), gripper last in {0, 1, 2} (learner.types.Gripper)
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from configs.learner import LearnerConfig
from learner.networks import CriticEnsemble, GraspCritic, Policy
from learner.types import GRASP_PENALTY, Batch, gripper_index
from vision.augment import random_shift
from vision.backbone import FrozenBackbone
from vision.features import augment_features


class SACAgent:
    """Networks, optimizers and the update of one learner."""

    def __init__(self, cfg: LearnerConfig, backbone: FrozenBackbone | None = None):
        self.cfg = cfg
        self.device = torch.device(cfg.device)
        if backbone is None and cfg.image_keys:
            backbone = FrozenBackbone.from_config(cfg)
        self.policy = Policy(cfg, backbone).to(self.device)
        embedding_dim = self.policy.encoder.output_dim
        self.critic = CriticEnsemble(
            embedding_dim, cfg.continuous_action_dim, cfg.hidden_dims, cfg.num_critics
        )
        self.critic = self.critic.to(self.device)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.grasp_target: GraspCritic | None = None
        if self.policy.grasp_critic is not None:
            self.grasp_target = copy.deepcopy(self.policy.grasp_critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.initial_temperature), device=self.device))
        self.target_entropy = cfg.resolved_target_entropy

        # One critic optimizer: the encoder heads learn from both the critic and the grasp-critic loss.
        critic_groups = [
            {"params": [*self.policy.encoder.parameters(), *self.critic.parameters()], "lr": cfg.critic_lr}
        ]
        if self.policy.grasp_critic is not None:
            critic_groups.append(
                {"params": list(self.policy.grasp_critic.parameters()), "lr": cfg.grasp_critic_lr}
            )
        self.critic_optimizer = torch.optim.Adam(critic_groups)
        self.actor_optimizer = torch.optim.Adam(self.policy.actor.parameters(), lr=cfg.actor_lr)
        self.temperature_optimizer = torch.optim.Adam([self.log_alpha], lr=cfg.temperature_lr)
        self.update_step = 0  # completed update() calls (actor steps)
        self.critic_step = 0  # completed critic steps (utd_ratio per update)
        self.policy.train()
        self.critic.train()

    @property
    def temperature(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # ------------------------------------------------------------------ recipe
    def update(self, batch_iter: Iterator[Batch]) -> dict[str, float]:
        """Pull exactly ``utd_ratio`` batches; critic step + soft update on each, actor on the last."""
        metrics: dict[str, float] = {}
        for i in range(self.cfg.utd_ratio):
            batch = next(batch_iter).to(self.device, non_blocking=True)
            batch.validate(self.cfg.image_keys, self.cfg.state_key, self.cfg.action_dim)
            batch = self.augment_features(batch) if batch.has_features else self.augment(batch)
            embedding, next_embedding = self.encode(batch)
            metrics |= self.update_critic(batch, embedding, next_embedding)
            self.soft_update()
            if i == self.cfg.utd_ratio - 1:
                metrics |= self.update_actor(embedding.detach(), batch)
        self.update_step += 1
        return metrics

    def augment(self, batch: Batch) -> Batch:
        """DrQ-v2 random shift of every camera frame, obs and next obs independently (on the device)."""
        if not (self.cfg.pixel_augment and self.cfg.image_keys):
            return batch
        keys = self.cfg.image_keys
        frames = torch.cat([batch.observation[k] for k in keys] + [batch.next_observation[k] for k in keys])
        shifted = random_shift(frames, self.cfg.pad).chunk(2 * len(keys))
        batch.observation = {**batch.observation, **dict(zip(keys, shifted[: len(keys)], strict=True))}
        batch.next_observation = {
            **batch.next_observation,
            **dict(zip(keys, shifted[len(keys) :], strict=True)),
        }
        return batch

    def augment_features(self, batch: Batch) -> Batch:
        """Stored feature maps -> float32, shifted per sample with ``feature_augment='map_shift'``."""
        keys, mode, pad = self.cfg.image_keys, self.cfg.feature_augment, self.cfg.feature_pad
        maps = torch.cat([batch.observation[k] for k in keys] + [batch.next_observation[k] for k in keys])
        maps = augment_features(maps, mode, pad).chunk(2 * len(keys))
        batch.observation = {**batch.observation, **dict(zip(keys, maps[: len(keys)], strict=True))}
        batch.next_observation = {**batch.next_observation, **dict(zip(keys, maps[len(keys) :], strict=True))}
        return batch

    def encode(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone once for obs + next obs of every camera (skipped for a feature batch); embedding
        with grad, next without."""
        keys = self.cfg.image_keys
        features: dict[str, torch.Tensor] = {}
        next_features: dict[str, torch.Tensor] = {}
        if keys and batch.has_features:
            features = {k: batch.observation[k].float() for k in keys}
            next_features = {k: batch.next_observation[k].float() for k in keys}
        elif keys:
            both = {k: torch.cat([batch.observation[k], batch.next_observation[k]]) for k in keys}
            maps = self.policy.features(both)
            for k in keys:
                features[k], next_features[k] = maps[k].chunk(2)
        state_key = self.cfg.state_key
        embedding = self.policy.encoder(features, batch.observation[state_key])
        with torch.no_grad():
            next_embedding = self.policy.encoder(next_features, batch.next_observation[state_key])
        return embedding, next_embedding

    def td_target(self, batch: Batch, next_embedding: torch.Tensor) -> torch.Tensor:
        """r + gamma * (1 - terminated) * min_i Q_target_i(s', a'), a' ~ pi(s'). Truncation bootstraps."""
        with torch.no_grad():
            next_action, next_log_prob = self.policy.actor(next_embedding)
            next_q = self.critic_target(next_embedding, next_action)  # (E, B)
            if self.cfg.num_subsample_critics is not None:
                chosen = torch.randperm(self.cfg.num_critics, device=self.device)[
                    : self.cfg.num_subsample_critics
                ]
                next_q = next_q[chosen]
            next_v = next_q.min(dim=0).values
            if self.cfg.backup_entropy:
                next_v = next_v - self.temperature * next_log_prob
            return batch.reward + self.cfg.discount * (1.0 - batch.terminated) * next_v

    def grasp_td_target(self, batch: Batch, next_embedding: torch.Tensor) -> torch.Tensor:
        """Double DQN: argmax by the online grasp critic, value by its target; reward + grasp penalty."""
        with torch.no_grad():
            best = self.policy.grasp_critic(next_embedding).argmax(dim=-1, keepdim=True)
            next_q = self.grasp_target(next_embedding).gather(1, best).squeeze(1)
            penalty = batch.complementary_info.get(GRASP_PENALTY)
            reward = batch.reward if penalty is None else batch.reward + penalty
            return reward + self.cfg.discount * (1.0 - batch.terminated) * next_q

    def update_critic(
        self, batch: Batch, embedding: torch.Tensor, next_embedding: torch.Tensor
    ) -> dict[str, float]:
        continuous = batch.action[:, : self.cfg.continuous_action_dim]
        target = self.td_target(batch, next_embedding)
        q = self.critic(embedding, continuous)  # (E, B)
        # Sum over critics of each critic's batch-mean squared error.
        critic_loss = F.mse_loss(q, target.expand_as(q), reduction="none").mean(dim=1).sum()
        loss = critic_loss
        metrics = {
            "critic_loss": critic_loss.item(),
            "q_mean": q.mean().item(),
            "td_target": target.mean().item(),
        }
        if self.policy.grasp_critic is not None:
            grasp_target = self.grasp_td_target(batch, next_embedding)
            taken = gripper_index(batch.action[:, -1]).unsqueeze(1)
            grasp_q = self.policy.grasp_critic(embedding).gather(1, taken).squeeze(1)
            grasp_loss = F.mse_loss(grasp_q, grasp_target)
            loss = loss + grasp_loss
            metrics["grasp_critic_loss"] = grasp_loss.item()
            if self.cfg.bc_weight > 0:
                margin = self._grasp_margin_loss(embedding, taken.squeeze(1), batch.is_intervention)
                loss = loss + self.cfg.bc_weight * margin
                metrics["grasp_margin_loss"] = margin.item()
        self.critic_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        metrics["critic_grad_norm"] = self._clip(self.critic_optimizer)
        self.critic_optimizer.step()
        self.critic_step += 1
        return metrics

    def _grasp_margin_loss(
        self, embedding: torch.Tensor, taken: torch.Tensor, human: torch.Tensor
    ) -> torch.Tensor:
        """DQfD's large-margin loss on the human's steps: max_a [Q(s, a) + margin * (a != a_human)] - Q(s, a_human)."""
        if not bool(human.any()):
            return embedding.new_zeros(())
        q = self.policy.grasp_critic(embedding[human])
        chosen = taken[human]
        margins = torch.full_like(q, self.cfg.bc_margin).scatter_(1, chosen.unsqueeze(1), 0.0)
        return ((q + margins).max(dim=1).values - q.gather(1, chosen.unsqueeze(1)).squeeze(1)).mean()

    def update_actor(self, embedding: torch.Tensor, batch: Batch | None = None) -> dict[str, float]:
        """Actor on a detached embedding, then the temperature toward the entropy target. With
        ``bc_weight``, plus the squared error of the mean action to the human's on the human's steps."""
        action, log_prob = self.policy.actor(embedding)
        self.critic.requires_grad_(False)  # the actor loss must not leave gradients on the critic
        try:
            q = self.critic(embedding, action).min(dim=0).values
        finally:
            self.critic.requires_grad_(True)
        actor_loss = (self.temperature.detach() * log_prob - q).mean()
        bc = {}
        if self.cfg.bc_weight > 0 and batch is not None and bool(batch.is_intervention.any()):
            human = batch.is_intervention
            mean, _ = self.policy.actor.distribution(embedding[human])
            target = batch.action[human, : self.cfg.continuous_action_dim].clamp(-1.0, 1.0)
            bc_loss = F.mse_loss(torch.tanh(mean), target)
            actor_loss = actor_loss + self.cfg.bc_weight * bc_loss
            bc = {"bc_loss": bc_loss.item()}
        self.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward()
        actor_grad_norm = self._clip(self.actor_optimizer)
        self.actor_optimizer.step()
        temperature_loss = -(self.temperature * (log_prob.detach() + self.target_entropy)).mean()
        self.temperature_optimizer.zero_grad(set_to_none=True)
        temperature_loss.backward()
        self.temperature_optimizer.step()
        return {
            **bc,
            "actor_loss": actor_loss.item(),
            "actor_grad_norm": actor_grad_norm,
            "entropy": -log_prob.mean().item(),
            "temperature_loss": temperature_loss.item(),
            "temperature": self.temperature.item(),
        }

    @torch.no_grad()
    def soft_update(self) -> None:
        """target <- target + tau * (online - target), for the critic heads and the grasp-critic heads."""
        pairs = [(self.critic_target, self.critic)]
        if self.grasp_target is not None:
            pairs.append((self.grasp_target, self.policy.grasp_critic))
        for target, online in pairs:
            torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), self.cfg.tau)

    def _clip(self, optimizer: torch.optim.Optimizer) -> float:
        params = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        max_norm = self.cfg.grad_clip_norm if self.cfg.grad_clip_norm is not None else float("inf")
        return float(torch.nn.utils.clip_grad_norm_(params, max_norm))

    # ------------------------------------------------------------------ acting
    def act(self, observation: dict[str, torch.Tensor], deterministic: bool = False) -> torch.Tensor:
        """(B, A) actions for batched observations; see ``Policy.act``."""
        return self.policy.act(observation, deterministic=deterministic)

    # ------------------------------------------------------------------ state
    def modules(self) -> dict[str, nn.Module]:
        """Everything with weights that a checkpoint must hold (the frozen backbone excluded)."""
        modules: dict[str, nn.Module] = {
            "encoder": self.policy.encoder,
            "actor": self.policy.actor,
            "critic": self.critic,
            "critic_target": self.critic_target,
        }
        if self.policy.grasp_critic is not None:
            modules["grasp_critic"] = self.policy.grasp_critic
            modules["grasp_target"] = self.grasp_target
        return modules

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {
            "critic": self.critic_optimizer,
            "actor": self.actor_optimizer,
            "temperature": self.temperature_optimizer,
        }
