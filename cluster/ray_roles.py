"""Ray wrappers of the runtime roles (``actors.roles``) and the peer that calls them.

Each wrapper is a thin ``@ray.remote`` class that builds its role in ``__init__`` (so an actor
restarted by Ray rebuilds it: the replay from its snapshot + log, the learner from its newest
checkpoint). Its methods are not written by hand: ``@forwards(Role, Client, "extra", ...)`` adds one
per method of the role's typed client (``actors.roles.clients``) and per extra name the driver
calls, each with the role method's own signature, calling it on the built role (awaited where it
is a coroutine). ``FORWARDED`` records them; ``tests/test_roles.py`` checks every client method is
there with the role's parameters. ``RayPeer`` turns ``peer.call(method, *args)`` into
``handle.method.remote(*args)`` and a Ray failure into ``PeerUnavailable``, which the roles answer
by holding and retrying.

    reward  async actor: concurrent ``score`` calls share forward passes (BatchingScorer)
    replay  one call at a time (add, sample, snapshot are sequential by design)
    learner threaded: ``run`` loops in a thread while ``latest_weights`` / ``status`` answer
    robot   threaded: the episode loop runs in a thread; ``stop`` ends it safely
"""

from __future__ import annotations

import dataclasses
import inspect
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from actors.roles.clients import LearnerClient, ReplayClient, RewardClient
from actors.roles.learner import LearnerRole
from actors.roles.peers import Done, PeerUnavailable
from actors.roles.replay import ReplayRole
from actors.roles.reward import BatchingScorer, RewardRole
from actors.roles.stats import LearnerStats, RobotStats

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


FORWARDED: dict[str, dict[str, list[str]]] = {}
"""Actor class name -> {method: its parameters}: what ``forwards`` added."""


def client_methods(client: type) -> list[str]:
    """The public methods of a typed client: the questions its role answers."""
    return [name for name, _ in inspect.getmembers(client, inspect.isfunction) if not name.startswith("_")]


def forwards(role: type, *names_or_clients: type | str, to: str = "role") -> Callable[[type], type]:
    """Class decorator: for each method of the given clients (and each extra name), a method of the
    actor class calling ``self.<to>.<method>`` with ``role``'s signature. In an async actor (one with
    a coroutine method) every forwarder is a coroutine, so none blocks its event loop."""
    names: list[str] = []
    for item in names_or_clients:
        names += [item] if isinstance(item, str) else client_methods(item)

    def decorate(cls: type) -> type:
        is_async = any(inspect.iscoroutinefunction(f) for _, f in inspect.getmembers(cls, inspect.isfunction))
        for name in names:
            target = getattr(role, name)  # AttributeError at import: a client names what its role lacks
            setattr(cls, name, _forwarder(name, target, to, is_async))
            FORWARDED.setdefault(cls.__name__, {})[name] = list(inspect.signature(target).parameters)[1:]
        return cls

    return decorate


def _forwarder(name: str, target: Callable, to: str, is_async: bool) -> Callable:
    if inspect.iscoroutinefunction(target):

        async def call_async(self, *args: Any, **kwargs: Any) -> Any:
            return await getattr(getattr(self, to), name)(*args, **kwargs)

        method = call_async
    elif is_async:

        async def call_in_loop(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(getattr(self, to), name)(*args, **kwargs)

        method = call_in_loop
    else:

        def call(self, *args: Any, **kwargs: Any) -> Any:
            return getattr(getattr(self, to), name)(*args, **kwargs)

        method = call
    # The role's name, docstring and signature, but no __wrapped__: Ray adds its tracing parameter
    # to the signature of the innermost function, which must be this one and not the role's method.
    method.__name__, method.__qualname__, method.__doc__ = name, f"forwarded.{name}", target.__doc__
    method.__signature__ = inspect.signature(target)
    return method


def _setup_worker(cfg) -> None:
    """Threads per actor; warnings and errors of our roles reach the driver; encoders stay quiet."""
    import torch

    from reward.dataset_write import quiet_third_party_output

    if cfg.runtime.torch_threads:
        torch.set_num_threads(cfg.runtime.torch_threads)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_third_party_output()


@ray.remote(max_restarts=-1, max_concurrency=16)
@forwards(BatchingScorer, RewardClient, "stats", to="scorer")
@forwards(RewardRole, "identity", "weights_digest")
class RewardActor:
    def __init__(self, cfg):
        _setup_worker(cfg)
        from actors.roles.local import build_reward

        self.role = build_reward(cfg)
        self.scorer = BatchingScorer(self.role, cfg.reward.max_batch)

    async def ready(self) -> bool:
        return True


@ray.remote(max_restarts=-1)
@forwards(ReplayRole, ReplayClient, "import_demos", "status")
class ReplayActor:
    def __init__(self, cfg, folder: str):
        _setup_worker(cfg)
        self.role = ReplayRole(cfg.learner, Path(folder) / "replay", cfg.runtime.replay_snapshot_every)

    def ready(self) -> bool:
        return True

    def pid(self) -> int:
        import os

        return os.getpid()


class _Threaded:
    """A role that lives in one thread of the actor: built there, run there, closed there.

    Rendering contexts (MuJoCo's EGL) and serial ports belong to the thread that opened them, so
    the role is never touched from Ray's call threads except for ``status`` reads.
    """

    _role: Any

    @property
    def role(self) -> Any:
        """The role, once its thread has built it (a forwarded call waits for that)."""
        self.ready()
        return self._role

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
            self._role = build()
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
                self._role.run(self.stop_event)
            except BaseException as err:  # reported through status(); the driver starts the loop again
                self.error = f"{type(err).__name__}: {err}"
                logging.getLogger(__name__).exception("%s loop failed", type(self._role).__name__)
            finally:
                self.running_loop = False
                self.go.clear()
            if self.closing:
                break
        close = getattr(self._role, "close", None)
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
@forwards(LearnerRole, LearnerClient, "checkpoint")
class LearnerActor(_Threaded):
    def __init__(self, cfg, folder: str, replay):
        _setup_worker(cfg)
        self._start_home(lambda: LearnerRole(cfg, RayPeer(replay), Path(folder) / "checkpoints"))

    def export(self) -> dict:
        from learner.export import export_policy

        return export_policy(self.role.agent.policy, self.role.agent.update_step)

    def status(self) -> LearnerStats:
        return dataclasses.replace(self.role.status(), running=self.running(), error=self.error)


@ray.remote(max_restarts=-1, max_concurrency=8)
class RobotActor(_Threaded):
    def __init__(self, cfg, index: int, reward, replay, learner, folder: str | None = None):
        _setup_worker(cfg)
        from actors.roles.robot import RobotRole

        reward_peer = RayPeer(reward) if reward is not None else None
        self._start_home(
            lambda: RobotRole(cfg, index, reward_peer, RayPeer(replay), RayPeer(learner), folder=folder)
        )

    def status(self) -> RobotStats:
        node = ray.get_runtime_context().get_node_id()  # where the arm is: the run's summary names it
        return dataclasses.replace(self.role.status(), running=self.running(), error=self.error, node_id=node)
