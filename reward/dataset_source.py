"""The one dataset reader: a local LeRobot dataset (v3.0 or v2.1), episode by episode, from its files.

Every command that reads a dataset (train-reward, eval-reward, label, doctor, the demo importer)
goes through this module. It never consults the Hugging Face hub and never writes: a missing or
damaged file (info.json, a data or meta parquet, a video) is a one-line `UserError` naming the file
and the fix, never a download. The data parquet files are the truth: episode lengths, rows and
columns come from them, not from meta/ (a hand-edited meta/ can disagree with the data). Meta is used
only to find each episode's video segment. Camera frames are decoded with PyAV as uint8, one
episode at a time, so memory stays bounded by the longest episode.

API::

    from reward.dataset_source import Episode, SourceDataset, iter_episodes

    for episode in iter_episodes(root, image_keys=["observation.images.front"],
                                 columns=["observation.state", "action", "next.reward", "next.done"]):
        episode.index                                   # int, the dataset's episode_index
        episode.frames["observation.images.front"]      # np.uint8 (T, H, W, 3)
        episode.columns["action"]                       # np.ndarray (T, *feature shape), e.g. (T, 6)
        len(episode)                                    # T

    iter_episodes(root, image_keys=None, columns=None, episodes=None, required=True) -> Iterator[Episode]
        image_keys  camera keys (full ``observation.images.x`` or short ``x``); None = every camera,
                    [] = none (columns only, nothing decoded)
        columns     numeric column keys (state, action, next.reward, next.done,
                    complementary_info.*, timestamp, frame_index, ...); None = every numeric column
        episodes    episode indices to read (default: all, in index order); an unknown one is a UserError
        required    a requested column the dataset lacks is a UserError (False: it is left out)

    source = SourceDataset(root)                # meta + row index only (cheap); UserError if unusable
    source.episodes, source.lengths, source.features, source.fps, source.camera_keys, source.tasks
    source.episode(3, image_keys, columns)      # one Episode
    source.episode_columns(3, keys)             # numeric columns only, no decoding
    source.frames(3, num_frames=60)             # add_frame dicts for LeRobot's writer (label, doctor --fix)

One fingerprint identifies what a dataset holds: ``reward.dataset.dataset_fingerprint``.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from configs.errors import UserError
from reward.dataset import (
    CAMERA_DTYPES,
    DERIVED_KEYS,
    V21,
    V30,
    column_to_numpy,
    data_files,
    detect_layout,
    read_info,
)

logger = logging.getLogger(__name__)


def decode_image(value: Any, root: Path) -> np.ndarray:
    """An image cell of a parquet file (``{"bytes": png, "path": ...}``) as uint8 (H, W, 3)."""
    from PIL import Image

    if isinstance(value, dict) and value.get("bytes"):
        image = Image.open(io.BytesIO(value["bytes"]))
    elif isinstance(value, dict) and value.get("path"):
        image = Image.open(root / value["path"])
    else:
        raise UserError(f"an image cell of {root} holds neither bytes nor a path; the dataset is damaged")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


@dataclass(frozen=True)
class VideoSegment:
    """Where an episode's frames live in a video file: file and start time of its first frame."""

    path: Path
    from_timestamp: float
    to_timestamp: float | None = None


class VideoShortError(UserError):
    """A video holds fewer frames than the episode needs."""


