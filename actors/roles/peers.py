"""How a role calls another role: explicit, non-blocking calls with a result to collect.

    call = peer.call("add", robot_id, seq, chunk)     # returns at once (roles call it through
                                                       # the typed clients of actors.roles.clients)
    if call.ready():                                   # poll without blocking the control loop
        ack = call.result()                            # raises PeerUnavailable if the peer is down

A role never knows whether its peer is an object in the same process (``LocalPeer``, what the
in-process runner and the unit tests use) or a Ray actor (``cluster.ray_peers.RayPeer``); both
answer ``call`` with a ``Call``. Remote calls look remote: there is no proxy whose attribute
access blocks.
"""

from __future__ import annotations

from typing import Any, Protocol


class PeerUnavailable(RuntimeError):
    """The peer could not answer (dead, restarting, or timed out); the caller holds and retries."""


class Call(Protocol):
    def ready(self) -> bool: ...

    def result(self, timeout: float | None = None) -> Any: ...


class Peer(Protocol):
    def call(self, method: str, *args: Any) -> Call: ...


class Done:
    """A call that already finished (in-process peers run the method at once)."""

    def __init__(self, value: Any = None, error: BaseException | None = None):
        self.value, self.error = value, error

    def ready(self) -> bool:
        return True

    def result(self, timeout: float | None = None) -> Any:
        if self.error is not None:
            raise PeerUnavailable(str(self.error)) from self.error
        return self.value


class LocalPeer:
    """A role object in this process, called synchronously (``down`` simulates an outage in tests)."""

    def __init__(self, target: Any):
        self.target = target
        self.down = False

    def call(self, method: str, *args: Any) -> Done:
        if self.down:
            return Done(error=ConnectionError(f"{type(self.target).__name__} is down"))
        return Done(getattr(self.target, method)(*args))
