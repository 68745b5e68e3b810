"""Camera sources for the real SO-101 backend: pluggable, so tests and the servo simulator can feed frames.

A source has ``connect()``, ``read() -> (H, W, 3) uint8 RGB`` and ``disconnect()``. The real arm uses
LeRobot's OpenCV camera; ``hilserl servo-sim --mujoco`` and the tests render the MuJoCo scene
(``actors.robots.servo_sim.mujoco_plant.SceneCamera``); ``TestPatternCamera`` is a documented synthetic
source (a colour gradient that changes with each frame) for runs with neither.

Rotation and resizing happen here, once, for every source: ``CameraConfig.rotation`` (0, 90, 180,
-90; clockwise like LeRobot's Cv2Rotation) then a resize to the env's ``image_size``. A wrong
``rotation: 180`` mirrors the view, so the rotation is explicit and tested.
"""

from __future__ import annotations

import logging
import os
from typing import Protocol

import numpy as np

from configs.env import CameraConfig
from configs.errors import UserError

logger = logging.getLogger(__name__)

ROTATIONS = {0: 0, 90: -1, 180: 2, -90: 1, 270: 1}  # degrees clockwise -> np.rot90 k (counter-clockwise)
REQUIRED_CAMERAS = ("front", "wrist")


class CameraSource(Protocol):
    def connect(self) -> None: ...

    def read(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB."""
        ...

    def disconnect(self) -> None: ...


def rotate(image: np.ndarray, degrees: int) -> np.ndarray:
    if degrees not in ROTATIONS:
        raise UserError(f"camera rotation {degrees} is not supported; use one of 0, 90, 180, -90")
    k = ROTATIONS[degrees]
    return np.ascontiguousarray(np.rot90(image, k)) if k else image


def resize(image: np.ndarray, size: int) -> np.ndarray:
    if image.shape[0] == size and image.shape[1] == size:
        return image
    import cv2

    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


def to_observation(image: np.ndarray, rotation: int, size: int) -> np.ndarray:
    """A camera frame as the policy sees it: rotated, resized, (size, size, 3) uint8."""
    image = np.asarray(image)
    if image.dtype != np.uint8:
        image = np.clip(image, 0, 255).astype(np.uint8)
    return resize(rotate(image, rotation), size)


class OpenCVCameraSource:
    """A USB camera through LeRobot's OpenCVCamera (rotation is applied by ``to_observation``)."""

    def __init__(self, name: str, config: CameraConfig) -> None:
        self.name = name
        self.config = config
        self._camera = None

    def connect(self) -> None:
        from lerobot.cameras.opencv import OpenCVCamera, OpenCVCameraConfig

        where = self.config.index_or_path
        fix = (
            f"plug it in or set robot.cameras.{self.name}.index_or_path "
            "(list cameras with lerobot-find-cameras opencv)"
        )
        if isinstance(where, str) and not where.isdigit() and not os.path.exists(where):
            raise UserError(f"camera '{self.name}' at {where} does not exist; {fix}")
        index = int(where) if isinstance(where, str) and where.isdigit() else where
        camera = OpenCVCamera(
            OpenCVCameraConfig(
                index_or_path=index, fps=self.config.fps, width=self.config.width, height=self.config.height
            )
        )
        try:
            camera.connect()
        except Exception as err:
            raise UserError(f"camera '{self.name}' ({where}) could not be opened ({err}); {fix}") from err
        self._camera = camera

    def read(self) -> np.ndarray:
        return self._camera.async_read()

    def disconnect(self) -> None:
        if self._camera is not None:
            try:
                self._camera.disconnect()
            finally:
                self._camera = None


class TestPatternCamera:
    """Synthetic frames (a gradient whose phase advances each read), for runs with no camera at all."""

    __test__ = False  # not a pytest class

    def __init__(self, height: int = 96, width: int = 128) -> None:
        self.height, self.width = height, width
        self.frames = 0

    def connect(self) -> None:
        self.frames = 0

    def read(self) -> np.ndarray:
        rows = np.arange(self.height, dtype=np.uint16)[:, None]
        cols = np.arange(self.width, dtype=np.uint16)[None, :]
        image = np.empty((self.height, self.width, 3), dtype=np.uint8)
        image[..., 0] = (rows * 2 + self.frames) % 256
        image[..., 1] = (cols * 2) % 256
        image[..., 2] = 128
        self.frames += 1
        return image

    def disconnect(self) -> None:
        pass


def make_camera_sources(cameras: dict[str, CameraConfig]) -> dict[str, CameraSource]:
    """OpenCV sources for the configured cameras; both 'front' and 'wrist' are required."""
    missing = [name for name in REQUIRED_CAMERAS if name not in cameras]
    if missing:
        raise UserError(
            f"no '{missing[0]}' camera in robot.cameras; add it, e.g. "
            f"robot.cameras.{missing[0]}.index_or_path=/dev/video0"
        )
    return {name: OpenCVCameraSource(name, cameras[name]) for name in REQUIRED_CAMERAS}