def decode_video_frames(
    path: Path, timestamps: np.ndarray, fps: int, keep_pixels: bool = True
) -> tuple[list[np.ndarray | None], np.ndarray]:
    """Decode the frames nearest to ``timestamps`` (seconds in the file) within half a frame period.

    Returns (frames, found) where ``found[i]`` says whether a frame matched timestamp ``i``; frames are
    uint8 (H, W, 3), or None when ``keep_pixels`` is False or nothing matched.
    """
    import av

    tolerance = 0.5 / fps
    first, last = float(np.min(timestamps)), float(np.max(timestamps))
    times: list[float] = []
    pixels: list[np.ndarray | None] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        if first > tolerance and stream.time_base is not None:
            # Seek to the key frame at or before the segment; concatenated files hold many episodes.
            container.seek(int((first - tolerance) / stream.time_base), stream=stream, backward=True)
        for frame in container.decode(stream):
            if frame.time is None:
                continue
            if frame.time < first - tolerance:
                continue
            if frame.time > last + tolerance:
                break
            times.append(float(frame.time))
            pixels.append(frame.to_ndarray(format="rgb24") if keep_pixels else None)
    found = np.zeros(len(timestamps), dtype=bool)
    frames: list[np.ndarray | None] = [None] * len(timestamps)
    if times:
        decoded = np.asarray(times)
        nearest = np.abs(decoded[None, :] - np.asarray(timestamps, dtype=np.float64)[:, None]).argmin(axis=1)
        found = np.abs(decoded[nearest] - timestamps) <= tolerance
        frames = [pixels[j] if ok else None for j, ok in zip(nearest, found, strict=True)]
    return frames, found


@dataclass
class Episode:
    """One decoded episode: its index, uint8 camera frames (T, H, W, 3) and numeric columns (T, *shape)."""

    index: int
    frames: dict[str, np.ndarray]
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        for values in (*self.columns.values(), *self.frames.values()):
            return int(values.shape[0])
        return 0


def iter_episodes(
    root: str | Path,
    image_keys: list[str] | None = None,
    columns: list[str] | None = None,
    episodes: list[int] | None = None,
    required: bool = True,
) -> Iterator[Episode]:
    """Read a local dataset episode by episode (see the module docstring); never touches the hub."""
    return SourceDataset(root).iter_episodes(image_keys, columns, episodes, required)


def _read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """A parquet file of the dataset; a damaged one is a UserError naming it."""
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError, KeyError, ValueError) as err:
        reason = " ".join(str(err).split())[:120]
        raise UserError(f"{path} is not a readable parquet file ({reason}); restore it from a copy") from None


def _ranges(values: list[int]) -> str:
    if not values:
        return "none"
    return (
        f"{values[0]}-{values[-1]}"
        if values == list(range(values[0], values[-1] + 1))
        else ", ".join(map(str, values))
    )


