"""The learner role: SAC updates on batches from the replay role, versioned weights, checkpoints.

    role = LearnerRole(cfg, replay_peer, folder="run/checkpoints")
    role.step()                 # one update if the replay has learning_starts transitions (else no-op)
    role.latest_weights(v)      # the newest export if newer than v, else None: a latest-only mailbox
    role.catch_up()             # lockstep: every update the replay's env steps allow, then return

One ``step``: collect the batches prefetched during the previous update, ask the replay for the
next ones (so the update never waits on sampling), run ``SACAgent.update``, then every
``weight_push_every`` updates replace the mailbox's export (never a queue: a slow robot skips
versions), and every ``checkpoint_every`` updates write a learner checkpoint and ask the replay for
a snapshot. A restarted role resumes from the newest checkpoint in ``folder``.

With ``runtime.pace=lockstep`` the role never runs on its own: the robot calls ``catch_up`` after
each env step's transition is in the replay, and it runs exactly the updates
``max_updates_per_env_step`` allows for the transitions added so far, each on a batch sampled then
(no prefetch, whose timing would decide what it sees). The learner's torch random stream is its
own (``_own_rng``), so the same numbers come out whatever else runs in its process: the
in-process runner and Ray give the same weights.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

from actors.roles.clients import ReplayClient
from actors.roles.peers import Call, Peer, PeerUnavailable
from actors.roles.stats import LearnerStats
from configs.rl import TrainRLConfig
from learner.checkpoint import load_checkpoint, save_checkpoint
from learner.export import export_policy
from learner.sac import SACAgent

logger = logging.getLogger(__name__)


class LearnerRole:
    """Owns the agent; pulls batches, publishes weights, checkpoints."""

    def __init__(self, cfg: TrainRLConfig, replay: Peer, folder: str | Path, agent: SACAgent | None = None):
        self.cfg = cfg
        self.replay = ReplayClient(replay)
        self.folder = Path(folder)
        if agent is None:
            torch.manual_seed(cfg.learner.seed)  # the same initial policy in every process layout
        self.agent = agent or SACAgent(cfg.learner)
        self._rng_state = torch.get_rng_state()
        self.lockstep = cfg.runtime.pace == "lockstep"
        self.resumed_from: int | None = None
        if (self.folder / "latest").is_file():
            with self._own_rng():
                load_checkpoint(self.agent, self.folder)
            self.resumed_from = self.agent.update_step
            logger.info("learner resumed from update %d", self.agent.update_step)
        self._mailbox: dict | None = None
        self._mailbox_lock = threading.Lock()
        self._prefetch: Call | None = None
        self.replay_sizes = {"online": 0, "demo": 0, "added": 0}
        self.last_metrics: dict[str, float] = {}
        self.update_times: list[float] = []
        self.checkpoints = 0
        self.batch_bytes = 0  # replay -> learner traffic
        self.publish()  # version 0 (or the resumed one) is available at once

    @contextmanager
    def _own_rng(self) -> Iterator[None]:
        """Run with the learner's own torch CPU random state (kept between calls, checkpointed)."""
        with torch.random.fork_rng(devices=[]):  # the caller's global state comes back afterwards
            torch.set_rng_state(self._rng_state)
            try:
                yield
            finally:
                self._rng_state = torch.get_rng_state()

    # ----------------------------------------------------------------- weights
    def publish(self) -> None:
        export = export_policy(self.agent.policy, version=self.agent.update_step)
        export["published_at"] = time.time()  # the robots measure the version lag in seconds with it
        with self._mailbox_lock:
            self._mailbox = export

    def latest_weights(self, have_version: int) -> dict | None:
        with self._mailbox_lock:
            export = self._mailbox
        if export is None or export["version"] <= have_version:
            return None
        return export

    # ----------------------------------------------------------------- updates
    def _ready(self) -> bool:
        """Enough data, and not ahead of the env-step budget of updates."""
        runtime = self.cfg.runtime
        self.replay_sizes = self.replay.sizes().result(timeout=30)
        total = self.replay_sizes["online"] + self.replay_sizes["demo"]
        if self.replay_sizes["online"] < 1 or total < max(1, runtime.learning_starts):
            return False
        if runtime.max_updates_per_env_step > 0:
            allowed = runtime.max_updates_per_env_step * max(
                0, self.replay_sizes["added"] - runtime.learning_starts
            )
            return self.agent.update_step < allowed
        return True

    def _request(self) -> Call:
        return self.replay.sample(self.cfg.learner.batch_size, self.cfg.learner.utd_ratio)

    def step(self) -> bool:
        """One update when allowed; True if it ran. Raises PeerUnavailable while the replay is down."""
        if not self._ready():
            return False
        call = self._prefetch or self._request()
        batches = call.result(timeout=60)
        self.batch_bytes += sum(_batch_bytes(b) for b in batches)
        if not self.lockstep:
            self._prefetch = self._request()  # sampled while this update runs (remote replay)
        start = time.perf_counter()
        with self._own_rng():
            self.last_metrics = self.agent.update(iter(batches))
        self.update_times.append(time.perf_counter() - start)
        del self.update_times[:-200]
        runtime = self.cfg.runtime
        if self.agent.update_step % runtime.weight_push_every == 0:
            self.publish()
        if self.agent.update_step % runtime.checkpoint_every == 0:
            self.checkpoint()
        return True

    def catch_up(self) -> int:
        """Lockstep: run every update the replay's transitions allow; returns the update count."""
        while self.step():
            pass
        return self.agent.update_step

    def checkpoint(self) -> Path:
        with self._own_rng():
            path = save_checkpoint(self.agent, self.folder)
        self.checkpoints += 1
        try:
            self.replay.snapshot().result(timeout=300)
        except PeerUnavailable:
            logger.warning("replay unavailable for a snapshot; its log still holds every acknowledged chunk")
        return path

    def run(self, stop: threading.Event, idle_s: float = 0.05) -> None:
        """Update until ``stop`` is set; hold (and retry) while the replay is down. In lockstep the
        robot drives the updates (``catch_up``): this only waits for ``stop``."""
        while self.lockstep and not stop.is_set():
            stop.wait(0.5)
        while not stop.is_set():
            try:
                if not self.step():
                    stop.wait(idle_s)
            except PeerUnavailable:
                self._prefetch = None
                stop.wait(0.5)

    def status(self) -> LearnerStats:
        times = sorted(self.update_times) or [0.0]
        return LearnerStats(
            updates=self.agent.update_step,
            version=self.agent.update_step,
            update_s_p50=times[len(times) // 2],
            checkpoints=self.checkpoints,
            batch_bytes=self.batch_bytes,
            resumed_from=self.resumed_from,
            replay=dict(self.replay_sizes),
            losses={k: float(v) for k, v in self.last_metrics.items()},
        )


def _batch_bytes(batch) -> int:
    tensors = [*batch.observation.values(), *batch.next_observation.values(), batch.action, batch.reward]
    return int(sum(t.numel() * t.element_size() for t in tensors))
