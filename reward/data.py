"""Labeled frames for the reward classifier, read from a local LeRobot dataset.

    frames = load_labeled_frames(cfg.dataset, cfg.policy, reward_key="next.reward")
    train_eps, val_eps = episode_split(frames.episodes, val_fraction=0.2, seed=1000)
    sampler = BalancedBatchSampler(frames.labels, frames.indices_of(train_eps), batch_size=32, seed=1)

The dataset is read with the project's one reader (`reward.dataset_source.iter_episodes`: an
explicit local root, PyAV, never the hub: an implicit root can let a hub copy replace local
data). Every frame of every used camera is decoded once into memory as uint8, episode by episode,
so training never touches the video files again. Nothing here writes anywhere; all the user errors
(missing camera, no reward column, one class, a damaged file) are one-line `UserError`s raised
before a training run creates its output folder. ``flags`` name the command's own options in
those messages (train-reward: ``--dataset.root``; eval-reward: ``--dataset``).
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from configs.common import FeatureSpec
from configs.dataset import DatasetConfig
from configs.errors import UserError
from configs.reward import RewardClassifierConfig

logger = logging.getLogger(__name__)


@dataclass
class LabeledFrames:
    """Every selected frame in memory: camera images (uint8) and labels."""

    camera_keys: list[str]
    images: dict[str, torch.Tensor]  # key -> (N, 3, H, W) uint8
    labels: torch.Tensor  # (N,) float32, the reward column
    episode_index: torch.Tensor  # (N,) int64
    frame_index: torch.Tensor  # (N,) int64
    fingerprint: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def episodes(self) -> list[int]:
        return sorted({int(e) for e in self.episode_index.tolist()})

    def indices_of(self, episodes: list[int]) -> torch.Tensor:
        """Frame indices (into this object) of the given episodes."""
        mask = torch.isin(self.episode_index, torch.tensor(sorted(episodes), dtype=torch.int64))
        return torch.nonzero(mask).flatten()

    def image_shape(self, key: str) -> list[int]:
        return list(self.images[key].shape[1:])


TRAIN_FLAGS = {"root": "--dataset.root", "episodes": "--dataset.episodes", "reward_key": "--reward_key"}


def check_dataset_root(dataset: DatasetConfig, flags: dict[str, str] = TRAIN_FLAGS) -> Path:
    """The dataset root must be given and hold a LeRobot dataset (a readable meta/info.json)."""
    from reward.dataset import read_info

    if not dataset.root:
        raise UserError(f"no dataset given: pass {flags['root']}=/path/to/dataset (the folder with meta/)")
    root = Path(dataset.root).expanduser()
    if not root.is_dir() or not (root / "meta" / "info.json").is_file():
        raise UserError(
            f"{root} is not a LeRobot dataset (no meta/info.json): pass the dataset folder as {flags['root']}"
        )
    read_info(root)
    return root.resolve()


def resolve_input_features(
    policy: RewardClassifierConfig, dataset_features: dict[str, dict]
) -> dict[str, FeatureSpec]:
    """The VISUAL input features to use, checked against the dataset and ``num_cameras``.

    Empty ``input_features`` means "every camera of the dataset". A configured shape that differs
    from the data is replaced by the data's shape (with a warning): the model is sized from the data.
    """
    cameras = {k: ft for k, ft in dataset_features.items() if ft.get("dtype") in ("video", "image")}
    configured = {k: v for k, v in policy.input_features.items() if _is_visual(v)}
    if not configured:
        keys = list(cameras)
    else:
        keys = list(configured)
        missing = [k for k in keys if k not in cameras]
        if missing:
            raise UserError(
                f"image key '{missing[0]}' of policy.input_features is not in the dataset "
                f"(its cameras: {', '.join(cameras) or 'none'}); fix policy.input_features"
            )
    if not keys:
        raise UserError("the dataset has no camera (image or video) features; record one with cameras")
    if policy.num_cameras != len(keys):
        raise UserError(
            f"policy.num_cameras is {policy.num_cameras} but {len(keys)} camera(s) are used ({', '.join(keys)}); "
            f"set --policy.num_cameras={len(keys)} or list the cameras in policy.input_features"
        )
    features = {}
    for key in keys:
        h, w, c = _hwc(cameras[key])
        shape = [c, h, w]
        if key in configured and configured[key].shape and list(configured[key].shape) != shape:
            logger.warning(
                "policy.input_features[%s].shape is %s but the dataset stores %s; using the dataset's shape",
                key,
                configured[key].shape,
                shape,
            )
        features[key] = FeatureSpec(type="VISUAL", shape=shape)
    return features


def _is_visual(spec: FeatureSpec | dict) -> bool:
    kind = spec.type if isinstance(spec, FeatureSpec) else spec.get("type")
    return str(kind).upper() == "VISUAL"


def _hwc(feature: dict) -> tuple[int, int, int]:
    shape = list(feature["shape"])
    names = feature.get("names") or []
    if len(shape) == 3 and list(names)[:1] == ["channels"]:
        return shape[1], shape[2], shape[0]
    return shape[0], shape[1], shape[2]


def check_labels(labels: torch.Tensor, num_classes: int, reward_key: str) -> None:
    """Labels must be class indices and both (all) classes must be present."""
    values = sorted({float(v) for v in torch.unique(labels).tolist()})
    bad = [v for v in values if v != int(v) or not 0 <= v < num_classes]
    if bad:
        raise UserError(
            f"{reward_key} holds {bad[0]}, not a class index in [0, {num_classes - 1}]; "
            f"relabel the dataset (hilserl label) or set policy.num_classes"
        )
    if len(values) < 2:
        raise UserError(
            f"only one class ({reward_key} = {values[0] if values else 'none'}) in the selected frames; "
            "label success frames (hilserl label) so both classes are present, or train on these frames "
            "together with a labeled set (--dataset.root=LABELED --dataset.extra_roots='[THIS]')"
        )


@dataclass
class _Opened:
    root: Path
    source: object  # reward.dataset_source.SourceDataset
    episodes: list[int]
    features: dict[str, FeatureSpec]
    labels: torch.Tensor
    episode_index: torch.Tensor
    frame_index: torch.Tensor
    keep: torch.Tensor  # (N,) bool: not a label edge


def label_edges(labels: np.ndarray) -> np.ndarray:
    """Frames of one episode whose label differs from the previous frame's (bool mask);
    ``DatasetConfig.drop_label_edges`` leaves them out.

    A recorded frame is (image o_t, action a_t, ``next.reward`` r_t+1): the first success-labeled
    frame shows the arm the step BEFORE the grasp (jaw still closing), and a failure frame right
    after a success run shows the state before the drop. A hand-labeled frame (``hilserl label``)
    says what its own image shows. The edge frame is the only one on which the two conventions
    disagree. Trained on it, a classifier learned to fire one step early on the pre-grasp image,
    which a policy then reached without ever closing the gripper."""
    edges = np.zeros(len(labels), dtype=bool)
    if len(labels) > 1:
        edges[1:] = np.round(labels[1:]) != np.round(labels[:-1])
    return edges


def _open(
    dataset: DatasetConfig,
    policy: RewardClassifierConfig,
    reward_key: str,
    require_both_classes: bool,
    flags: dict[str, str] = TRAIN_FLAGS,
) -> _Opened:
    from reward.dataset_source import SourceDataset

    root = check_dataset_root(dataset, flags)
    source = SourceDataset(root)
    features = resolve_input_features(policy, source.features)
    if reward_key not in source.features:
        raise UserError(
            f"the dataset at {root} has no '{reward_key}' column: label it first "
            f"(hilserl label {root} --out NEW_ROOT --cutoffs ...) or pass {flags['reward_key']}"
        )
    episodes = source.select_episodes(dataset.episodes, flags["episodes"])
    labels, keep, episode_index, frame_index = [], [], [], []
    for episode in episodes:
        columns = source.episode_columns(episode, [reward_key])
        if reward_key not in columns:
            raise UserError(
                f"episode {episode} of {root} has no '{reward_key}' data; check it with: hilserl doctor {root}"
            )
        n = source.lengths[episode]
        episode_labels = columns[reward_key].reshape(-1).astype(np.float32)
        labels.append(episode_labels)
        keep.append(~label_edges(episode_labels) if dataset.drop_label_edges else np.ones(n, dtype=bool))
        episode_index.append(np.full(n, episode, dtype=np.int64))
        frame_index.append(np.arange(n, dtype=np.int64))
    keep_t = torch.from_numpy(np.concatenate(keep)) if keep else torch.zeros(0, dtype=torch.bool)
    labels_t = torch.from_numpy(np.concatenate(labels))[keep_t]
    if require_both_classes:
        check_labels(labels_t, policy.num_classes, reward_key)
    return _Opened(
        root,
        source,
        episodes,
        features,
        labels_t,
        torch.from_numpy(np.concatenate(episode_index))[keep_t],
        torch.from_numpy(np.concatenate(frame_index))[keep_t],
        keep_t,
    )


def _open_all(
    dataset: DatasetConfig,
    policy: RewardClassifierConfig,
    reward_key: str,
    require_both_classes: bool,
    flags: dict[str, str],
) -> list[_Opened]:
    """``dataset.root`` and each of ``dataset.extra_roots``, checked to hold the same cameras."""
    opened = [_open(dataset, policy, reward_key, False, flags)]
    for extra in dataset.extra_roots or []:
        other = _open(
            dataclasses.replace(dataset, root=extra, episodes=None), policy, reward_key, False, flags
        )
        for key, spec in opened[0].features.items():
            if list(other.features[key].shape) != list(spec.shape):
                raise UserError(
                    f"{other.root} stores {key} as {list(other.features[key].shape)} but {opened[0].root} as "
                    f"{list(spec.shape)}: merge only datasets recorded with the same cameras and image size"
                )
        opened.append(other)
    if require_both_classes:
        check_labels(torch.cat([o.labels for o in opened]), policy.num_classes, reward_key)
    return opened


def preflight(
    dataset: DatasetConfig,
    policy: RewardClassifierConfig,
    reward_key: str = "next.reward",
    flags: dict[str, str] = TRAIN_FLAGS,
) -> dict[str, FeatureSpec]:
    """Every check of ``load_labeled_frames`` without decoding images (cheap; run before starting Ray)."""
    return _open_all(dataset, policy, reward_key, True, flags)[0].features


def load_labeled_frames(
    dataset: DatasetConfig,
    policy: RewardClassifierConfig,
    reward_key: str = "next.reward",
    require_both_classes: bool = True,
    flags: dict[str, str] = TRAIN_FLAGS,
    progress: bool = False,
) -> tuple[LabeledFrames, dict[str, FeatureSpec]]:
    """Decode every selected frame of every used camera; return them with the resolved input features.

    With ``dataset.extra_roots`` the datasets are concatenated; the episodes of each later dataset
    are renumbered after the previous ones, so an episode-wise split still holds whole episodes.
    """
    from tqdm import tqdm

    from reward.dataset import dataset_fingerprint

    opened = _open_all(dataset, policy, reward_key, require_both_classes, flags)
    keys = list(opened[0].features)
    chunks: dict[str, list[torch.Tensor]] = {key: [] for key in keys}
    episode_index, offset = [], 0
    for part in opened:
        start = 0
        episodes = part.source.iter_episodes(keys, [], part.episodes)
        for episode in tqdm(
            episodes,
            total=len(part.episodes),
            desc="decoding frames",
            unit="episode",
            disable=not progress,
            leave=False,
        ):
            n = len(episode.frames[keys[0]])
            keep = part.keep[start : start + n].numpy()
            start += n
            for key in keys:
                chunks[key].append(
                    torch.from_numpy(episode.frames[key][keep]).permute(0, 3, 1, 2).contiguous()
                )
        episode_index.append(part.episode_index + offset)
        offset += int(part.episode_index.max()) + 1 if len(part.episode_index) else 0
    frames = LabeledFrames(
        camera_keys=keys,
        images={key: torch.cat(chunks[key]) for key in keys},
        labels=torch.cat([o.labels for o in opened]),
        episode_index=torch.cat(episode_index),
        frame_index=torch.cat([o.frame_index for o in opened]),
    )
    frames.fingerprint = dataset_fingerprint(opened[0].root, reward_key, opened[0].episodes)
    if len(opened) > 1:
        frames.fingerprint["merged"] = [
            dataset_fingerprint(o.root, reward_key, o.episodes) for o in opened[1:]
        ]
    return frames, opened[0].features


def episode_split(episodes: list[int], val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Hold out whole episodes (frames of one episode are nearly identical: a frame split would leak)."""
    episodes = sorted(episodes)
    if val_fraction <= 0:
        return episodes, []
    if len(episodes) < 2:
        raise UserError(
            f"an episode-wise validation split needs at least 2 episodes, the dataset has {len(episodes)}; "
            "record more episodes or set val_fraction=0"
        )
    n_val = min(len(episodes) - 1, max(1, round(val_fraction * len(episodes))))
    order = np.random.default_rng(seed).permutation(len(episodes))
    val = sorted(episodes[i] for i in order[:n_val])
    train = sorted(e for e in episodes if e not in set(val))
    return train, val


class BalancedBatchSampler:
    """Class-balanced batches with replacement: every class is drawn equally often (HIL-SERL's 50/50)."""

    def __init__(self, labels: torch.Tensor, indices: torch.Tensor, batch_size: int, seed: int):
        self.indices = indices
        self.batch_size = batch_size
        classes = labels[indices].round().long()
        counts = torch.bincount(classes)
        weights = 1.0 / counts[classes].double()
        self.weights = weights / weights.sum()
        self.generator = torch.Generator().manual_seed(seed)

    def sample(self) -> torch.Tensor:
        """(batch_size,) frame indices."""
        picks = torch.multinomial(self.weights, self.batch_size, replacement=True, generator=self.generator)
        return self.indices[picks]


def replace_features(
    policy: RewardClassifierConfig, features: dict[str, FeatureSpec]
) -> RewardClassifierConfig:
    """A copy of the policy config with the resolved input features."""
    return dataclasses.replace(policy, input_features=dict(features))
