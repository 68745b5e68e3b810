"""The robot's transition writer: each env step becomes one ``Transition`` on its way to the replay.

    writer = TransitionWriter(ReplayClient(peer), "robot-0", cfg.runtime, cfg.learner, hold=robot.hold)
    writer.resume()             # go on with the replay's sequence (a restarted robot is no duplicate)
    writer.write(step)          # the step as a transition in the current chunk; counted and digested
    writer.send(step.done)      # async: a full chunk (or an episode's last) is queued; never blocks
    writer.send_and_wait()      # lockstep: the chunk goes now and is acknowledged before the next step
    writer.flush(timeout_s=30)  # at the end: the partial chunk too

Each camera frame is converted to the networks' (3, H, W) layout once, when it arrives as a step's
next observation; the next step's observation is that same converted frame (``converted`` hands it
to the policy too), so within a chunk a transition's ``observation`` and its predecessor's
``next_observation`` are one array, which pickling (and so Ray) sends once.

With ``encode`` (a feature replay whose frozen backbone is the policy's) each frame also runs
through the backbone once, right there: the policy acts on those maps (``maps``) and the transition
carries them as float16 (``learner.types.FrameFeatures``), which the replay stores instead of
encoding the pixels again. One backbone pass per frame, on the robot.

Chunks carry ``(robot, seq)``; the replay drops a re-sent one, so a chunk whose acknowledgement was
lost is simply sent again. At most one send is in flight and at most ``max_queued_chunks`` wait
(bounded memory); while the replay is unreachable or the queue is full, ``hold`` keeps the arm at a
safe stop. ``digest`` hashes every transition sent, in order: two runs compare in one line.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from actors.loop.episode import EpisodeStep
from actors.roles.clients import ReplayClient
from actors.roles.evaluate import to_chw
from actors.roles.peers import Call, PeerUnavailable
from configs.learner import LearnerConfig
from configs.rl import RuntimeConfig
from learner.types import GRASP_PENALTY, FrameFeatures, Transition

logger = logging.getLogger(__name__)

POLICY_VERSION = "policy_version"
"""The complementary_info key naming the weights that proposed a transition's action (-1: the human)."""
VERSIONS_KEPT = 1000
KEPT = 2
"""Converted observations kept: a step's observation and its next one."""


@dataclass
class _Converted:
    obs: dict[str, Any]  # the env's observation (kept to compare by identity)
    frame: dict[str, np.ndarray]  # cameras (3, H, W) uint8, state float32
    maps: dict[str, torch.Tensor] | None = None  # backbone maps, (1, C, h, w) float32: to act, to score
    features: dict[str, np.ndarray] | None = None  # the same as stored, (C, h, w) float16