class SourceDataset:
    """A dataset read from its files: features, tasks, per-episode rows, and frames for rewriting."""

    def __init__(self, root: str | Path, skip_unreadable: bool = False):
        """``skip_unreadable`` (doctor): a data or episode-meta parquet that cannot be read (e.g. no footer:
        the recording was killed while saving) is listed in ``unreadable`` instead of being an error."""
        self.root = Path(root).expanduser().resolve()
        self.skip_unreadable = skip_unreadable
        self.unreadable: list[Path] = []
        self.info = read_info(self.root)
        self.layout = detect_layout(self.root, self.info)
        self.features: dict[str, dict[str, Any]] = self.info["features"]
        self.fps = int(self.info["fps"])
        self.robot_type = self.info.get("robot_type")
        self.video_keys = [k for k, ft in self.features.items() if ft.get("dtype") == "video"]
        self.image_keys = [k for k, ft in self.features.items() if ft.get("dtype") == "image"]
        self.camera_keys = [k for k, ft in self.features.items() if ft.get("dtype") in CAMERA_DTYPES]
        self.tasks = self._load_tasks()
        self.meta_episodes = self._load_meta_episodes()
        self._rows = self._index_rows()
        self.lengths = {episode: sum(len(rows) for _, rows in parts) for episode, parts in self._rows.items()}
        self._cached: tuple[Path, pa.Table] | None = None

    # ------------------------------------------------------------------------------------- loading meta

    def _load_tasks(self) -> dict[int, str]:
        if self.layout == V30:
            path = self.root / "meta/tasks.parquet"
            if not path.is_file():
                return {}
            table = _read_parquet(path).to_pandas()
            return {
                int(index): str(task) for task, index in zip(table.index, table["task_index"], strict=True)
            }
        return {int(row["task_index"]): str(row["task"]) for row in self._jsonl("meta/tasks.jsonl")}

    def _load_meta_episodes(self) -> dict[int, dict[str, Any]]:
        if self.layout == V30:
            rows: list[dict[str, Any]] = []
            for path in sorted(self.root.glob("meta/episodes/*/*.parquet")):
                try:
                    rows += _read_parquet(path).to_pylist()
                except UserError:
                    if not self.skip_unreadable:
                        raise
                    self.unreadable.append(path)
        else:
            rows = self._jsonl("meta/episodes.jsonl")
        return {int(row["episode_index"]): row for row in rows}

    def _jsonl(self, relative: str) -> list[dict[str, Any]]:
        path = self.root / relative
        if not path.is_file():
            return []
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise UserError(
                        f"{path} line {number} is not valid JSON; restore it from a copy of the dataset"
                    ) from None
        return rows

    def _index_rows(self) -> dict[int, list[tuple[Path, np.ndarray]]]:
        """Map each episode to (file, row positions) from the episode_index column of the data files."""
        files = data_files(self.root)
        if not files:
            raise UserError(
                f"{self.root} is an empty dataset (no parquet files under data/); record some episodes first"
            )
        rows: dict[int, list[tuple[Path, np.ndarray]]] = {}
        for path in files:
            try:
                episode_column = pq.read_table(path, columns=["episode_index"]).column("episode_index")
            except (pa.ArrowInvalid, OSError, KeyError) as err:
                if self.skip_unreadable:
                    self.unreadable.append(path)
                    continue
                raise UserError(
                    f"{path} is not a readable LeRobot data file ({err}); restore it from a copy"
                ) from None
            episodes = episode_column.to_numpy()
            for episode in np.unique(episodes):
                rows.setdefault(int(episode), []).append((path, np.flatnonzero(episodes == episode)))
        if not rows and self.unreadable:
            raise UserError(
                f"no data file of {self.root} can be read ({self.unreadable[0]} and {len(self.unreadable) - 1} more); "
                "restore them from a copy"
            )
        if not rows:
            raise UserError(
                f"{self.root} is an empty dataset (its data files hold no frames); record some episodes first"
            )
        return dict(sorted(rows.items()))

    # ------------------------------------------------------------------------------------------ reading

    @property
    def episodes(self) -> list[int]:
        return list(self.lengths)

    @property
    def total_frames(self) -> int:
        return sum(self.lengths.values())

    def _table(self, path: Path) -> pa.Table:
        if self._cached is None or self._cached[0] != path:
            self._cached = (path, _read_parquet(path))
        return self._cached[1]

    def episode(
        self,
        episode: int,
        image_keys: list[str] | None = None,
        columns: list[str] | None = None,
        required: bool = True,
    ) -> Episode:
        """One episode: uint8 frames per camera (T, H, W, 3) and numeric columns (T, *shape)."""
        if episode not in self.lengths:
            raise UserError(
                f"{self.root} has no episode {episode} (its episodes: {_ranges(self.episodes)}); fix the episode list"
            )
        keys = self.camera_keys if image_keys is None else self.resolve_cameras(image_keys)
        wanted = self._numeric_keys(columns, required)
        read = list(dict.fromkeys([*wanted, *(k for k in ("timestamp",) if k in self.features)]))
        values = self.episode_columns(episode, read)
        if required and columns is not None:
            absent = [k for k in wanted if k not in values]
            if absent:
                raise UserError(
                    f"episode {episode} of {self.root} has no '{absent[0]}' data although meta/info.json lists it; "
                    f"check it with: hilserl doctor {self.root}"
                )
        length = self.lengths[episode]
        timestamps = values.get("timestamp", np.arange(length, dtype=np.float64)[:, None] / self.fps)
        timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)
        frames = {key: np.stack(self.camera_frames(episode, key, timestamps)) for key in keys}
        return Episode(episode, frames, {k: v for k, v in values.items() if k in wanted})

    def iter_episodes(
        self,
        image_keys: list[str] | None = None,
        columns: list[str] | None = None,
        episodes: list[int] | None = None,
        required: bool = True,
    ) -> Iterator[Episode]:
        """`episode` for each selected episode in turn (one decoded episode in memory at a time)."""
        selected = self.select_episodes(episodes)
        if image_keys is not None:
            self.resolve_cameras(image_keys)
        self._numeric_keys(columns, required)  # report a bad key before decoding anything
        for episode in selected:
            yield self.episode(episode, image_keys, columns, required)

    def select_episodes(self, episodes: list[int] | None, flag: str = "the episode list") -> list[int]:
        """The requested episodes in order (default: all); an unknown index is a UserError naming ``flag``."""
        if episodes is None:
            return self.episodes
        unknown = [e for e in episodes if e not in self.lengths]
        if unknown:
            raise UserError(
                f"{flag} names episode {unknown[0]}, but {self.root} holds episodes {_ranges(self.episodes)}; fix {flag}"
            )
        twice = sorted({e for e in episodes if episodes.count(e) > 1})
        if twice:
            raise UserError(f"{flag} names episode {twice[0]} twice; list each episode once")
        return list(episodes)

    def resolve_cameras(self, keys: list[str]) -> list[str]:
        from reward.dataset import resolve_camera_key

        return [resolve_camera_key(key, self.camera_keys) for key in keys]

    def _numeric_keys(self, columns: list[str] | None, required: bool) -> list[str]:
        numeric = [k for k, ft in self.features.items() if ft.get("dtype") not in (*CAMERA_DTYPES, "string")]
        if columns is None:
            return numeric
        missing = [k for k in columns if k not in numeric]
        if missing and required:
            kind = "a camera or text feature" if missing[0] in self.features else "not a feature"
            raise UserError(
                f"column '{missing[0]}' of {self.root} is {kind}; its numeric columns are: {', '.join(numeric)}"
            )
        return [k for k in columns if k in numeric]

    def episode_table(self, episode: int, columns: list[str] | None = None) -> pa.Table:
        """The episode's rows from the data files (in file order)."""
        parts = []
        for path, positions in self._rows[episode]:
            table = self._table(path)
            # A column meta declares may be absent from the data (doctor reports it): select what exists.
            table = (
                table.select([c for c in columns if c in table.column_names])
                if columns is not None
                else table
            )
            parts.append(table.take(pa.array(positions)))
        return pa.concat_tables(parts) if len(parts) > 1 else parts[0]

    def episode_columns(self, episode: int, keys: list[str] | None = None) -> dict[str, np.ndarray]:
        """Numeric columns of an episode as arrays (rows, *feature shape); camera columns are skipped."""
        keys = [
            k for k in (keys or self.features) if self.features[k]["dtype"] not in (*CAMERA_DTYPES, "string")
        ]
        table = self.episode_table(episode, columns=keys)
        out = {}
        for key in keys:
            if key in table.column_names:
                ft = self.features[key]
                out[key] = column_to_numpy(table.column(key), ft["dtype"], tuple(ft["shape"]))
        return out

    def video_segment(self, episode: int, key: str) -> VideoSegment:
        """Where ``key``'s frames of ``episode`` are: (file, from_timestamp) from meta (v3.0) or the path template (v2.1)."""
        meta = self.meta_episodes.get(episode)
        if self.layout == V30:
            if meta is None or meta.get(f"videos/{key}/chunk_index") is None:
                raise UserError(
                    f"meta/episodes of {self.root} has no video entry for episode {episode} ({key}); the video cannot be located"
                )
            path = self.root / self.info["video_path"].format(
                video_key=key,
                chunk_index=meta[f"videos/{key}/chunk_index"],
                file_index=meta[f"videos/{key}/file_index"],
            )
            return VideoSegment(
                path, float(meta[f"videos/{key}/from_timestamp"]), float(meta[f"videos/{key}/to_timestamp"])
            )
        chunk = episode // int(self.info.get("chunks_size", 1000))
        path = self.root / self.info["video_path"].format(
            episode_chunk=chunk, video_key=key, episode_index=episode
        )
        return VideoSegment(path, 0.0)

    def camera_frames(self, episode: int, key: str, timestamps: np.ndarray) -> list[np.ndarray]:
        """Frames of one camera at the episode's own ``timestamps`` (uint8 (H, W, 3)); short videos raise."""
        if key in self.image_keys:
            column = self.episode_table(episode, columns=[key]).column(key).to_pylist()
            return [decode_image(value, self.root) for value in column[: len(timestamps)]]
        segment = self.video_segment(episode, key)
        if not segment.path.is_file():
            raise VideoShortError(
                f"video {segment.path} of episode {episode} is missing; its frames cannot be recovered, "
                "re-record the episode or restore the file"
            )
        try:
            frames, found = decode_video_frames(segment.path, segment.from_timestamp + timestamps, self.fps)
        except UserError:
            raise
        except Exception as err:  # noqa: BLE001 - PyAV raises many kinds for a damaged file
            raise UserError(
                f"video {segment.path} of episode {episode} cannot be decoded ({type(err).__name__}); restore the file "
                f"or check the dataset with: hilserl doctor {self.root}"
            ) from None
        if not found.all():
            have = int(found.sum())
            raise VideoShortError(
                f"video {segment.path} holds {have} of the {len(timestamps)} frames episode {episode} needs; "
                f"keep only frames 0-{have - 1} (hilserl label --csv with env_reset_start={have}) or re-record it"
            )
        return frames  # type: ignore[return-value]

    def frames(
        self, episode: int, num_frames: int | None = None, flip_keys: tuple[str, ...] = ()
    ) -> Iterator[dict[str, Any]]:
        """The first ``num_frames`` frames of an episode as `add_frame` dicts (task string, no derived keys).

        ``flip_keys`` cameras are rotated by 180 degrees (hflip + vflip), for a camera that was
        mounted upside down and recorded with the wrong rotation.
        """
        length = self.lengths[episode]
        num_frames = length if num_frames is None else num_frames
        columns = self.episode_columns(episode)
        for key in list(columns):
            columns[key] = columns[key][:num_frames]
        timestamps = columns.get("timestamp", np.arange(length, dtype=np.float64)[:, None] / self.fps)
        timestamps = np.asarray(timestamps, dtype=np.float64).reshape(-1)[:num_frames]
        cameras = {key: self.camera_frames(episode, key, timestamps) for key in self.camera_keys}
        task_index = columns.get("task_index", np.zeros((num_frames, 1), dtype=np.int64)).reshape(-1)
        for i in range(num_frames):
            task = self.tasks.get(int(task_index[i]))
            if task is None:
                raise UserError(
                    f"episode {episode} frame {i} has task_index {int(task_index[i])}, which the task list of {self.root} lacks"
                )
            frame: dict[str, Any] = {"task": task}
            for key, values in columns.items():
                if key not in DERIVED_KEYS:
                    frame[key] = values[i]
            for key, images in cameras.items():
                image = images[i]
                frame[key] = np.ascontiguousarray(image[::-1, ::-1]) if key in flip_keys else image
            yield frame

    def describe(self) -> str:
        kind = "video" if self.video_keys else ("image" if self.image_keys else "no camera")
        return (
            f"{self.root} ({self.layout}, {kind}, {len(self.lengths)} episodes, {self.total_frames} frames)"
        )


__all__ = [
    "Episode",
    "SourceDataset",
    "iter_episodes",
    "VideoSegment",
    "VideoShortError",
    "column_to_numpy",
    "decode_video_frames",
    "V21",
    "V30",
]
