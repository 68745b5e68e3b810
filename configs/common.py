"""Small schema pieces shared by several configs."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class FeatureSpec:
    """One input feature, in LeRobot's ``PolicyFeature`` JSON shape."""

    type: str = "VISUAL"
    """Feature type: VISUAL, STATE, ENV, ACTION (LeRobot's FeatureType names)."""
    shape: list[int] = field(default_factory=list)
    """Shape without the batch dimension, e.g. [3, 128, 128] for an image."""
