"""Small datasets in LeRobot's older v2.1 layout, written by hand (LeRobot 0.4 and 0.6 only write v3.0).

The layout is the one seeds 002/003 were recorded in: meta/info.json (codebase_version v2.1),
meta/episodes.jsonl, meta/episodes_stats.jsonl, meta/tasks.jsonl, one parquet per episode under
data/chunk-000/ and one mp4 per episode and camera under videos/chunk-000/<camera>/.
Images encode (episode, frame) in their brightness like `tests.lerobot_data.make_dataset`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

CAMERA = "observation.images.front"
TASK = "grasp the red cube"
DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


def level(episode: int, frame: int) -> int:
    """Brightness of frame ``frame`` of episode ``episode`` (same code as tests.lerobot_data)."""
    return (episode * 37 + frame * 5) % 200 + 20


def make_v21_dataset(
    root: str | Path,
    episode_lengths: Sequence[int] = (20, 20, 20),
    image_size: int = 32,
    fps: int = 10,
    with_reward: bool = True,
    video_frames: dict[int, int] | None = None,
    use_videos: bool = True,
    seed: int = 0,
) -> Path:
    """Write a v2.1 dataset at ``root``; ``video_frames`` encodes fewer frames for some episodes (a short video).

    With ``use_videos=False`` the camera is an image feature stored as PNG bytes inside the parquet files.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    features = {
        "observation.state": {"dtype": "float32", "shape": [6], "names": None},
        "action": {"dtype": "float32", "shape": [4], "names": None},
        CAMERA: {
            "dtype": "video" if use_videos else "image",
            "shape": [image_size, image_size, 3],
            "names": ["height", "width", "channels"],
            "info": {"video.fps": fps, "video.codec": "av1", "video.pix_fmt": "yuv420p", "has_audio": False},
        },
    }
    if with_reward:
        features["next.reward"] = {"dtype": "float32", "shape": [1], "names": None}
    for key, dtype in (
        ("timestamp", "float32"),
        ("frame_index", "int64"),
        ("episode_index", "int64"),
        ("index", "int64"),
        ("task_index", "int64"),
    ):
        features[key] = {"dtype": dtype, "shape": [1], "names": None}

    episodes, stats_rows, start = [], [], 0
    for episode, length in enumerate(episode_lengths):
        columns = {
            "observation.state": rng.standard_normal((length, 6)).astype(np.float32),
            "action": rng.standard_normal((length, 4)).astype(np.float32),
            "timestamp": (np.arange(length) / fps).astype(np.float32),
            "frame_index": np.arange(length, dtype=np.int64),
            "episode_index": np.full(length, episode, dtype=np.int64),
            "index": np.arange(start, start + length, dtype=np.int64),
            "task_index": np.zeros(length, dtype=np.int64),
        }
        if with_reward:
            columns["next.reward"] = np.zeros(length, dtype=np.float32)
        frames = [
            np.full((image_size, image_size, 3), level(episode, i), dtype=np.uint8) for i in range(length)
        ]
        images = None if use_videos else [{"bytes": png_bytes(image), "path": None} for image in frames]
        write_episode_parquet(root, episode, columns, images)
        if use_videos:
            path = root / VIDEO_PATH.format(episode_chunk=0, video_key=CAMERA, episode_index=episode)
            encode_mp4(path, frames[: (video_frames or {}).get(episode, length)], fps)
        episodes.append({"episode_index": episode, "tasks": [TASK], "length": length})
        stats = {key: numeric_stats(values) for key, values in columns.items()}
        stats[CAMERA] = image_stats(frames)
        stats_rows.append({"episode_index": episode, "stats": stats})
        start += length

    info = {
        "codebase_version": "v2.1",
        "robot_type": "so101_follower",
        "total_episodes": len(episode_lengths),
        "total_frames": int(sum(episode_lengths)),
        "total_tasks": 1,
        "total_videos": len(episode_lengths) if use_videos else 0,
        "total_chunks": 1,
        "chunks_size": 1000,
        "fps": fps,
        "splits": {"train": f"0:{len(episode_lengths)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if use_videos else None,
        "features": features,
    }
    (root / "meta").mkdir(parents=True, exist_ok=True)
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    write_jsonl(root / "meta/episodes.jsonl", episodes)
    write_jsonl(root / "meta/episodes_stats.jsonl", stats_rows)
    write_jsonl(root / "meta/tasks.jsonl", [{"task_index": 0, "task": TASK}])
    return root


def write_episode_parquet(
    root: Path, episode: int, columns: dict[str, np.ndarray], images: list[dict] | None = None
) -> None:
    arrays = {}
    if images is not None:
        arrays[CAMERA] = pa.array(images, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    for key, values in columns.items():
        if values.ndim == 2:
            arrays[key] = pa.array(list(values), type=pa.list_(pa.from_numpy_dtype(values.dtype)))
        else:
            arrays[key] = pa.array(values)
    path = root / DATA_PATH.format(episode_chunk=0, episode_index=episode)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), path)


def read_episode_parquet(root: Path, episode: int) -> pa.Table:
    return pq.read_table(root / DATA_PATH.format(episode_chunk=0, episode_index=episode))


def truncate_episode_by_hand(root: str | Path, episode: int, keep: int) -> None:
    """Seed 003's hand edit: drop an episode's reset frames from its parquet and touch nothing else."""
    root = Path(root)
    table = read_episode_parquet(root, episode).slice(0, keep)
    pq.write_table(table, root / DATA_PATH.format(episode_chunk=0, episode_index=episode))


def png_bytes(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def encode_mp4(path: Path, frames: list[np.ndarray], fps: int) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libsvtav1", rate=fps, options={"g": "2", "crf": "30", "preset": "12"})
        stream.pix_fmt = "yuv420p"
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        for image in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def numeric_stats(values: np.ndarray) -> dict[str, list]:
    values = values.reshape(len(values), -1).astype(np.float64)
    return {
        "min": values.min(0).tolist(),
        "max": values.max(0).tolist(),
        "mean": values.mean(0).tolist(),
        "std": values.std(0).tolist(),
        "count": [len(values)],
    }


def image_stats(frames: list[np.ndarray]) -> dict[str, list]:
    pixels = np.stack(frames).reshape(-1, 3).astype(np.float64) / 255.0
    per_channel = {
        "min": pixels.min(0),
        "max": pixels.max(0),
        "mean": pixels.mean(0),
        "std": pixels.std(0),
    }
    stats = {name: value.reshape(3, 1, 1).tolist() for name, value in per_channel.items()}
    stats["count"] = [len(frames)]
    return stats


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
