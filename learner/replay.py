"""Replay storage: uint8 frames stored once, next observation by index, episode-aware, atomic on disk.

Layout (one ring of ``capacity`` slots, numpy arrays allocated zeroed so pages commit as they fill)::

    slot        s0    s1    s2    s3    s4    s5 ...
    frame       o0    o1    o2    o3'   p0    p1        o3' = final obs of episode A, p0 = first of B
    step data   a0,r0 a1,r1 a2,r2 -     q0    ...       a2 is the truncated/terminated last step of A
    valid       1     1     1     0     1     0 (pending: its next frame has not arrived yet)

The transition in slot i is (frame[i], step[i], frame[i+1]). When an episode ends, its final next
observation gets a slot of its own that is never sampled, so the last step of a truncated episode
bootstraps from its OWN next observation, never from the next episode's first frame (LeRobot's
optimize_memory bug). ``terminated`` masks the bootstrap; ``truncated`` does not.

A transition whose observation is not bitwise the frame the open segment ended on starts a new
segment. That is what makes the demo buffer correct for interventions, which arrive as
non-contiguous pieces of an episode: each piece keeps its own final next observation.

The ring overwrites the oldest slot first; a slot is only valid while the slot after it still
holds the frame written right after it, which the write order guarantees.

Feature mode (``encoder=FeatureEncoder``, see ``vision.features``): transitions still arrive
with uint8 frames, but each slot stores the frames' float16 backbone maps instead; ``add`` encodes
one transition's frames, ``extend`` all of its new frames in batched backbone calls. Batches then
carry (B, C, h, w) float16 maps under the camera keys. A digest of the newest frame replaces the
bitwise frame comparison that detects a continuing segment.

    buffer = ReplayBuffer.from_config(cfg, capacity=1000)            # encoder=... for feature mode
    buffer.add(transition)
    batch = buffer.sample(256)                   # learner.types.Batch, CPU, uint8 images or features
    buffer.save("run/online.npz"); ReplayBuffer.load("run/online.npz")   # encoder=... for feature mode
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch

from configs.errors import UserError
from configs.learner import LearnerConfig
from learner.types import GRASP_PENALTY, Batch, Transition, concatenate
from vision.features import FEATURE_DTYPE, FeatureEncoder, draw_shift

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


class ReplayBuffer:
    """A fixed-capacity ring of transitions with images stored once as uint8."""

    def __init__(
        self,
        capacity: int,
        image_keys: Sequence[str],
        image_shape: tuple[int, int, int],
        state_key: str,
        state_dim: int,
        action_dim: int,
        complementary_keys: Sequence[str] = (GRASP_PENALTY,),
        seed: int = 0,
        encoder: FeatureEncoder | None = None,
    ):
        if capacity < 2:
            raise UserError(f"replay capacity {capacity} is too small; use at least 2 slots")
        self.capacity = int(capacity)
        self.image_keys = list(image_keys)
        self.image_shape = tuple(int(v) for v in image_shape)
        self.state_key = state_key
        self.state_dim = int(state_dim)
        self.action_dim = int(action_dim)
        self.complementary_keys = list(complementary_keys)
        self.rng = np.random.default_rng(seed)
        self.encoder = encoder if self.image_keys else None
        n = self.capacity
        # np.zeros maps untouched pages lazily: memory grows with the fill, not the capacity.
        # Pixel mode: uint8 frames. Feature mode: float16 backbone maps of the frames.
        slot_shape, slot_dtype = (
            (self.encoder.feature_shape, FEATURE_DTYPE) if self.encoder else (self.image_shape, np.uint8)
        )
        self.frames = {key: np.zeros((n, *slot_shape), dtype=slot_dtype) for key in self.image_keys}
        self._pending: list[tuple[int, dict[str, np.ndarray]]] = []  # feature mode: frames to encode
        self.open_digest: str | None = None  # feature mode: digest of the newest slot's frame
        self.state = np.zeros((n, self.state_dim), dtype=np.float32)
        self.action = np.zeros((n, self.action_dim), dtype=np.float32)
        self.reward = np.zeros(n, dtype=np.float32)
        self.terminated = np.zeros(n, dtype=bool)
        self.truncated = np.zeros(n, dtype=bool)
        self.is_intervention = np.zeros(n, dtype=bool)
        self.complementary = {key: np.zeros(n, dtype=np.float32) for key in self.complementary_keys}
        self.valid = np.zeros(n, dtype=bool)  # slot i holds a sampleable transition
        self.write_pos = 0  # next slot to claim
        self.size = 0  # slots written so far (<= capacity)
        self.num_valid = 0
        self.episode_open = False  # the newest slot is the next observation of an unfinished segment
        self.added = 0  # transitions added over the buffer's life

    @property
    def stores_features(self) -> bool:
        return self.encoder is not None

    @classmethod
    def from_config(
        cls, cfg: LearnerConfig, capacity: int, seed: int | None = None, encoder: FeatureEncoder | None = None
    ) -> ReplayBuffer:
        return cls(
            capacity=capacity,
            image_keys=cfg.image_keys,
            image_shape=(3, cfg.image_size, cfg.image_size),
            state_key=cfg.state_key,
            state_dim=cfg.state_dim,
            action_dim=cfg.action_dim,
            seed=cfg.seed if seed is None else seed,
            encoder=encoder,
        )

    def __len__(self) -> int:
        """Number of sampleable transitions."""
        return self.num_valid

    @property
    def bytes_per_slot(self) -> int:
        """Bytes one slot occupies across all arrays."""
        arrays = [*self.frames.values(), self.state, self.action, self.reward, self.terminated]
        arrays += [self.truncated, self.is_intervention, self.valid, *self.complementary.values()]
        return sum(a.itemsize * int(np.prod(a.shape[1:], dtype=np.int64)) for a in arrays)

    # ------------------------------------------------------------------ writing
    def _claim(self) -> int:
        slot = self.write_pos
        if self.valid[slot]:
            self.valid[slot] = False
            self.num_valid -= 1
        self.write_pos = (slot + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        return slot

    def _newest(self) -> int:
        return (self.write_pos - 1) % self.capacity

    def _digest(self, observation: dict[str, np.ndarray]) -> str:
        digest = hashlib.blake2b(digest_size=16)
        for key in [*self.image_keys, self.state_key]:
            digest.update(np.ascontiguousarray(observation[key]).tobytes())
        return digest.hexdigest()

    def _write_frame(self, slot: int, observation: dict[str, np.ndarray]) -> None:
        if self.encoder is not None:
            self._pending.append((slot, observation))
            self.open_digest = self._digest(observation)
        else:
            for key in self.image_keys:
                self.frames[key][slot] = observation[key]
        self.state[slot] = observation[self.state_key]

    def _flush(self) -> None:
        """Feature mode: encode every pending frame (all cameras) in batched backbone calls."""
        if not self._pending:
            return
        slots = np.array([slot for slot, _ in self._pending])
        n = len(slots)
        maps = self.encoder.encode_frames([obs[key] for key in self.image_keys for _, obs in self._pending])
        for i, key in enumerate(self.image_keys):
            # In slot order: a slot claimed twice in one extend (ring wrap) keeps its newest frame.
            self.frames[key][slots] = maps[i * n : (i + 1) * n]
        self._pending.clear()

    def _continues_open_segment(self, observation: dict[str, np.ndarray]) -> bool:
        if not self.episode_open:
            return False
        slot = self._newest()
        if not np.array_equal(self.state[slot], observation[self.state_key]):
            return False
        if self.encoder is not None:
            return self.open_digest == self._digest(observation)
        return all(np.array_equal(self.frames[key][slot], observation[key]) for key in self.image_keys)

    def add(self, transition: Transition) -> None:
        """Store one transition: one new frame (two when a segment starts)."""
        self._add(transition)
        self._flush()

    def _add(self, transition: Transition) -> None:
        transition.validate(
            self.image_keys, self.image_shape, self.state_key, self.state_dim, self.action_dim
        )
        features = transition.features
        if self.encoder is not None and features is not None and self.encoder.accepts(features.sha256):
            for obs, maps in (
                (transition.observation, features.observation),
                (transition.next_observation, features.next_observation),
            ):
                for key in self.image_keys:
                    self.encoder.remember(obs[key], maps[key])
        if self._continues_open_segment(transition.observation):
            slot = self._newest()
        else:
            slot = self._claim()
            self._write_frame(slot, transition.observation)
        self.action[slot] = transition.action
        self.reward[slot] = transition.reward
        self.terminated[slot] = transition.terminated
        self.truncated[slot] = transition.truncated
        self.is_intervention[slot] = transition.is_intervention
        for key in self.complementary_keys:
            self.complementary[key][slot] = transition.complementary_info.get(key, 0.0)
        next_slot = self._claim()
        self._write_frame(next_slot, transition.next_observation)
        # Valid only now: its next frame sits in the slot claimed right after it.
        self.valid[slot] = True
        self.num_valid += 1
        self.episode_open = not transition.episode_end
        self.added += 1

    def extend(self, transitions: Sequence[Transition]) -> None:
        """Store several transitions; in feature mode their new frames are encoded together."""
        try:
            for transition in transitions:
                self._add(transition)
        finally:
            self._flush()

    # ----------------------------------------------------------------- sampling
    def sample_indices(self, batch_size: int) -> np.ndarray:
        """Uniform over valid slots (rejection sampling: invalid slots are ~1 per episode)."""
        if self.num_valid == 0:
            raise RuntimeError("cannot sample from an empty replay buffer; add transitions first")
        chosen: list[np.ndarray] = []
        missing = batch_size
        while missing > 0:
            candidates = self.rng.integers(0, self.size, size=2 * missing + 8)
            candidates = candidates[self.valid[candidates]][:missing]
            chosen.append(candidates)
            missing -= len(candidates)
        return np.concatenate(chosen)

    def gather(self, indices: np.ndarray, source: int = 0) -> Batch:
        """The transitions in ``indices`` as a CPU Batch (uint8 images, or float16 maps in feature mode)."""
        next_indices = (indices + 1) % self.capacity
        observation: dict[str, torch.Tensor] = {}
        next_observation: dict[str, torch.Tensor] = {}
        shifted = self.encoder is not None and self.encoder.shifts > 0
        for key in self.image_keys:
            frames = self.frames[key]
            if shifted:  # one of the K stored shifts per sample, obs and next obs independently
                observation[key] = torch.from_numpy(draw_shift(frames, indices, self.rng))
                next_observation[key] = torch.from_numpy(draw_shift(frames, next_indices, self.rng))
            else:
                observation[key] = torch.from_numpy(frames.take(indices, axis=0))
                next_observation[key] = torch.from_numpy(frames.take(next_indices, axis=0))
        observation[self.state_key] = torch.from_numpy(self.state.take(indices, axis=0))
        next_observation[self.state_key] = torch.from_numpy(self.state.take(next_indices, axis=0))
        return Batch(
            observation=observation,
            action=torch.from_numpy(self.action.take(indices, axis=0)),
            reward=torch.from_numpy(self.reward.take(indices)),
            next_observation=next_observation,
            terminated=torch.from_numpy(self.terminated.take(indices).astype(np.float32)),
            truncated=torch.from_numpy(self.truncated.take(indices)),
            is_intervention=torch.from_numpy(self.is_intervention.take(indices)),
            complementary_info={k: torch.from_numpy(v.take(indices)) for k, v in self.complementary.items()},
            source=torch.full((len(indices),), source, dtype=torch.int8),
        )

    def sample(self, batch_size: int, source: int = 0) -> Batch:
        return self.gather(self.sample_indices(batch_size), source=source)

    # -------------------------------------------------------------- persistence
    def _meta(self) -> dict:
        return {
            "format_version": FORMAT_VERSION,
            "capacity": self.capacity,
            "image_keys": self.image_keys,
            "image_shape": list(self.image_shape),
            "state_key": self.state_key,
            "state_dim": self.state_dim,
            "action_dim": self.action_dim,
            "complementary_keys": self.complementary_keys,
            "write_pos": self.write_pos,
            "size": self.size,
            "num_valid": self.num_valid,
            "episode_open": self.episode_open,
            "added": self.added,
            "rng": self.rng.bit_generator.state,
            "features": None
            if self.encoder is None
            else {
                "backbone_sha256": self.encoder.sha256,
                "shape": list(self.encoder.feature_shape),
                "shifts": self.encoder.shifts,
                "pad": self.encoder.pad,
                "open_digest": self.open_digest,
            },
        }

    def save(self, path: str | Path) -> Path:
        """Write the buffer to ``path`` (.npz) atomically: a temp file in the same folder, then os.replace."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        n = self.size
        arrays = {f"frames/{key}": self.frames[key][:n] for key in self.image_keys}
        arrays |= {f"complementary/{key}": self.complementary[key][:n] for key in self.complementary_keys}
        for name in ("state", "action", "reward", "terminated", "truncated", "is_intervention", "valid"):
            arrays[name] = getattr(self, name)[:n]
        arrays["meta"] = np.frombuffer(json.dumps(self._meta()).encode(), dtype=np.uint8)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **arrays)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return path

    @classmethod
    def load(cls, path: str | Path, backbone=None) -> ReplayBuffer:
        """Read a saved buffer; one holding features needs the ``FrozenBackbone`` they came from."""
        path = Path(path)
        if not path.is_file():
            raise UserError(
                f"no replay buffer file at {path}; check the path or start without resuming the buffer"
            )
        with np.load(path) as data:
            meta = json.loads(bytes(data["meta"]).decode())
            if meta.get("format_version") != FORMAT_VERSION:
                raise UserError(
                    f"{path} has replay format {meta.get('format_version')}, expected {FORMAT_VERSION}"
                )
            encoder = _encoder_for(path, meta.get("features"), backbone)
            buffer = cls(
                capacity=meta["capacity"],
                image_keys=meta["image_keys"],
                image_shape=tuple(meta["image_shape"]),
                state_key=meta["state_key"],
                state_dim=meta["state_dim"],
                action_dim=meta["action_dim"],
                complementary_keys=meta["complementary_keys"],
                encoder=encoder,
            )
            n = meta["size"]
            for key in buffer.image_keys:
                buffer.frames[key][:n] = data[f"frames/{key}"]
            for key in buffer.complementary_keys:
                buffer.complementary[key][:n] = data[f"complementary/{key}"]
            for name in ("state", "action", "reward", "terminated", "truncated", "is_intervention", "valid"):
                getattr(buffer, name)[:n] = data[name]
        for name in ("write_pos", "size", "num_valid", "episode_open", "added"):
            setattr(buffer, name, meta[name])
        buffer.rng.bit_generator.state = meta["rng"]
        if encoder is not None:
            buffer.open_digest = meta["features"]["open_digest"]
        return buffer


