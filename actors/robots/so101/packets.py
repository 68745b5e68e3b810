"""Reply matching for the Feetech SDK: a status packet is accepted only for the request it answers.

    handler = StrictPacketHandler()              # a drop-in for scservo_sdk.PacketHandler(0)
    harden_bus(robot.bus)                        # or install it on a LeRobot FeetechMotorsBus

The SDK's ``rxPacket`` takes the first well-framed packet from the servo id it waits for, whatever
request that packet answers: the input is never flushed before a request (``clearPort`` only drains
output), the reply length is not checked, and a request that timed out leaves its reply to arrive
later. On a busy machine (a simulated bus answers through the OS scheduler) or a noisy bus that late
reply becomes the answer to the next request - a Present_Position byte read as Status error bits, or
one position limit read as another. ``StrictPacketHandler`` closes each gap:

- before every request the input is flushed; if earlier requests still owe replies (they timed
  out), a request that expects a reply first waits for those (briefly) and throws them away;
- a reply must have a valid checksum, the id of the addressed servo and exactly the length the
  request asks for; anything else is dropped as stale or garbled and the wait goes on;
- waiting blocks in ``select`` instead of polling the port in a tight loop, so the client does not
  take the CPU from whatever has to answer (on a 2-core machine, a simulated bus).

Only the objects it is installed on are affected: the SDK module and other buses keep their behaviour.
"""

from __future__ import annotations

import logging
import select
import time
from collections import deque
from typing import Any

import scservo_sdk as scs
from scservo_sdk.protocol_packet_handler import protocol_packet_handler

logger = logging.getLogger(__name__)

HEADER = b"\xff\xff"
MAX_PACKET_LEN = 250  # the SDK's RXPACKET_MAX_LEN
MAX_ERROR_BYTE = 0x7F  # the SDK rejects larger error bytes as framing errors
SETTLE_QUIET_S = 0.1  # after a failed request: how long a quiet line means "no late reply is coming"
SETTLE_MAX_S = 0.3  # and the longest we wait for owed replies before flushing them anyway


def _scan(buffer: bytearray, final: bool = False) -> tuple[list[list[int]], int]:
    """Take whole, checksum-valid status packets off the front of ``buffer``.

    Returns the packets (as the SDK's lists of ints) and how many garbled frames were dropped. An
    incomplete frame at the end stays in the buffer unless ``final``: then it is skipped byte by byte,
    so a fragment with a bogus length cannot hide a complete packet behind it.
    """
    packets: list[list[int]] = []
    garbled = 0
    while True:
        start = buffer.find(HEADER)
        if start < 0:
            del buffer[: max(0, len(buffer) - 1) if buffer[-1:] == b"\xff" else len(buffer)]
            return packets, garbled
        del buffer[:start]
        if len(buffer) >= 3 and buffer[2] == 0xFF:  # FF FF FF: the header starts one byte later
            del buffer[0]
            continue
        if len(buffer) < 5:
            if final:
                del buffer[:2]
                continue
            return packets, garbled
        servo_id, length, error = buffer[2], buffer[3], buffer[4]
        total = length + 4
        if servo_id >= scs.BROADCAST_ID or length < 2 or total > MAX_PACKET_LEN or error > MAX_ERROR_BYTE:
            garbled += 1
            del buffer[:2]
            continue
        if len(buffer) < total:
            if final:
                garbled += 1
                del buffer[:2]
                continue
            return packets, garbled
        frame = buffer[:total]
        if (~sum(frame[2:-1]) & 0xFF) != frame[-1]:
            garbled += 1
            del buffer[:2]  # resync inside the bad frame: a good packet may start there
            continue
        packets.append(list(frame))
        del buffer[:total]


def replies_expected(txpacket: list[int]) -> int:
    """How many status packets an instruction packet asks for (0 for broadcasts and SYNC_WRITE)."""
    servo_id, instruction = txpacket[scs.PKT_ID], txpacket[scs.PKT_INSTRUCTION]
    if instruction == scs.INST_SYNC_READ:
        return max(0, txpacket[scs.PKT_LENGTH] - 4)  # one per listed id
    if servo_id == scs.BROADCAST_ID:
        return 0
    if instruction in (scs.INST_PING, scs.INST_READ, scs.INST_WRITE, scs.INST_REG_WRITE, scs.INST_ACTION):
        return 1
    return 0


