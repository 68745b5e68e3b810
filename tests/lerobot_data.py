"""Small real LeRobot datasets for tests, written with LeRobot's own create / add_frame / save_episode."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

CAMERA_KEY = "observation.images.{}"


def make_dataset(
    root: str | Path,
    episode_lengths: Sequence[int] = (10, 10),
    cameras: Sequence[str] = ("front",),
    image_size: int = 32,
    use_videos: bool = True,
    with_reward: bool = True,
    reward_fn: Callable[[int, int], float] | None = None,
    fps: int = 10,
    repo_id: str = "test/dataset",
    seed: int = 0,
    state_fn: Callable[[np.random.Generator], np.ndarray] | None = None,
):
    """Write a LeRobotDataset (v3.0) at ``root`` and return it (finalized).

    Frame ``i`` of episode ``e`` has ``next.reward = reward_fn(e, i)`` (0.0 by default) and images
    whose mean brightness encodes (e, i), so tests can check that the right frames were kept.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.state": {"dtype": "float32", "shape": (6,), "names": None},
        "action": {"dtype": "float32", "shape": (4,), "names": None},
    }
    for cam in cameras:
        features[CAMERA_KEY.format(cam)] = {
            "dtype": "video" if use_videos else "image",
            "shape": (image_size, image_size, 3),
            "names": ["height", "width", "channels"],
        }
    if with_reward:
        features["next.reward"] = {"dtype": "float32", "shape": (1,), "names": None}
    dataset = LeRobotDataset.create(
        repo_id=repo_id, fps=fps, features=features, root=root, use_videos=use_videos, robot_type="so101"
    )
    rng = np.random.default_rng(seed)
    for episode, length in enumerate(episode_lengths):
        for i in range(length):
            frame = {
                "observation.state": (state_fn(rng) if state_fn else rng.standard_normal(6)).astype(
                    np.float32
                ),
                "action": rng.standard_normal(4).astype(np.float32),
                "task": "pick up the cube",
            }
            level = (episode * 37 + i * 5) % 200 + 20
            for cam in cameras:
                frame[CAMERA_KEY.format(cam)] = np.full((image_size, image_size, 3), level, dtype=np.uint8)
            if with_reward:
                value = reward_fn(episode, i) if reward_fn else 0.0
                frame["next.reward"] = np.array([value], dtype=np.float32)
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()
    return dataset


def tree_hash(root: str | Path) -> str:
    """Hash of every file path and content under ``root`` (to prove a command left it untouched)."""
    import hashlib

    digest = hashlib.sha256()
    root = Path(root)
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def open_lerobot_dataset(root: str | Path):
    """Open a written dataset with the installed LeRobot itself (pyav): proves LeRobot can read our outputs.

    Tests only: the project reads datasets with `reward.dataset_source`, never through LeRobotDataset.
    """
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = Path(root)
    return LeRobotDataset(f"local/{root.name}", root=root, video_backend="pyav")


def write_state_dataset(root: str | Path, episode_lengths: Sequence[int] = (7, 5, 9)) -> np.ndarray:
    """A camera-less dataset whose states have entries of very different sizes (a velocity in the
    tens, a position in centimetres) and a constant one (90, like the SO-101's wrist roll); returns
    every frame's state, in order."""

    def state(rng: np.random.Generator) -> np.ndarray:
        return np.array(
            [30 * rng.standard_normal(), 0.2 + 0.03 * rng.standard_normal(), *rng.standard_normal(3), 90.0]
        )

    make_dataset(root, episode_lengths, cameras=(), use_videos=False, state_fn=state)
    frames = open_lerobot_dataset(root).hf_dataset
    return np.stack([np.asarray(frames[i]["observation.state"]) for i in range(len(frames))])
