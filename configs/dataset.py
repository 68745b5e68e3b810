"""Where a LeRobotDataset lives. The local root is always explicit; the hub is never consulted."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class DatasetConfig:
    """A LeRobotDataset on local disk (an implicit root can let a hub copy replace local data)."""

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
    drop_label_edges: bool = False
    """(train-reward, eval-reward) Leave out each frame whose label differs from the previous frame's
    in its episode. A recorded frame's ``next.reward`` rewards the step FROM its image, so the first
    success-labeled image of a recording shows the arm before the grasp; trained on it, a classifier
    fires one step early, on a state a policy can reach without closing the gripper. The edge frame
    is where a recording and a hand labeling (``hilserl label``: the image's own state) disagree."""

    def roots(self) -> list[str]:
        """root, then every extra root (the datasets a command reads)."""
        return [r for r in [self.root, *(self.extra_roots or [])] if r]
