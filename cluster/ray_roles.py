"""Ray wrappers of the runtime roles (``actors.roles``) and the peer that calls them.

Each wrapper is a thin ``@ray.remote`` class that builds its role in ``__init__`` (so an actor
restarted by Ray rebuilds it: the replay from its snapshot + log, the learner from its newest
checkpoint) and forwards the methods of its role's typed client (``actors.roles.clients``; ``tests/test_roles.py``
checks that every client method is here with the role's parameters). ``RayPeer`` turns ``peer.call(method, *args)`` into
``handle.method.remote(*args)`` and a Ray failure into ``PeerUnavailable``, which the roles answer
by holding and retrying.

    reward  async actor: concurrent ``score`` calls share forward passes (BatchingScorer)
    replay  one call at a time (add, sample, snapshot are sequential by design)
    learner threaded: ``run`` loops in a thread while ``latest_weights`` / ``status`` answer
    robot   threaded: the episode loop runs in a thread; ``stop`` ends it safely
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from actors.roles.peers import Done, PeerUnavailable

try:  # Ray 2.60 raises ActorUnavailableError while an actor restarts
    from ray.exceptions import ActorUnavailableError
except ImportError:  # pragma: no cover
    ActorUnavailableError = RayActorError

PEER_ERRORS = (RayActorError, ActorUnavailableError, GetTimeoutError)


class RayCall:
    def __init__(self, ref: ray.ObjectRef):
        self.ref = ref

    def ready(self) -> bool:
        done, _ = ray.wait([self.ref], timeout=0)
        return bool(done)

    def result(self, timeout: float | None = None) -> Any:
        try:
            return ray.get(self.ref, timeout=timeout)
        except PEER_ERRORS as err:
            raise PeerUnavailable(
                f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"
            ) from err
        except RayTaskError as err:
            cause = err.cause if isinstance(getattr(err, "cause", None), Exception) else err
            if isinstance(cause, PEER_ERRORS):
                raise PeerUnavailable(str(cause).splitlines()[0]) from err
            raise cause from err


class RayPeer:
    """``Peer`` over a Ray actor handle, or the name of one (looked up once, on first use)."""

    def __init__(self, handle: ray.actor.ActorHandle | str):
        self._handle = handle

    @property
    def handle(self) -> ray.actor.ActorHandle:
        if isinstance(self._handle, str):
            self._handle = ray.get_actor(self._handle)
        return self._handle

    def call(self, method: str, *args: Any) -> RayCall | Done:
        try:
            handle = self.handle
        except ValueError as err:  # the named actor is not registered (yet)
            return Done(error=err)
        # Submitting never fails: a dead or restarting actor surfaces when the result is collected.
        return RayCall(getattr(handle, method).remote(*args))


def _setup_worker(cfg) -> None:
    """Threads per actor; warnings and errors of our roles reach the driver; encoders stay quiet."""
    import torch

    from reward.dataset_write import quiet_third_party_output

    if cfg.runtime.torch_threads:
        torch.set_num_threads(cfg.runtime.torch_threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_third_party_output()


@ray.remote(max_restarts=-1, max_concurrency=16)
class RewardActor:
    def __init__(self, cfg):
        _setup_worker(cfg)
        from actors.roles.local import build_reward
        from actors.roles.reward import BatchingScorer

        self.role = build_reward(cfg)
        self.scorer = BatchingScorer(self.role, cfg.reward.max_batch)

    async def ready(self) -> bool:
        return True

    async def score(self, frames: dict) -> dict:
        return await self.scorer.score(frames)

    async def identity(self) -> dict:
        return self.role.identity()

    async def weights_digest(self) -> str:
        return self.role.weights_digest()

    async def stats(self) -> dict:
        return self.scorer.stats()


@ray.remote(max_restarts=-1)
class ReplayActor:
    def __init__(self, cfg, folder: str):
        _setup_worker(cfg)
        from actors.roles.replay import ReplayRole

        self.role = ReplayRole(cfg.learner, Path(folder) / "replay", cfg.runtime.replay_snapshot_every)

    def ready(self) -> bool:
        return True

    def add(self, robot: str, seq: int, transitions: list) -> dict:
        return self.role.add(robot, seq, transitions)

    def next_seq(self, robot: str) -> int:
        return self.role.next_seq(robot)

    def sample(self, batch_size: int, count: int) -> list:
        return self.role.sample(batch_size, count)

    def sizes(self) -> dict:
        return self.role.sizes()

    def snapshot(self) -> str:
        return str(self.role.snapshot())

    def import_demos(self, root: str) -> int:
        return self.role.import_demos(root)

    def status(self) -> dict:
        return self.role.status()

    def pid(self) -> int:
        import os

        return os.getpid()


class _Threaded:
    """A role that lives in one thread of the actor: built there, run there, closed there.

    Rendering contexts (MuJoCo's EGL) and serial ports belong to the thread that opened them, so
    the role is never touched from Ray's call threads except for ``status`` reads.
    """

    role: Any

    def _start_home(self, build) -> None:
        self.stop_event = threading.Event()
        self.go = threading.Event()
        self.closing = False
        self.built = threading.Event()
        self.running_loop = False
        self.error: str | None = None
        self.build_error: BaseException | None = None
        self.home = threading.Thread(target=self._home, args=(build,), daemon=True)
        self.home.start()

    def _home(self, build) -> None:
        try:
            self.role = build()
        except BaseException as err:
            self.build_error = err
            self.built.set()
            return
        self.built.set()
        while True:
            self.go.wait()
            if self.closing:
                break
            self.running_loop = True
            try:
                self.role.run(self.stop_event)
            except BaseException as err:  # reported through status(); the driver starts the loop again
                self.error = f"{type(err).__name__}: {err}"
                logging.getLogger(__name__).exception("%s loop failed", type(self.role).__name__)
            finally:
                self.running_loop = False
                self.go.clear()
            if self.closing:
                break
        close = getattr(self.role, "close", None)
        if close is not None:
            close()

    def ready(self) -> bool:
        self.built.wait()
        if self.build_error is not None:
            raise self.build_error
        return True

    def start(self) -> bool:
        self.ready()
        if not self.running_loop:
            self.stop_event.clear()
            self.go.set()
        return True

    def stop(self, timeout_s: float = 120.0) -> dict:
        self.stop_event.set()
        deadline = time.monotonic() + timeout_s
        while self.running_loop and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.status()

    def close(self, timeout_s: float = 120.0) -> dict:
        status = self.stop(timeout_s)
        self.closing = True
        self.go.set()
        self.home.join(timeout_s)
        return status

    def running(self) -> bool:
        return self.running_loop or self.go.is_set()

    def pid(self) -> int:
        import os

        return os.getpid()

    def node_id(self) -> str:
        return ray.get_runtime_context().get_node_id()


@ray.remote(max_restarts=-1, max_concurrency=8)
class LearnerActor(_Threaded):
    def __init__(self, cfg, folder: str, replay):
        _setup_worker(cfg)
        from actors.roles.learner import LearnerRole

        self._start_home(lambda: LearnerRole(cfg, RayPeer(replay), Path(folder) / "checkpoints"))

    def latest_weights(self, have_version: int):
        return self.role.latest_weights(have_version)

    def catch_up(self) -> int:
        self.ready()
        return self.role.catch_up()

    def checkpoint(self) -> str:
        return str(self.role.checkpoint())

    def export(self) -> dict:
        from learner.export import export_policy

        return export_policy(self.role.agent.policy, self.role.agent.update_step)

    def status(self) -> dict:
        self.ready()
        return {**self.role.status(), "running": self.running(), "error": self.error}


@ray.remote(max_restarts=-1, max_concurrency=8)
class RobotActor(_Threaded):
    def __init__(self, cfg, index: int, reward, replay, learner, folder: str | None = None):
        _setup_worker(cfg)
        from actors.roles.robot import RobotRole

        reward_peer = RayPeer(reward) if reward is not None else None
        self._start_home(
            lambda: RobotRole(cfg, index, reward_peer, RayPeer(replay), RayPeer(learner), folder=folder)
        )

    def status(self) -> dict:
        self.ready()
        node = ray.get_runtime_context().get_node_id()  # where the arm is: the run's summary names it
        return {**self.role.status(), "running": self.running(), "error": self.error, "node_id": node}
