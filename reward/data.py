"""Labeled frames for the reward classifier, read from a local LeRobot dataset.

    frames = load_labeled_frames(cfg.dataset, cfg.policy, reward_key="next.reward")
    train_eps, val_eps = episode_split(frames.episodes, val_fraction=0.2, seed=1000)
    sampler = BalancedBatchSampler(frames.labels, frames.indices_of(train_eps), batch_size=32, seed=1)

The dataset is opened with an explicit root and ``video_backend="pyav"`` (seed 002: an implicit
root let a hub copy replace local data; torchcodec needs system FFmpeg). Every frame of every
camera is decoded once into memory as uint8, so training never touches the video files again.
Nothing here writes anywhere; all the user errors (missing camera, no reward column, one class)
are raised before a training run creates its output folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
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


def check_dataset_root(dataset: DatasetConfig) -> Path:
    """The dataset root must be given and hold a LeRobot dataset (LeRobot would otherwise try the hub)."""
    if not dataset.root:
        raise UserError(
            "dataset.root is not set: pass --dataset.root=/path/to/dataset (the folder with meta/)"
        )
    root = Path(dataset.root).expanduser()
    if not (root / "meta" / "info.json").is_file():
        raise UserError(
            f"{root} is not a LeRobot dataset (no meta/info.json): pass the dataset folder as --dataset.root"
        )
    return root


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
            "label success frames (hilserl label) so both classes are present"
        )


@dataclass
class _Opened:
    root: Path
    dataset: object  # lerobot LeRobotDataset
    table: object  # its hf_dataset without the torch transform
    features: dict[str, FeatureSpec]
    labels: torch.Tensor
    episode_index: torch.Tensor
    frame_index: torch.Tensor


def _open(
    dataset: DatasetConfig, policy: RewardClassifierConfig, reward_key: str, require_both_classes: bool
) -> _Opened:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset, LeRobotDatasetMetadata

    root = check_dataset_root(dataset)
    meta = LeRobotDatasetMetadata(dataset.repo_id, root=root)
    features = resolve_input_features(policy, meta.features)
    if reward_key not in meta.features:
        raise UserError(
            f"the dataset at {root} has no '{reward_key}' column: label it first "
            "(hilserl label --dataset.root ... ) or set reward_key"
        )
    episodes = dataset.episodes
    if episodes is not None:
        unknown = sorted(set(episodes) - set(range(meta.total_episodes)))
        if unknown:
            raise UserError(
                f"dataset.episodes lists episode {unknown[0]} but the dataset has {meta.total_episodes}; fix dataset.episodes"
            )
    lerobot_dataset = LeRobotDataset(
        dataset.repo_id,
        root=root,
        episodes=episodes,
        video_backend=dataset.video_backend,
        download_videos=False,
    )
    table = lerobot_dataset.hf_dataset.with_format(None)
    labels = torch.tensor(_column(table, reward_key), dtype=torch.float32).reshape(-1)
    episode_index = torch.tensor(_column(table, "episode_index"), dtype=torch.int64).reshape(-1)
    frame_index = torch.tensor(_column(table, "frame_index"), dtype=torch.int64).reshape(-1)
    if require_both_classes:
        check_labels(labels, policy.num_classes, reward_key)
    return _Opened(root, lerobot_dataset, table, features, labels, episode_index, frame_index)


def preflight(
    dataset: DatasetConfig, policy: RewardClassifierConfig, reward_key: str = "next.reward"
) -> dict[str, FeatureSpec]:
    """Every check of ``load_labeled_frames`` without decoding images (cheap; run before starting Ray)."""
    return _open(dataset, policy, reward_key, True).features


def load_labeled_frames(
    dataset: DatasetConfig,
    policy: RewardClassifierConfig,
    reward_key: str = "next.reward",
    require_both_classes: bool = True,
) -> tuple[LabeledFrames, dict[str, FeatureSpec]]:
    """Decode every selected frame of every used camera; return them with the resolved input features."""
    opened = _open(dataset, policy, reward_key, require_both_classes)
    images = {}
    for key in opened.features:
        if key in opened.dataset.meta.video_keys:
            images[key] = _decode_video_key(opened.dataset, opened.table, key, dataset.video_backend)
        else:
            images[key] = _decode_image_key(opened.dataset, key)
    frames = LabeledFrames(
        camera_keys=list(opened.features),
        images=images,
        labels=opened.labels,
        episode_index=opened.episode_index,
        frame_index=opened.frame_index,
    )
    frames.fingerprint = dataset_fingerprint(opened.root, frames)
    return frames, opened.features


def _column(table, name: str) -> np.ndarray:
    return np.asarray(table[name], dtype=np.float64)


def _decode_image_key(dataset, key: str) -> torch.Tensor:
    out = []
    for i in range(len(dataset.hf_dataset)):
        image = dataset.hf_dataset[i][key]  # float (3, H, W) in [0, 1] after LeRobot's transform
        out.append((image * 255.0).round().clamp(0, 255).to(torch.uint8))
    return torch.stack(out)


def _decode_video_key(dataset, table, key: str, backend: str) -> torch.Tensor:
    """Decode the frames of one camera, one sequential pass per video file (pyav) or per episode."""
    timestamps = _column(table, "timestamp")
    episode_index = _column(table, "episode_index").astype(np.int64)
    tolerance = 0.5 / dataset.meta.fps
    result: list[torch.Tensor | None] = [None] * len(timestamps)
    # Group the wanted (video timestamp, row) pairs by video file: v3.0 concatenates episodes.
    wanted: dict[Path, list[tuple[float, int]]] = {}
    for ep in sorted(set(episode_index.tolist())):
        ep_meta = dataset.meta.episodes[ep]
        start = float(ep_meta[f"videos/{key}/from_timestamp"])
        path = dataset.root / dataset.meta.get_video_file_path(ep, key)
        rows = np.nonzero(episode_index == ep)[0]
        wanted.setdefault(path, []).extend((start + float(timestamps[r]), int(r)) for r in rows)
    for path, pairs in wanted.items():
        if backend == "pyav":
            decoded_ts, decoded = _decode_all_pyav(path)
        else:
            from lerobot.datasets.video_utils import decode_video_frames

            ts = [t for t, _ in pairs]
            frames = decode_video_frames(path, ts, dataset.tolerance_s, backend)
            decoded_ts = np.asarray(ts)
            decoded = [(f * 255).round().to(torch.uint8) for f in frames]
        for ts, row in pairs:
            j = int(np.argmin(np.abs(decoded_ts - ts)))
            if abs(decoded_ts[j] - ts) > tolerance:
                raise UserError(
                    f"{path} has no frame near t={ts:.3f}s for {key}; the dataset's videos and timestamps "
                    "disagree: repair it with hilserl doctor"
                )
            result[row] = decoded[j]
    return torch.stack(result)  # type: ignore[arg-type]


def _decode_all_pyav(path: Path) -> tuple[np.ndarray, list[torch.Tensor]]:
    import av

    stamps, frames = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            stamps.append(float(frame.pts * frame.time_base))
            frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1).contiguous())
    return np.asarray(stamps), frames


def dataset_fingerprint(root: Path, frames: LabeledFrames) -> dict:
    """What a checkpoint was trained on: root, episodes, frame count and a hash of the labels."""
    digest = hashlib.sha256()
    digest.update(frames.episode_index.numpy().astype(np.int64).tobytes())
    digest.update(frames.frame_index.numpy().astype(np.int64).tobytes())
    digest.update(frames.labels.numpy().astype(np.float32).tobytes())
    positives = int((frames.labels > 0.5).sum())
    return {
        "root": str(Path(root).resolve()),
        "episodes": frames.episodes,
        "frames": len(frames),
        "positives": positives,
        "negatives": len(frames) - positives,
        "label_hash": digest.hexdigest()[:16],
    }


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
