"""Write a new LeRobot v3.0 dataset from a `SourceDataset`, frame by frame, through LeRobot's own writer.

`LeRobotDataset.create` / `add_frame` / `save_episode` / `finalize` derive everything a hand edit gets
wrong: contiguous global `index`, `frame_index`, timestamps, episode lengths and offsets,
per-episode and global stats, totals, and videos re-encoded from exactly the frames kept. Used by
`hilserl label` (new rewards, dropped reset frames, flipped cameras) and `hilserl doctor --fix`.
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from configs.errors import UserError
from reward.dataset import DERIVED_KEYS, REWARD_KEY, V21, is_dataset_root, safe_output
from reward.dataset_source import SourceDataset

logger = logging.getLogger(__name__)

REWARD_FEATURE = {"dtype": "float32", "shape": (1,), "names": None}


@dataclass(frozen=True)
class EpisodePlan:
    """What to write for one source episode: its first ``keep`` frames, with these rewards if given."""

    episode: int
    keep: int
    rewards: np.ndarray | None = None  # (keep,) float32; None keeps the source's reward column as is


def output_features(source: SourceDataset, reward_key: str | None) -> dict[str, dict]:
    """The source's features minus the derived ones (LeRobot adds those), plus the reward column if asked."""
    features = {
        # "info" describes the source's encoding; LeRobot fills it from the video it writes.
        key: {k: v for k, v in ft.items() if k not in ("fps", "info", "video_info")}
        for key, ft in source.features.items()
        if key not in DERIVED_KEYS
    }
    for ft in features.values():
        ft["shape"] = tuple(ft["shape"])
    if reward_key is not None and reward_key not in features:
        features[reward_key] = dict(REWARD_FEATURE)
    return features


def write_dataset(
    source: SourceDataset,
    root: Path,
    plans: list[EpisodePlan],
    reward_key: str = REWARD_KEY,
    flip_keys: tuple[str, ...] = (),
    repo_id: str | None = None,
    progress: bool = True,
) -> None:
    """Write the planned episodes of ``source`` as a new v3.0 dataset at ``root`` (which must not exist).

    Keeps the source's fps, robot_type, features, tasks and video/image choice. Episodes are renumbered
    0..n-1 in plan order.
    """
    quiet_third_party_output()
    _write(source, root, plans, reward_key, flip_keys, repo_id, progress)
    _remove_empty_dirs(Path(root) / "images")


class _DropRootInfo(logging.Filter):
    """Drop INFO records logged straight to the root logger (third-party ``logging.info`` calls; the
    project's own modules log through named loggers, which this filter does not see)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def _write(source, root, plans, reward_key, flip_keys, repo_id, progress) -> None:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    with_rewards = any(plan.rewards is not None for plan in plans)
    features = output_features(source, reward_key if with_rewards else None)
    dataset = LeRobotDataset.create(
        repo_id=repo_id or f"local/{Path(root).name.lstrip('.')}",
        fps=source.fps,
        features=features,
        root=root,
        robot_type=source.robot_type,
        use_videos=bool(source.video_keys),
        video_backend="pyav",
    )
    total = sum(plan.keep for plan in plans)
    try:
        with tqdm(total=total, desc="writing frames", unit="frame", disable=not progress, leave=False) as bar:
            for plan in plans:
                if plan.keep == 0:
                    continue
                for i, frame in enumerate(source.frames(plan.episode, plan.keep, flip_keys)):
                    if plan.rewards is not None:
                        frame[reward_key] = np.asarray([plan.rewards[i]], dtype=np.float32)
                    try:
                        dataset.add_frame(frame)
                    except ValueError as err:  # LeRobot's frame validation: shape/dtype vs the features
                        reason = " ".join(str(err).split())
                        raise UserError(
                            f"episode {plan.episode} frame {i} of {source.root} does not match its own "
                            f"meta/info.json features ({reason}); repair meta/info.json first"
                        ) from None
                    bar.update(1)
                dataset.save_episode()
        dataset.finalize()
    except BaseException:
        _abandon(dataset)
        raise


def _abandon(dataset) -> None:
    """Close LeRobot's writers now: left to ``__del__`` they would flush files into the output folder
    after the caller has removed it (an interrupted run must leave nothing behind). The episode rows
    LeRobot still buffers are dropped unwritten; 0.6 has no public call for that."""
    dataset.meta._metadata_buffer.clear()
    try:
        dataset.finalize()
    except Exception:  # the write already failed; its error is the one to report
        logger.debug("closing the abandoned writer failed", exc_info=True)


def rewrite_dataset(
    source_root: str | Path,
    dest_root: str | Path,
    overwrite: bool = False,
    progress: bool = True,
    drop: set[int] = frozenset(),
    skip_unreadable: bool = False,
) -> Path:
    """Copy every frame of a dataset (v3.0 or v2.1) into a new v3.0 root, recomputing everything derived.

    This is both the v2.1 -> v3.0 conversion and `hilserl doctor --fix`'s repair. The source is only read;
    the new root appears only once complete (`safe_output`). Episodes in ``drop`` are left out (the
    rest are renumbered 0..n-1), and with ``skip_unreadable`` so are data files that cannot be read.
    Returns the new root.
    """
    source = SourceDataset(source_root, skip_unreadable=skip_unreadable)
    if source.layout == V21:
        logger.info(
            "converting %s from the v2.1 layout into a new v3.0 root %s; the source is left untouched",
            source.root,
            dest_root,
        )
    plans = [
        EpisodePlan(episode, length) for episode, length in source.lengths.items() if episode not in drop
    ]
    with safe_output(dest_root, [source.root], overwrite, ours=is_dataset_root) as tmp:
        write_dataset(source, tmp, plans, repo_id=f"local/{Path(dest_root).name}", progress=progress)
    return Path(dest_root).expanduser().resolve()


def quiet_third_party_output() -> None:
    """Keep our output readable: no SVT-AV1 banner per video, no `datasets` map bars, no libav info."""
    os.environ.setdefault("SVT_LOG", "1")
    try:
        from datasets.utils.logging import disable_progress_bar

        disable_progress_bar()
    except ImportError:  # pragma: no cover - datasets is a LeRobot dependency
        pass
    try:
        import av

        av.logging.set_level(av.logging.ERROR)
        # LeRobot calls av.logging.restore_default_callback() after each encode, which hands libav's
        # messages ("[mp4 @ ...] Starting second pass") back to its own printer: set that printer's level too.
        av.logging.set_libav_level(av.logging.ERROR)
    except (ImportError, AttributeError):  # pragma: no cover
        pass
    # LeRobot's stats on a bool column (next.done): numpy's histogram warns once per process.
    warnings.filterwarnings("ignore", message="Converting input from bool", category=RuntimeWarning)
    root = logging.getLogger()
    if not any(isinstance(f, _DropRootInfo) for f in root.filters):
        root.addFilter(_DropRootInfo())  # LeRobot's "Using video codec" INFO per video, on the root logger


def _remove_empty_dirs(path: Path) -> None:
    """LeRobot leaves an empty images/ tree behind once frames are encoded into videos."""
    if not path.is_dir():
        return
    for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if child.is_dir() and not any(child.iterdir()):
            child.rmdir()
    if not any(path.iterdir()):
        path.rmdir()
