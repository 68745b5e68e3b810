"""The robot's weight client: the local policy copy, refreshed from the learner between steps.

    weights = WeightClient(LearnerClient(peer), policy)
    weights.poll()             # asks at most every WEIGHTS_POLL_S, never blocks; applies a newer export
    weights.poll(block=True)   # lockstep and the start: waits for the answer (PeerUnavailable if down)
    weights.version            # the version acting now (-1: none yet)

Only the trainable part travels (``learner.export``): the frozen backbone is the robot's own. Each
export names when it was published, so the publish-to-apply delay is measured per version.
"""

from __future__ import annotations

import time

from actors.roles.clients import LearnerClient
from actors.roles.peers import Call, PeerUnavailable
from learner.export import apply_export
from learner.networks import Policy

WEIGHTS_POLL_S = 0.2
LAGS_KEPT = 200


class WeightClient:
    """A policy copy that follows the learner's published versions."""

    def __init__(self, learner: LearnerClient, policy: Policy):
        self.learner, self.policy = learner, policy
        self.version = -1
        self.weight_bytes = 0  # learner -> robot traffic
        self.lag_s: list[float] = []  # publish-to-apply delay of each version received
        self._call: Call | None = None
        self._polled = 0.0

    def poll(self, block: bool = False) -> None:
        now = time.monotonic()
        if self._call is None and (block or now - self._polled >= WEIGHTS_POLL_S):
            self._call = self.learner.latest_weights(self.version)
            self._polled = now
        call = self._call
        if call is None or not (block or call.ready()):
            return
        self._call = None
        try:
            export = call.result(timeout=30 if block else 0)
        except PeerUnavailable:
            if block:
                raise
            return
        if export is not None:
            self.version = apply_export(self.policy, export)
            self.weight_bytes += sum(t.numel() * t.element_size() for t in export["state_dict"].values())
            if "published_at" in export:
                self.lag_s.append(time.time() - float(export["published_at"]))
                del self.lag_s[:-LAGS_KEPT]
