"""The next classifier's data: frames where the frozen classifier and the truth disagreed.

HIL-SERL keeps the classifier frozen within a run; this log improves it *between* runs. Every
frame where the classifier's success differs from the simulator's ground truth (or, on the real
arm, from the human's success/failure key) is written, labeled with the truth, into a LeRobot
dataset in the run folder, together with up to ``max_confirmed`` frames where both agreed on a
success. Without those the log is almost all false positives of the policy's own states, and a
classifier trained on it learns that the policy never succeeds (its false negatives on the final
policy's episodes went to all of them; ``tests/test_roles.py`` keeps the confirmed frames in)::

    outputs/rl/<run>/next_classifier/robot-0/     a labeled LeRobot v3.0 dataset (next.reward 0/1)

which ``hilserl train-reward`` takes as ``dataset.root`` (alone, or after ``hilserl label``-style
merging with the original labeled set) to train the next checkpoint for the next run. Episodes of
the log are the robot's episodes that had at least one disagreement; at most ``max_frames`` are kept,
spread over the whole run when its length is known.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

EARLY_ALLOWANCE = 20
"""Frames the log may take ahead of its even share of the run (the run's first episodes)."""
REWARD = "next.reward"
PROBABILITY = "complementary_info.classifier_probability"


class DisagreementLog:
    """Collects disagreeing frames per episode and writes them through LeRobot's own writer."""

    def __init__(
        self,
        root: Path,
        fps: int,
        image_keys: list[str],
        state_key: str,
        max_frames: int = 2000,
        max_confirmed: int = 500,
    ):
        root = Path(root)
        restart = 1
        while root.exists():  # a restarted robot starts a log of its own; the old one stays as written
            restart += 1
            root = root.with_name(f"{Path(root).name.split('.')[0]}.{restart}")
        self.root = root
        self.fps = int(fps)
        self.image_keys = list(image_keys)
        self.state_key = state_key
        self.max_frames = int(max_frames)
        self.max_confirmed = int(max_confirmed)
        self.pending: list[dict[str, Any]] = []
        self.dataset: Any = None
        self.frames = self.false_positives = self.false_negatives = self.confirmed = 0

    @staticmethod
    def _budget(limit: int, progress: float | None) -> float:
        """How many of ``limit`` frames may be used by now: spread over the run when its length is
        known (``progress``: the fraction of the run's env steps done), so a run's first episodes,
        where the untrained policy disagrees most, cannot use up the log; all of it otherwise."""
        if progress is None:
            return limit
        return min(limit, limit * max(0.0, float(progress)) + EARLY_ALLOWANCE)

    def add(
        self,
        observation: dict[str, Any],
        truth: bool,
        probability: float,
        agreed: bool = False,
        progress: float | None = None,
    ) -> None:
        """A frame the classifier got wrong (``agreed=False``), or a success both agreed on."""
        if agreed:
            if not truth or self.confirmed >= self._budget(self.max_confirmed, progress):
                return
        elif self.frames + len(self.pending) - self.confirmed >= self._budget(self.max_frames, progress):
            return
        frame = {k: np.asarray(observation[k], dtype=np.uint8) for k in self.image_keys}
        frame[self.state_key] = np.asarray(observation[self.state_key], dtype=np.float32).reshape(-1)
        frame[REWARD] = np.array([1.0 if truth else 0.0], dtype=np.float32)
        frame[PROBABILITY] = np.array([probability], dtype=np.float32)
        self.pending.append(frame)
        if agreed:
            self.confirmed += 1
        elif truth:
            self.false_negatives += 1
        else:
            self.false_positives += 1

    def _create(self, first: dict[str, Any]) -> None:
        from lerobot.datasets.lerobot_dataset import LeRobotDataset

        features = {
            k: {"dtype": "image", "shape": tuple(first[k].shape), "names": ["height", "width", "channels"]}
            for k in self.image_keys
        }
        features[self.state_key] = {
            "dtype": "float32",
            "shape": tuple(first[self.state_key].shape),
            "names": None,
        }
        features[REWARD] = {"dtype": "float32", "shape": (1,), "names": None}
        features[PROBABILITY] = {"dtype": "float32", "shape": (1,), "names": None}
        self.root.parent.mkdir(parents=True, exist_ok=True)
        self.dataset = LeRobotDataset.create(
            repo_id=f"local/{self.root.name}",
            fps=self.fps,
            features=features,
            root=self.root,
            use_videos=True,
        )
        # LeRobot 0.6 writes the episode metadata in batches of 10 to one parquet file whose schema
        # the first batch fixes; in a long run a later batch's index statistics came out as floats
        # where the first batch's were ints, and finalize() failed ("Table schema does not match").
        # One batch at finalize() gets one schema (ints and floats together become floats).
        if hasattr(self.dataset.meta, "_metadata_buffer_size"):
            self.dataset.meta._metadata_buffer_size = 1 << 30

    def end_episode(self) -> None:
        """Write this episode's disagreements (if any) as one dataset episode."""
        if not self.pending:
            return
        if self.dataset is None:
            self._create(self.pending[0])
        for frame in self.pending:
            self.dataset.add_frame({**frame, "task": "classifier disagreement"})
        self.dataset.save_episode()
        self.frames += len(self.pending)
        self.pending = []

    def close(self) -> None:
        self.pending = []  # an unfinished episode is dropped
        if self.dataset is not None:
            self.dataset.finalize()
            logger.info(
                "next-classifier log: %d frames (%d false positives, %d false negatives, %d confirmed successes) in %s",
                self.frames,
                self.false_positives,
                self.false_negatives,
                self.confirmed,
                self.root,
            )
