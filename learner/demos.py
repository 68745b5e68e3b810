"""Fill a replay buffer with the episodes of a LeRobotDataset, one episode at a time.

Only one decoded episode is held in memory (as uint8); video frames of an episode are decoded in
one call instead of once per frame, and each episode goes to the buffer in one ``extend`` (a
feature replay runs its backbone on the whole episode in batches; the transitions are views). The dataset is
opened read-only with an explicit ``root`` and the pyav decoder.

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

logger = logging.getLogger(__name__)

PENALTY_COLUMNS = ("complementary_info.grasp_penalty", "complementary_info.discrete_penalty")
TRUNCATED_COLUMN = "complementary_info.truncated"


def open_dataset(root: str | Path, repo_id: str | None = None):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    if not (root / "meta" / "info.json").is_file():
        raise UserError(
            f"{root} is not a LeRobot dataset (no meta/info.json); pass the dataset's root folder"
        )
    return LeRobotDataset(repo_id or f"local/{root.name}", root=root, video_backend="pyav")


def _to_uint8(images: torch.Tensor, image_shape: tuple[int, int, int]) -> np.ndarray:
    """(T, 3, H, W) float in [0, 1] -> (T, *image_shape) uint8, resized when the sizes differ."""
    if tuple(images.shape[-2:]) != tuple(image_shape[-2:]):
        images = F.interpolate(images.float(), size=image_shape[-2:], mode="bilinear", antialias=True)
    return images.mul(255.0).round_().clamp_(0, 255).to(torch.uint8).numpy()


def _frame(images: dict[str, np.ndarray], state: np.ndarray, state_key: str, i: int) -> dict[str, np.ndarray]:
    return {**{key: frames[i] for key, frames in images.items()}, state_key: state[i]}


def _column(rows: dict, key: str) -> np.ndarray:
    return torch.stack([torch.as_tensor(v) for v in rows[key]]).numpy()


def import_lerobot_dataset(buffer: ReplayBuffer, root: str | Path, repo_id: str | None = None) -> int:
    """Add every episode of the dataset at ``root`` to ``buffer``; returns the number of transitions."""
    dataset = open_dataset(root, repo_id)
    features = dataset.meta.features
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
    video_keys = [k for k in buffer.image_keys if k in dataset.meta.video_keys]
    dataset._ensure_hf_dataset_loaded()
    added = 0
    for episode in range(dataset.meta.total_episodes):
        meta = dataset.meta.episodes[episode]
        start, stop = int(meta["dataset_from_index"]), int(meta["dataset_to_index"])
        if stop - start < 2:
            logger.warning(
                "episode %d has %d frame(s): nothing to learn from, skipped", episode, stop - start
            )
            continue
        rows = dataset.hf_dataset[start:stop]
        images = {}
        if video_keys:
            timestamps = [float(t) for t in _column(rows, "timestamp").reshape(-1)]
            # One decode per camera per episode (LeRobotDataset.__getitem__ would decode per frame).
            decoded = dataset._query_videos({key: timestamps for key in video_keys}, episode)
            images |= {key: _to_uint8(decoded[key], buffer.image_shape) for key in video_keys}
        for key in buffer.image_keys:
            if key not in images:
                images[key] = _to_uint8(torch.stack(list(rows[key])), buffer.image_shape)
        state = _column(rows, buffer.state_key).astype(np.float32)
        action = _column(rows, "action").astype(np.float32)
        reward = _column(rows, "next.reward").astype(np.float32).reshape(-1)
        done = _column(rows, "next.done").astype(bool).reshape(-1) if "next.done" in features else None
        penalty = _column(rows, penalty_column).astype(np.float32).reshape(-1) if penalty_column else None
        intervention = (
            _column(rows, "complementary_info.is_intervention").astype(bool).reshape(-1)
            if "complementary_info.is_intervention" in features
            else None
        )
        truncated = (
            _column(rows, TRUNCATED_COLUMN).astype(bool).reshape(-1) if TRUNCATED_COLUMN in features else None
        )
        length = stop - start
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
    logger.info("imported %d transitions from %d episodes of %s", added, dataset.meta.total_episodes, root)
    return added
