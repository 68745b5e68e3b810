"""A simulated bus of STS3215 servos served on a pty, for the unmodified Feetech SDK and LeRobot.

    bus = SimulatedBus(ids=range(1, 7))
    with bus:                                   # starts the serving thread
        port = bus.port                         # e.g. /dev/pts/7, pass as --robot.port
        bus.inject_fault(3, "overload")         # error bits in every status packet of servo 3

Answers PING (also broadcast), READ, WRITE (also broadcast), REG_WRITE/ACTION, SYNC_READ and SYNC_WRITE
out of one register file per servo. A plant moves each servo: the default one drives the shaft toward
its goal at a limited speed while torque is on; `actors.robots.servo_sim.mujoco_plant` drives a MuJoCo scene.
The thread answers within a fraction of a millisecond, well inside the SDK's ~34 ms packet timeout.
Like a servo on a half-duplex line it never answers a request the client has already given up on
(one followed by a newer request): such a late reply would read as the answer to the newer one.
"""

from __future__ import annotations

import gc
import logging
import os
import select
import sys
import threading
import time
import tty
from collections.abc import Callable, Iterable
from typing import Protocol

from actors.robots.servo_sim.protocol import (
    BROADCAST_ID,
    ErrorBit,
    Instruction,
    Packet,
    PacketParser,
    encode_packet,
)
from actors.robots.servo_sim.registers import ServoRegisters

logger = logging.getLogger(__name__)

FAULTS = ("silent", "dead", "corrupt", "delay", "overload", "overheat", "voltage")
SWITCH_INTERVAL_S = 0.0002
PARTIAL_PACKET_TIMEOUT_S = 0.02  # the SDK writes a packet in one go; a fragment older than this is noise
ADVANCE_PERIOD_S = 0.005
_FAULT_BITS = {"overload": ErrorBit.OVERLOAD, "overheat": ErrorBit.OVERHEAT, "voltage": ErrorBit.VOLTAGE}


class Plant(Protocol):
    """What moves the servo shafts between requests."""

    def advance(self, servos: list[ServoRegisters], now: float) -> None: ...


class SpeedLimitedPlant:
    """Each shaft moves toward its goal at the servo's speed while torque is on; passive when off."""

    def __init__(self) -> None:
        self._last: float | None = None

    def advance(self, servos: list[ServoRegisters], now: float) -> None:
        dt = 0.0 if self._last is None else max(0.0, now - self._last)
        self._last = now
        for servo in servos:
            if not servo.torque_enabled or dt == 0.0 or getattr(servo, "frozen", False):
                servo.velocity = 0.0
                servo.load = 0
                continue
            error = servo.goal_actual() - servo.actual
            step = max(-servo.max_speed() * dt, min(servo.max_speed() * dt, error))
            servo.actual += step
            servo.velocity = step / dt
            # Load grows with the remaining error, like a P controller pushing against inertia.
            servo.load = int(max(-1000, min(1000, 4 * (error - step))))


