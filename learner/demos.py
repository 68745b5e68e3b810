"""Fill a replay buffer with the episodes of a LeRobotDataset, one episode at a time.

Only one decoded episode is held in memory (as uint8); video frames of an episode are decoded in
one call instead of once per frame, and each episode goes to the buffer in one ``extend`` (a
feature replay runs its backbone on the whole episode in batches; the transitions are views). The dataset
is read with the project's one local-only reader (``reward.dataset_source``): never the hub.

    import_lerobot_dataset(buffer, root="data/demos")

Mapping: ``next.reward`` is the reward; the last frame of an episode becomes that episode's final
observation. If ``next.done`` marks it and ``complementary_info.truncated`` (written by our
recorder on a time-limit end) does not, the episode ended in a termination: its last step is a
transition whose bootstrap is masked. With the truncated flag set, or without ``next.done``, the
recording just stopped there, which is a truncation (bootstrap from that final frame). Datasets
without the truncated column read ``next.done`` as termination.
``complementary_info.discrete_penalty`` (LeRobot's name) or ``complementary_info.grasp_penalty``
fill the grasp penalty; ``complementary_info.is_intervention`` the flag (demos default to True:
a human drove them).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from configs.errors import UserError
from learner.replay import ReplayBuffer
from learner.types import GRASP_PENALTY, Transition
from reward.dataset_source import SourceDataset

logger = logging.getLogger(__name__)

PENALTY_COLUMNS = ("complementary_info.grasp_penalty", "complementary_info.discrete_penalty")
TRUNCATED_COLUMN = "complementary_info.truncated"
INTERVENTION_COLUMN = "complementary_info.is_intervention"


def _to_uint8(frames: np.ndarray, image_shape: tuple[int, int, int]) -> np.ndarray:
    """(T, H, W, 3) uint8 (the reader's layout) -> (T, *image_shape) uint8, resized when the sizes differ."""
    images = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if tuple(images.shape[-2:]) != tuple(image_shape[-2:]):
        resized = F.interpolate(images.float(), size=image_shape[-2:], mode="bilinear", antialias=True)
        images = resized.round_().clamp_(0, 255).to(torch.uint8)
    return images.contiguous().numpy()


def _frame(images: dict[str, np.ndarray], state: np.ndarray, state_key: str, i: int) -> dict[str, np.ndarray]:
    return {**{key: frames[i] for key, frames in images.items()}, state_key: state[i]}


def _flags(columns: dict[str, np.ndarray], name: str) -> np.ndarray | None:
    return columns[name].astype(bool).reshape(-1) if name in columns else None


def import_lerobot_dataset(buffer: ReplayBuffer, root: str | Path, repo_id: str | None = None) -> int:
    """Add every episode of the dataset at ``root`` to ``buffer``; returns the number of transitions.

    ``repo_id`` is accepted for LeRobot-style call sites and not used: the data is read from ``root``.
    """
    source = SourceDataset(root)
    features = source.features
    missing = [
        k for k in [*buffer.image_keys, buffer.state_key, "action", "next.reward"] if k not in features
    ]
    if missing:
        raise UserError(
            f"dataset {root} lacks {missing}; label rewards first (next.reward) or set learner image_keys/state_key "
            f"to its keys {sorted(features)}"
        )
    if tuple(features["action"]["shape"]) != (buffer.action_dim,):
        raise UserError(
            f"dataset actions have shape {features['action']['shape']}, the learner expects ({buffer.action_dim},); "
            "set action_dim to match"
        )
    if tuple(features[buffer.state_key]["shape"]) != (buffer.state_dim,):
        raise UserError(
            f"dataset {buffer.state_key} has shape {features[buffer.state_key]['shape']}, the learner expects "
            f"({buffer.state_dim},); set state_dim to match"
        )
    penalty_column = next((c for c in PENALTY_COLUMNS if c in features), None)
    optional = [
        c for c in ("next.done", TRUNCATED_COLUMN, INTERVENTION_COLUMN, penalty_column) if c in features
    ]
    columns = [buffer.state_key, "action", "next.reward", *optional]
    added = episodes = 0
    for episode in source.iter_episodes(buffer.image_keys, columns):
        episodes += 1
        length = len(episode)
        if length < 2:
            logger.warning(
                "episode %d has %d frame(s): nothing to learn from, skipped", episode.index, length
            )
            continue
        cols = episode.columns
        images = {key: _to_uint8(episode.frames[key], buffer.image_shape) for key in buffer.image_keys}
        state = cols[buffer.state_key].astype(np.float32).reshape(length, -1)
        action = cols["action"].astype(np.float32).reshape(length, -1)
        reward = cols["next.reward"].astype(np.float32).reshape(-1)
        done, truncated, intervention = (
            _flags(cols, name) for name in ("next.done", TRUNCATED_COLUMN, INTERVENTION_COLUMN)
        )
        penalty = cols[penalty_column].astype(np.float32).reshape(-1) if penalty_column else None
        terminated_at_end = done is not None and bool(done[-1])
        if truncated is not None and bool(truncated[-1]):
            terminated_at_end = False  # a time-limit end: bootstrap from the final frame
        # With a terminal last frame, its own step is a transition too (its next obs is masked out);
        # otherwise the last frame is only the final observation of the step before it.
        steps = length if terminated_at_end else length - 1

        transitions = []
        for i in range(steps):
            last = i == steps - 1
            transitions.append(
                Transition(
                    observation=_frame(images, state, buffer.state_key, i),
                    action=action[i],
                    reward=float(reward[i]),
                    next_observation=_frame(images, state, buffer.state_key, min(i + 1, length - 1)),
                    terminated=last and terminated_at_end,
                    truncated=last and not terminated_at_end,
                    is_intervention=True if intervention is None else bool(intervention[i]),
                    complementary_info={GRASP_PENALTY: float(penalty[i])} if penalty is not None else {},
                )
            )
        buffer.extend(transitions)
        added += len(transitions)
    logger.info("imported %d transitions from %d episodes of %s", added, episodes, root)
    return added


STATE_SCALE_FLOOR = 0.01
"""An entry's scale is at least this share of its mean magnitude: an entry that never moves in the
demos (the SO-101's wrist roll) keeps a unit-sized scale, not one that blows its jitter up."""


def state_statistics(root: str | Path, state_key: str) -> tuple[list[float], list[float]]:
    """(loc, scale) of the state vector over every frame of the dataset at ``root``: its mean and
    standard deviation, the scale floored at ``STATE_SCALE_FLOOR`` x |mean| (and 1e-6)."""
    source = SourceDataset(root)
    if state_key not in source.features:
        raise UserError(f"dataset {root} has no '{state_key}' column: set learner.normalize_state=false")
    states = np.concatenate(
        [source.episode_columns(e, [state_key])[state_key] for e in source.episodes]
    ).astype(np.float64)
    loc = states.mean(axis=0)
    scale = np.maximum(states.std(axis=0), np.maximum(STATE_SCALE_FLOOR * np.abs(loc), 1e-6))
    return loc.tolist(), scale.tolist()