class TransitionWriter:
    """Transitions of one robot, in acknowledged chunks, to the replay."""

    def __init__(
        self,
        replay: ReplayClient,
        robot: str,
        runtime: RuntimeConfig,
        lcfg: LearnerConfig,
        hold: Callable[[str], None],
        encode: Callable[[dict[str, np.ndarray]], dict[str, torch.Tensor]] | None = None,
        features_sha256: str | None = None,
    ):
        self.replay, self.robot, self.hold = replay, robot, hold
        self.chunk_size, self.max_queued = runtime.chunk_size, runtime.max_queued_chunks
        self.image_keys, self.state_key = list(lcfg.image_keys), lcfg.state_key
        self._chunk: list[Transition] = []
        self._queue: deque[tuple[int, list[Transition]]] = deque()
        self._inflight: tuple[Call, int, list[Transition]] | None = None
        self._seq = 0
        self.acked = 0  # transitions the replay acknowledged
        self.sent_bytes = 0  # camera bytes in the chunks queued (robot -> replay traffic)
        self.sent_versions: list[int] = []  # the policy version of each of the last transitions
        self.digest = hashlib.sha256()
        self.frames_converted = 0  # observations converted to (3, H, W): one per env step and reset
        self.frames_encoded = 0  # observations run through the backbone here (with encode)
        self._recent: list[_Converted] = []  # the newest observations, converted
        self.encode, self.features_sha256 = encode, features_sha256
        self.on_ack: Callable[[], None] | None = None  # after an acknowledgement (the robot's "back" line)

    @property
    def queued_chunks(self) -> int:
        return len(self._queue)

    def resume(self) -> None:
        """Continue the replay's sequence for this robot, holding while the replay is unreachable."""
        while True:
            try:
                self._seq = max(self._seq, int(self.replay.next_seq(self.robot).result(timeout=30)))
                return
            except PeerUnavailable:
                self.hold("replay")

    def _entry(self, obs: dict[str, Any]) -> _Converted:
        """The conversion of ``obs``, made once: the two newest observations (a step's observation
        and its next one) are kept, since the policy, the reward and this writer each ask."""
        for entry in self._recent:
            if entry.obs is obs:
                return entry
        frame = {k: to_chw(obs[k]) for k in self.image_keys}
        frame[self.state_key] = np.asarray(obs[self.state_key], dtype=np.float32)
        entry = _Converted(obs, frame)
        self.frames_converted += 1
        if self.encode is not None:
            entry.maps = self.encode(frame)
            entry.features = {k: v[0].to(torch.float16).cpu().numpy() for k, v in entry.maps.items()}
            self.frames_encoded += 1
        self._recent = [*self._recent[-(KEPT - 1) :], entry]
        return entry

    def converted(self, obs: dict[str, Any]) -> dict[str, np.ndarray]:
        """``obs`` with its cameras as contiguous uint8 (3, H, W) and its state float32, converted
        (and encoded) once whoever asks: the policy to act, the reward to score, this writer."""
        return self._entry(obs).frame

    def maps(self, obs: dict[str, Any]) -> dict[str, torch.Tensor] | None:
        """The backbone maps of ``obs``, {camera: (1, C, h, w)}, when this writer encodes, else None."""
        return self._entry(obs).maps

    @property
    def newest_frame(self) -> dict[str, np.ndarray] | None:
        return self._recent[-1].frame if self._recent else None

    def write(self, step: EpisodeStep) -> Transition:
        """The step as a transition at the end of the current chunk."""
        version = -1 if step.policy_version is None else int(step.policy_version)  # -1: the human acted
        current, following = self._entry(step.observation), self._entry(step.next_observation)
        observation, next_observation = current.frame, following.frame
        features = None
        if self.encode is not None:
            features = FrameFeatures(self.features_sha256 or "", current.features, following.features)
        transition = Transition(
            observation=observation,
            action=np.asarray(step.action, dtype=np.float32),
            reward=step.reward,
            next_observation=next_observation,
            terminated=step.terminated,
            truncated=step.truncated,
            is_intervention=step.is_intervention,
            complementary_info={GRASP_PENALTY: step.penalty, POLICY_VERSION: float(version)},
            features=features,
        )
        self._chunk.append(transition)
        frames = (*transition.observation.values(), *transition.next_observation.values())
        flags = np.array(
            [transition.reward, transition.terminated, transition.truncated, transition.is_intervention],
            dtype=np.float64,
        )
        for array in (*frames, transition.action, flags):
            self.digest.update(np.ascontiguousarray(array).tobytes())
        self.sent_versions.append(version)
        del self.sent_versions[:-VERSIONS_KEPT]
        return transition

    def send(self, episode_done: bool) -> None:
        """Asynchronous pacing: queue the chunk when it is full or the episode ended; move the sends on."""
        if len(self._chunk) >= self.chunk_size or episode_done:
            self._enqueue()
        self.pump()

    def send_and_wait(self) -> None:
        """Lockstep: the chunk is queued now and acknowledged before this returns."""
        self._enqueue()
        while self._queue or self._inflight is not None:
            if self._inflight is not None:
                try:
                    self._inflight[0].result(timeout=60)
                except PeerUnavailable:
                    pass  # pump re-queues it and holds
            self.pump()

    def pump(self) -> None:
        """Collect the send in flight; start the next one. Never blocks."""
        if self._inflight is not None:
            call, seq, chunk = self._inflight
            if not call.ready():
                return
            self._inflight = None
            try:
                call.result(timeout=0)
                self.acked += len(chunk)
                if self.on_ack is not None:
                    self.on_ack()
            except PeerUnavailable:
                self._queue.appendleft((seq, chunk))  # re-sent; the replay drops duplicates by seq
                self.hold("replay")
                return
        if self._queue:
            seq, chunk = self._queue.popleft()
            self._inflight = (self.replay.add(self.robot, seq, chunk), seq, chunk)

    def _take_chunk(self) -> None:
        self.sent_bytes += chunk_image_bytes(self._chunk, self.image_keys)
        self._queue.append((self._seq, self._chunk))
        self._seq += 1
        self._chunk = []

    def _enqueue(self) -> None:
        self._take_chunk()
        while len(self._queue) >= self.max_queued:
            self.hold("replay (send queue full)")
            self.pump()

    def flush(self, timeout_s: float = 30.0) -> None:
        """Send what is left (the partial chunk included), waiting at most ``timeout_s``; never holds."""
        if self._chunk:
            self._take_chunk()
        deadline = time.monotonic() + timeout_s
        while (self._queue or self._inflight) and time.monotonic() < deadline:
            self.pump()
            time.sleep(0.005)


def chunk_image_bytes(chunk: list[Transition], image_keys: list[str]) -> int:
    """The camera bytes a chunk sends: each distinct frame array once, as pickling sends it."""
    arrays = {
        id(a): a.nbytes
        for t in chunk
        for obs in (t.observation, t.next_observation)
        for key, a in obs.items()
        if key in image_keys
    }
    return sum(arrays.values())