class StrictPacketHandler(protocol_packet_handler):
    """``scservo_sdk.PacketHandler(0)`` whose replies are matched to their requests (module docstring)."""

    def __init__(self, settle_quiet_s: float = SETTLE_QUIET_S, settle_max_s: float = SETTLE_MAX_S) -> None:
        scs.SCS_SETEND(0)  # STS servos are little-endian (what PacketHandler(0) sets)
        self.settle_quiet_s = settle_quiet_s
        self.settle_max_s = settle_max_s
        self._buffer = bytearray()
        self._packets: deque[list[int]] = deque()  # parsed, not yet claimed (a sync read's later replies)
        self.owed = 0  # status packets requested and not yet received
        self.stale = 0  # valid status packets thrown away: they answered other (earlier) requests
        self.garbled = 0  # frames thrown away for a bad checksum, length, id or error byte

    # ----- reading the port -----
    @staticmethod
    def _wait_readable(port: Any, timeout_s: float) -> bool:
        """Block until the port has input or ``timeout_s`` passes (no busy polling)."""
        serial_port = port.ser
        if serial_port.in_waiting:
            return True
        try:
            fd = serial_port.fileno()
        except (AttributeError, OSError, ValueError):  # not a POSIX serial port: poll gently
            time.sleep(min(max(timeout_s, 0.0), 0.0005))
            return bool(serial_port.in_waiting)
        ready, _, _ = select.select([fd], [], [], max(0.0, timeout_s))
        return bool(ready)

    def _pull(self, port: Any) -> None:
        available = port.getBytesAvailable()
        if available:
            self._buffer += bytes(port.readPort(available))

    def _take(self, final: bool = False) -> None:
        packets, garbled = _scan(self._buffer, final)
        self.garbled += garbled
        self.owed = max(0, self.owed - len(packets))
        self._packets.extend(packets)

    def _claim(self, servo_id: int | None, n_params: int | None) -> list[int] | None:
        """The first parsed packet that answers the request; packets before it answer older requests."""
        while self._packets:
            packet = self._packets.popleft()
            if servo_id is None or (
                packet[scs.PKT_ID] == servo_id and packet[scs.PKT_LENGTH] == n_params + 2
            ):
                return packet
            self.stale += 1
            logger.debug("dropped a status packet that answers another request: %s", bytes(packet).hex())
        return None

    def _settle(self, port: Any, wait: bool = True) -> None:
        """Before a request: let replies still owed by timed-out requests arrive, then drop all input.
        ``wait=False`` (a request that gets no reply, e.g. a broadcast torque-off) only drops the input
        and leaves the wait to the next request that expects a reply."""
        if not wait:
            port.ser.reset_input_buffer()
            self._buffer.clear()
            self._packets.clear()
            return
        if self.owed:
            deadline = time.monotonic() + self.settle_max_s
            while self.owed:
                left = deadline - time.monotonic()
                if left <= 0 or not self._wait_readable(port, min(self.settle_quiet_s, left)):
                    break
                self._pull(port)
                self._take()
            if self.owed:
                logger.debug("%d late status packet(s) never came; flushing", self.owed)
        self.owed = 0
        port.ser.reset_input_buffer()
        self.stale += len(self._packets)
        self._packets.clear()
        self._buffer.clear()

    def _receive(self, port: Any, servo_id: int | None, n_params: int | None) -> tuple[list[int], int]:
        """The status packet from ``servo_id`` with ``n_params`` parameters, within the port's packet
        timeout; other valid packets (late replies to earlier requests) are dropped."""
        garbled_before = self.garbled
        try:
            while True:
                self._take()
                packet = self._claim(servo_id, n_params)
                if packet is not None:
                    return packet, scs.COMM_SUCCESS
                left_s = (port.packet_timeout - port.getTimeSinceStart()) / 1000.0
                if left_s <= 0:
                    break
                if self._wait_readable(port, left_s):
                    self._pull(port)
            # Timed out: a fragment with a bogus length may hide a whole packet behind it.
            self._take(final=True)
            packet = self._claim(servo_id, n_params)
            if packet is not None:
                return packet, scs.COMM_SUCCESS
            corrupt = self.garbled > garbled_before or bool(self._buffer)
            return [], scs.COMM_RX_CORRUPT if corrupt else scs.COMM_RX_TIMEOUT
        finally:
            port.is_using = False

    # ----- the SDK's entry points -----
    def txPacket(self, port, txpacket):  # noqa: N802 (the SDK's name)
        if port.is_using:
            return scs.COMM_PORT_BUSY
        expected = replies_expected(txpacket)
        self._settle(port, wait=expected > 0)
        result = super().txPacket(port, txpacket)
        if result == scs.COMM_SUCCESS:
            self.owed += expected
        return result

    def rxPacket(self, port):  # noqa: N802
        return self._receive(port, None, None)

    def txRxPacket(self, port, txpacket):  # noqa: N802
        result = self.txPacket(port, txpacket)
        if result != scs.COMM_SUCCESS:
            return None, result, 0
        servo_id = txpacket[scs.PKT_ID]
        if servo_id == scs.BROADCAST_ID:
            port.is_using = False
            return None, result, 0
        n_params = txpacket[scs.PKT_PARAMETER0 + 1] if txpacket[scs.PKT_INSTRUCTION] == scs.INST_READ else 0
        port.setPacketTimeout(n_params + 6)
        rxpacket, result = self._receive(port, servo_id, n_params)
        error = rxpacket[scs.PKT_ERROR] if result == scs.COMM_SUCCESS else 0
        return rxpacket, result, error

    def readRx(self, port, scs_id, length):  # noqa: N802  (GroupSyncRead reads each servo's reply here)
        rxpacket, result = self._receive(port, scs_id, length)
        if result != scs.COMM_SUCCESS:
            return [], result, 0
        return rxpacket[scs.PKT_PARAMETER0 : scs.PKT_PARAMETER0 + length], result, rxpacket[scs.PKT_ERROR]


def harden_bus(bus: Any) -> StrictPacketHandler:
    """Install a ``StrictPacketHandler`` on a LeRobot ``FeetechMotorsBus`` (and its group readers/writers)."""
    handler = StrictPacketHandler()
    bus.packet_handler = handler
    for group in ("sync_reader", "sync_writer"):
        if getattr(bus, group, None) is not None:
            getattr(bus, group).ph = handler
    return handler
