"""Where a LeRobotDataset lives. The local root is always explicit; the hub is never consulted."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DatasetConfig:
    """A LeRobotDataset on local disk (seed 002: an implicit root let a hub copy replace local data)."""

    repo_id: str = "local/dataset"
    """Dataset name. Only used as a label: nothing is downloaded or pushed."""
    root: str | None = None
    """Local dataset root (the folder holding meta/, data/, videos/). Required by commands that read data."""
    video_backend: str = "pyav"
    """(LeRobot compatibility) the project's reader always decodes with PyAV (no system FFmpeg needed)."""
    episodes: list[int] | None = None
    """Restrict to these episode indices (all when unset)."""
    extra_roots: list[str] | None = None
    """(train-reward) More labeled datasets with the same cameras, trained on together with root:
    e.g. a run's next_classifier/robot-0, the frames the last classifier got wrong."""

    def roots(self) -> list[str]:
        """root, then every extra root (the datasets a command reads)."""
        return [r for r in [self.root, *(self.extra_roots or [])] if r]