class SimulatedBus:
    """STS3215 servos on a pty. Thread-safe: hold `lock` to inspect or change servos from outside."""

    _serving = 0  # buses serving in this process (they share the interpreter's switch interval)
    _saved_switch_interval = 0.005

    def __init__(
        self,
        ids: Iterable[int] = range(1, 7),
        plant: Plant | None = None,
        clock: Callable[[], float] = time.monotonic,
        initial_positions: dict[int, float] | None = None,
    ) -> None:
        initial_positions = initial_positions or {}
        self.servos = [ServoRegisters(i, actual=initial_positions.get(i, 2048.0)) for i in ids]
        self.plant: Plant = plant or SpeedLimitedPlant()
        self.clock = clock
        self.lock = threading.RLock()
        self.faults: dict[int, set[str]] = {}
        self.reply_delay_s = 0.05
        self.parser = PacketParser()
        self.requests = 0
        self.superseded = 0  # replies dropped because the client had moved on to a newer request
        self._last_input = 0.0
        self._master: int | None = None
        self._slave: int | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.port: str | None = None

    # ----- servos and faults -----
    def servo(self, servo_id: int) -> ServoRegisters:
        for servo in self.servos:
            if servo.servo_id == servo_id:
                return servo
        raise KeyError(f"no servo with id {servo_id} on the bus")

    def inject_fault(self, servo_id: int, fault: str) -> None:
        """'silent' (no replies), 'dead' (silent and frozen), 'corrupt' (bad checksums), 'delay' (late
        replies), or error bits 'overload' / 'overheat' / 'voltage' in every status packet."""
        if fault not in FAULTS:
            raise ValueError(f"unknown fault '{fault}'; choose from {', '.join(FAULTS)}")
        with self.lock:
            self.faults.setdefault(servo_id, set()).add(fault)
            servo = self.servo(servo_id)
            if fault in _FAULT_BITS:
                servo.error_bits |= _FAULT_BITS[fault]
            if fault == "dead":
                servo.frozen = True

    def clear_faults(self, servo_id: int | None = None) -> None:
        with self.lock:
            for sid in [servo_id] if servo_id is not None else list(self.faults):
                self.faults.pop(sid, None)
                servo = self.servo(sid)
                servo.error_bits = ErrorBit(0)
                servo.frozen = False

    def _has(self, servo: ServoRegisters, fault: str) -> bool:
        return fault in self.faults.get(servo.servo_id, ())

    # ----- protocol -----
    def handle(self, packet: Packet) -> bytes:
        """Apply one instruction packet; return the bytes to send back (possibly none)."""
        with self.lock:
            self.requests += 1
            inst, params = packet.code, packet.params
            if packet.servo_id == BROADCAST_ID:
                targets = list(self.servos)
            else:
                targets = [s for s in self.servos if s.servo_id == packet.servo_id]
            if inst == Instruction.SYNC_READ and len(params) >= 2:
                addr, size = params[0], params[1]
                out = b""
                for sid in params[2:]:
                    out += b"".join(
                        self._status(s, s.read(addr, size)) for s in self.servos if s.servo_id == sid
                    )
                return out
            if inst == Instruction.SYNC_WRITE and len(params) >= 2:
                addr, size = params[0], params[1]
                for i in range(2, len(params) - size, size + 1):
                    sid, data = params[i], params[i + 1 : i + 1 + size]
                    for servo in self.servos:
                        if servo.servo_id == sid and not self._has(servo, "dead"):
                            servo.write(addr, data)
                return b""
            if inst == Instruction.PING:
                return b"".join(self._status(s, b"") for s in targets)
            if inst == Instruction.READ and len(params) == 2:
                return b"".join(self._status(s, s.read(params[0], params[1])) for s in targets)
            if inst in (Instruction.WRITE, Instruction.REG_WRITE) and params:
                for servo in targets:
                    if self._has(servo, "dead"):
                        continue
                    if inst == Instruction.WRITE:
                        servo.write(params[0], params[1:])
                    else:
                        servo.pending = (params[0], params[1:])
                return self._ack(targets, packet.servo_id)
            if inst == Instruction.ACTION:
                for servo in targets:
                    if servo.pending is not None:
                        servo.write(*servo.pending)
                        servo.pending = None
                return self._ack(targets, packet.servo_id)
            logger.debug("ignored instruction 0x%02x for id %d", inst, packet.servo_id)
            return b""

    def _ack(self, targets: list[ServoRegisters], request_id: int) -> bytes:
        # Broadcast writes get no reply; Response_Status_Level 0 replies only to PING and READ.
        if request_id == BROADCAST_ID:
            return b""
        return b"".join(self._status(s, b"") for s in targets if s.get("Response_Status_Level") != 0)

    def _status(self, servo: ServoRegisters, data: bytes) -> bytes:
        if self._has(servo, "silent") or self._has(servo, "dead"):
            return b""
        packet = encode_packet(servo.servo_id, int(servo.error_bits), data)
        if self._has(servo, "corrupt"):
            packet = packet[:-1] + bytes([packet[-1] ^ 0x5A])
        return packet

    # ----- pty serving -----
    def start(self) -> str:
        """Open the pty and start answering; returns the port path for the SDK."""
        # The simulated servos share this interpreter's GIL and garbage collector with the client.
        # A full collection of a large heap (torch, LeRobot) stalls both, and the client's
        # packet timeout expires before the servo could answer - something real servos, which are
        # separate hardware, never cause. Freezing the heap that exists now keeps collections short.
        gc.freeze()
        # The SDK polls the port in a tight loop that only lets go of the GIL for an instant; with the
        # default 5 ms switch interval the serving thread can queue behind it for tens of milliseconds
        # on a loaded machine. A short interval while a bus serves keeps replies around a millisecond.
        SimulatedBus._serving += 1
        if SimulatedBus._serving == 1:
            SimulatedBus._saved_switch_interval = sys.getswitchinterval()
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._master, self._slave = os.openpty()
        # Raw mode before any client opens it: no echo (the SDK would parse an echo as a reply).
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)
        self._stop.clear()
        self._thread = threading.Thread(target=self._serve, name="servo-bus", daemon=True)
        self._thread.start()
        logger.info("simulated STS3215 bus with ids %s on %s", [s.servo_id for s in self.servos], self.port)
        return self.port

    def stop(self) -> None:
        if self._thread is None:
            return
        SimulatedBus._serving -= 1
        if SimulatedBus._serving == 0:
            sys.setswitchinterval(SimulatedBus._saved_switch_interval)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
        # The slave stays open while serving so master reads never hit EIO between clients.
        for fd in (self._master, self._slave):
            if fd is not None:
                os.close(fd)
        self._master = self._slave = self._thread = None

    def __enter__(self) -> SimulatedBus:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _answer(self, packets: list[Packet]) -> None:
        """Apply each request; send the replies a client is still waiting for.

        A client sends its next request only after the previous reply came or its timeout expired. So
        a request followed by another one (in this batch, or already waiting on the pty) was given up:
        a real servo would have answered it long before, while the client still listened. Its effects
        are applied, its reply dropped - sent now, it would be read as the answer to the newer request.
        The 'delay' fault keeps such late replies on purpose."""
        for i, packet in enumerate(packets):
            reply = self.handle(packet)
            if not reply:
                continue
            if any(self._has(s, "delay") for s in self.servos):
                time.sleep(self.reply_delay_s)
            elif i < len(packets) - 1 or self.parser.holds_partial_packet() or self._input_waiting():
                self.superseded += 1
                logger.debug("dropped the reply to a request the client gave up on")
                continue
            os.write(self._master, reply)

    def _input_waiting(self) -> bool:
        ready, _, _ = select.select([self._master], [], [], 0)
        return bool(ready)

    def _serve(self) -> None:
        assert self._master is not None
        # Real servos are hardware that answers on its own; on a busy machine this thread must still
        # answer inside the SDK's packet timeout, so it asks for a larger CPU share when allowed
        # (it sleeps in select almost all the time). Without the privilege it runs at normal priority.
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        except OSError:
            pass
        last_advance = -1.0
        while not self._stop.is_set():
            ready, _, _ = select.select([self._master], [], [], ADVANCE_PERIOD_S)
            if ready:
                try:
                    data = os.read(self._master, 4096)
                except OSError:
                    data = b""
                    time.sleep(ADVANCE_PERIOD_S)
                if data:
                    now = time.monotonic()
                    if (
                        self.parser.holds_partial_packet()
                        and now - self._last_input > PARTIAL_PACKET_TIMEOUT_S
                    ):
                        self.parser.reset()  # a servo's receiver drops a half-received packet after a pause
                    self._last_input = now
                    self._answer(self.parser.feed(data))
            # The plant moves on its own clock, between requests, so a reply never waits for physics
            # (a servo reports its latest sample, a few milliseconds old at most).
            now = self.clock()
            if now - last_advance >= ADVANCE_PERIOD_S:
                with self.lock:
                    self.plant.advance(self.servos, now)
                last_advance = now
