"""Typed clients of the roles: what one role may ask another, one method per question.

    replay = ReplayClient(peer)                      # peer: LocalPeer (in process) or RayPeer
    call = replay.add(robot_id, seq, transitions)    # returns at once
    ack = call.result(timeout=10)                    # {"added", "duplicate"}; PeerUnavailable if down

A role holds clients, never method names: a misspelt or removed method fails where it is called
(and in ``tests/test_roles.py``, which checks every client method against the role and its Ray
actor), not as a string lookup at run time. Calls stay explicit and non-blocking (``Call``).
"""

from __future__ import annotations

from typing import Any

from actors.roles.peers import Call, Peer
from learner.types import Transition


class ReplayClient:
    """The replay buffer actor: robots add acknowledged chunks, the learner samples."""

    def __init__(self, peer: Peer):
        self.peer = peer

    def add(self, robot: str, seq: int, transitions: list[Transition]) -> Call:
        """One acknowledged chunk -> {"added": n, "duplicate": n}; a re-sent (robot, seq) is not added twice."""
        return self.peer.call("add", robot, seq, transitions)

    def next_seq(self, robot: str) -> Call:
        """-> int: the sequence number this robot's next chunk carries (a restarted robot goes on)."""
        return self.peer.call("next_seq", robot)

    def sample(self, batch_size: int, count: int) -> Call:
        """-> list of ``count`` batches (online + demo mixed)."""
        return self.peer.call("sample", batch_size, count)

    def sizes(self) -> Call:
        """-> {"online", "demo", "added"}."""
        return self.peer.call("sizes")

    def snapshot(self) -> Call:
        """-> the snapshot's folder; every acknowledged chunk is in it or in the log after it."""
        return self.peer.call("snapshot")


class LearnerClient:
    """The learner actor, as a robot sees it: weights to act with, and lock-step turns."""

    def __init__(self, peer: Peer):
        self.peer = peer

    def latest_weights(self, have_version: int) -> Call:
        """-> a policy export newer than ``have_version``, or None."""
        return self.peer.call("latest_weights", have_version)

    def catch_up(self) -> Call:
        """-> int: lock-step, every update the replay's transitions allow; the update count."""
        return self.peer.call("catch_up")


class RewardClient:
    """The frozen reward classifier actor; concurrent calls share forward passes."""

    def __init__(self, peer: Peer):
        self.peer = peer

    def backbone(self) -> Call:
        """-> (weights sha256, image size) of the classifier's ResNet-10, or None: a robot whose
        frozen backbone is the same sends its maps with ``score``, not its pixels."""
        return self.peer.call("backbone")

    def score(self, frames: dict[str, Any]) -> Call:
        """One observation's camera frames, each (3, H, W) uint8 or its float backbone map (C, h, w)
        -> {"success": bool, "probability": float, "reward": float}."""
        return self.peer.call("score", frames)
