"""The learner's two data types: one ``Transition`` (what a robot step produces) and one ``Batch``.

Observations are dicts keyed by LeRobot names: camera keys (``observation.images.*``) hold uint8
(3, H, W) frames, ``observation.state`` holds a float32 vector. Actions end with the gripper
command in LeRobot's convention (``Gripper``: 0 close, 1 stay, 2 open) when the grasp critic is on. Both types check their shapes
and dtypes with ``validate`` where data crosses a process boundary (robot actor -> replay,
replay -> learner).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

import numpy as np
import torch

GRASP_PENALTY = "grasp_penalty"


class Gripper(enum.IntEnum):
    """LeRobot's discrete gripper command, the last action entry everywhere (env, recorder, datasets, learner).

    The value is also the grasp critic's Q column: command ``c`` indexes ``Q[:, c]``.
    """

    CLOSE = 0
    STAY = 1
    OPEN = 2


GRASP_ACTIONS = len(Gripper)  # columns of the grasp critic's Q


def gripper_index(command: torch.Tensor) -> torch.Tensor:
    """Stored gripper command (float, in {0, 1, 2}) -> Q column; rounded first (1.95 is OPEN), then clamped."""
    return command.round().long().clamp_(Gripper.CLOSE, Gripper.OPEN)


@dataclass
class FrameFeatures:
    """The frozen backbone's maps of a transition's two observations, computed where the frames were
    converted (the robot, which needs them to act), so that a feature replay stores them instead of
    running the backbone again. ``sha256`` names the weights; a replay with other weights, or one
    that stores shifted maps, encodes the pixels itself."""

    sha256: str
    observation: dict[str, np.ndarray]  # camera key -> (C, h, w) float16
    next_observation: dict[str, np.ndarray]


@dataclass
class Transition:
    """One environment step, as the robot actor sends it."""

    observation: dict[str, np.ndarray]  # images (3, H, W) uint8; state (S,) float32
    action: np.ndarray  # (A,) float32, executed (the human's when intervening); gripper last in {0, 1, 2}
    reward: float
    next_observation: dict[str, np.ndarray]  # same layout as observation
    terminated: bool  # the task ended (success/failure): no bootstrap from next_observation
    truncated: bool  # the episode was cut (time limit, reset): bootstrap from next_observation
    is_intervention: bool = False  # the human drove this step
    complementary_info: dict[str, float] = field(default_factory=dict)  # e.g. {"grasp_penalty": -0.02}
    features: FrameFeatures | None = None  # the frames' backbone maps, when the robot computed them

    @property
    def episode_end(self) -> bool:
        """The last step of its episode (terminated or truncated)."""
        return bool(self.terminated or self.truncated)

    def validate(
        self,
        image_keys: list[str],
        image_shape: tuple[int, ...],
        state_key: str,
        state_dim: int,
        action_dim: int,
    ) -> None:
        """Raise ValueError naming the first field whose shape or dtype is wrong."""
        for name, obs in (("observation", self.observation), ("next_observation", self.next_observation)):
            for key in image_keys:
                _check_array(obs.get(key), f"{name}[{key}]", image_shape, np.uint8)
            _check_array(obs.get(state_key), f"{name}[{state_key}]", (state_dim,), np.float32)
        _check_array(self.action, "action", (action_dim,), np.float32)


def _check_array(value, name: str, shape: tuple[int, ...], dtype) -> None:
    if value is None:
        raise ValueError(f"transition {name} is missing")
    if not isinstance(value, np.ndarray) or value.dtype != dtype or tuple(value.shape) != tuple(shape):
        got = (type(value).__name__, getattr(value, "dtype", None), tuple(getattr(value, "shape", ())))
        raise ValueError(f"transition {name}: expected {np.dtype(dtype)} {tuple(shape)}, got {got}")


@dataclass
class Batch:
    """B transitions as torch tensors (CPU after sampling; ``to(device)`` for the learner)."""

    observation: dict[str, torch.Tensor]  # images (B, 3, H, W) uint8 or features (B, C, h, w); state (B, S)
    action: torch.Tensor  # (B, A) float32
    reward: torch.Tensor  # (B,) float32
    next_observation: dict[str, torch.Tensor]  # same layout as observation
    terminated: torch.Tensor  # (B,) float32, 1.0 = no bootstrap
    truncated: torch.Tensor  # (B,) bool, kept for diagnostics; truncation still bootstraps
    is_intervention: torch.Tensor  # (B,) bool
    complementary_info: dict[str, torch.Tensor] = field(default_factory=dict)  # each (B,) float32
    source: torch.Tensor | None = None  # (B,) int8: 0 = online buffer, 1 = demo buffer

    def __len__(self) -> int:
        return int(self.action.shape[0])

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        def move(t: torch.Tensor) -> torch.Tensor:
            return t.to(device, non_blocking=non_blocking)

        return Batch(
            observation={k: move(v) for k, v in self.observation.items()},
            action=move(self.action),
            reward=move(self.reward),
            next_observation={k: move(v) for k, v in self.next_observation.items()},
            terminated=move(self.terminated),
            truncated=move(self.truncated),
            is_intervention=move(self.is_intervention),
            complementary_info={k: move(v) for k, v in self.complementary_info.items()},
            source=None if self.source is None else move(self.source),
        )

    @property
    def has_features(self) -> bool:
        """Camera entries hold stored backbone feature maps (float) instead of uint8 frames."""
        return any(v.ndim == 4 and v.is_floating_point() for v in self.observation.values())

    def validate(self, image_keys: list[str], state_key: str, action_dim: int) -> None:
        """Raise ValueError naming the first field whose shape or dtype is wrong (cheap: metadata only).

        Camera entries are either uint8 frames (B, 3, H, W) or, from a feature replay, float
        feature maps (B, C, h, w); one batch holds one kind.
        """
        size = len(self)
        features = self.has_features
        for obs in (self.observation, self.next_observation):
            for key in image_keys:
                image = obs.get(key)
                if image is None:
                    raise ValueError(f"batch {key} is missing")
                if features:
                    ok = image.is_floating_point() and image.ndim == 4 and image.shape[0] == size
                    expected = "(B, C, h, w) float features"
                else:
                    ok = image.dtype == torch.uint8 and image.ndim == 4 and image.shape[:2] == (size, 3)
                    expected = "(B, 3, H, W) uint8"
                if not ok:
                    raise ValueError(
                        f"batch {key}: expected {expected}, got {image.dtype} {tuple(image.shape)}"
                    )
            state = obs.get(state_key)
            if state is None or not (
                state.dtype == torch.float32 and state.ndim == 2 and state.shape[0] == size
            ):
                got = None if state is None else (state.dtype, tuple(state.shape))
                raise ValueError(f"batch {state_key}: expected (B, S) float32, got {got}")
        if not (self.action.shape == (size, action_dim) and self.action.dtype == torch.float32):
            raise ValueError(
                f"batch action: expected ({size}, {action_dim}) float32, got {self.action.dtype} "
                f"{tuple(self.action.shape)}"
            )
        for name, dtype in (("reward", torch.float32), ("terminated", torch.float32)) + (
            ("truncated", torch.bool),
            ("is_intervention", torch.bool),
        ):
            value = getattr(self, name)
            if not (value.shape == (size,) and value.dtype == dtype):
                raise ValueError(
                    f"batch {name}: expected ({size},) {dtype}, got {value.dtype} {tuple(value.shape)}"
                )


def concatenate(batches: list[Batch]) -> Batch:
    """One batch from several with the same keys (RLPD mixing of online and demo samples)."""
    if len(batches) == 1:
        return batches[0]

    def cat(tensors: list[torch.Tensor]) -> torch.Tensor:
        return torch.cat(tensors, dim=0)

    first = batches[0]
    return Batch(
        observation={k: cat([b.observation[k] for b in batches]) for k in first.observation},
        action=cat([b.action for b in batches]),
        reward=cat([b.reward for b in batches]),
        next_observation={k: cat([b.next_observation[k] for b in batches]) for k in first.next_observation},
        terminated=cat([b.terminated for b in batches]),
        truncated=cat([b.truncated for b in batches]),
        is_intervention=cat([b.is_intervention for b in batches]),
        complementary_info={
            k: cat([b.complementary_info[k] for b in batches]) for k in first.complementary_info
        },
        source=None if first.source is None else cat([b.source for b in batches]),
    )