def _encoder_for(path: Path, features: dict | None, backbone) -> FeatureEncoder | None:
    """The encoder a saved feature buffer needs, refusing a backbone with other weights."""
    if features is None:
        if backbone is not None:
            raise UserError(
                f"{path} holds uint8 frames, not features; resume it with feature_cache: false, or delete it"
            )
        return None
    if backbone is None:
        raise UserError(f"{path} holds backbone features; load it with the run's ResNet-10 (backbone=...)")
    encoder = FeatureEncoder(backbone, shifts=features["shifts"], pad=features["pad"])
    if encoder.sha256 != features["backbone_sha256"] or list(encoder.feature_shape) != features["shape"]:
        raise UserError(
            f"{path} holds features of other ResNet-10 weights (sha256 {features['backbone_sha256'][:12]}, "
            f"this backbone {encoder.sha256[:12]}); point vision_model_name at the weights it was filled with, "
            "or delete it and re-import the demos"
        )
    return encoder


class MixedReplay:
    """Online + demo buffers, sampled RLPD-style: ``online_ratio`` of each batch from the online one.

    Routing follows HIL-SERL (paper Sec. 3.4): every transition goes to the online buffer, human
    interventions go to the demo buffer as well.
    """

    def __init__(self, online: ReplayBuffer, demo: ReplayBuffer, online_ratio: float = 0.5):
        self.online = online
        self.demo = demo
        self.online_ratio = float(online_ratio)

    @classmethod
    def from_config(cls, cfg: LearnerConfig, backbone=None) -> MixedReplay:
        """Both buffers; with ``cfg.uses_feature_replay`` they store features of ``backbone``
        (a ``FrozenBackbone``, loaded from ``cfg`` when None) through one shared ``FeatureEncoder``."""
        encoder = None
        if cfg.uses_feature_replay:
            from vision.backbone import FrozenBackbone

            backbone = backbone if backbone is not None else FrozenBackbone.from_config(cfg)
            encoder = FeatureEncoder.from_config(cfg, backbone.to(cfg.device))
        online = ReplayBuffer.from_config(cfg, cfg.online_capacity, seed=cfg.seed, encoder=encoder)
        demo = ReplayBuffer.from_config(cfg, cfg.demo_capacity, seed=cfg.seed + 1, encoder=encoder)
        return cls(online, demo, cfg.online_ratio)

    @property
    def stores_features(self) -> bool:
        return self.online.stores_features

    def add(self, transition: Transition) -> None:
        self.online.add(transition)
        if transition.is_intervention:
            self.demo.add(transition)

    def extend(self, transitions: Sequence[Transition]) -> None:
        """Route like ``add``, each buffer encoding its new frames in one batched pass (feature mode)."""
        self.online.extend(transitions)
        self.demo.extend([t for t in transitions if t.is_intervention])

    def __len__(self) -> int:
        return len(self.online) + len(self.demo)

    def split(self, batch_size: int) -> tuple[int, int]:
        """(from online, from demo); all from one side while the other is empty."""
        if len(self.demo) == 0:
            return batch_size, 0
        if len(self.online) == 0:
            return 0, batch_size
        n_online = int(round(batch_size * self.online_ratio))
        return n_online, batch_size - n_online

    def sample(self, batch_size: int) -> Batch:
        n_online, n_demo = self.split(batch_size)
        parts = []
        if n_online:
            parts.append(self.online.sample(n_online, source=0))
        if n_demo:
            parts.append(self.demo.sample(n_demo, source=1))
        return concatenate(parts)

    def batches(self, batch_size: int) -> Iterator[Batch]:
        """An endless iterator of mixed batches (what ``SACAgent.update`` pulls from)."""
        while True:
            yield self.sample(batch_size)

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        self.online.save(folder / "online.npz")
        self.demo.save(folder / "demo.npz")

    @classmethod
    def load(cls, folder: str | Path, online_ratio: float = 0.5, backbone=None) -> MixedReplay:
        """Read ``save``'s folder; feature buffers need the ``FrozenBackbone`` (same weights hash)."""
        folder = Path(folder)
        return cls(
            ReplayBuffer.load(folder / "online.npz", backbone),
            ReplayBuffer.load(folder / "demo.npz", backbone),
            online_ratio,
        )
