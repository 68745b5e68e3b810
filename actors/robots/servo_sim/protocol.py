"""Feetech STS wire protocol: packet framing, checksums, instruction codes and sign-magnitude numbers.

Instruction packet ``FF FF id len inst params.. chk`` and status packet ``FF FF id len err params.. chk``
with ``len = n_params + 2`` and ``chk = ~(id + len + inst/err + sum(params)) & 0xFF``. Multi-byte
values are little-endian (STS series). Facts from Feetech's STS memory table and the SDK.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

HEADER = b"\xff\xff"
BROADCAST_ID = 0xFE
MAX_PACKET_LEN = 250  # the SDK refuses longer packets in both directions


class Instruction(IntEnum):
    PING = 0x01
    READ = 0x02
    WRITE = 0x03
    REG_WRITE = 0x04
    ACTION = 0x05
    SYNC_READ = 0x82
    SYNC_WRITE = 0x83


class ErrorBit(IntFlag):
    """Bits of the status packet's error byte (the SDK's getRxPacketError names)."""

    VOLTAGE = 1
    ANGLE = 2
    OVERHEAT = 4
    OVERCURRENT = 8
    OVERLOAD = 32


def checksum(body: bytes | list[int]) -> int:
    """Checksum over id, length, instruction/error and parameters (the header is excluded)."""
    return ~sum(body) & 0xFF


def encode_packet(servo_id: int, code: int, params: bytes | list[int] = b"") -> bytes:
    """One instruction (code = instruction) or status (code = error byte) packet."""
    body = bytes([servo_id, len(params) + 2, code]) + bytes(params)
    if len(body) + 3 > MAX_PACKET_LEN:
        raise ValueError(f"packet of {len(body) + 3} bytes exceeds {MAX_PACKET_LEN}")
    return HEADER + body + bytes([checksum(body)])


@dataclass(frozen=True)
class Packet:
    """A parsed packet: ``code`` is the instruction (requests) or the error byte (replies)."""

    servo_id: int
    code: int
    params: bytes


class PacketParser:
    """Incremental parser: feed raw bytes, get whole packets; resyncs on FF FF, drops bad checksums."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.bad_checksums = 0

    def reset(self) -> None:
        """Forget a partly received packet."""
        self._buffer.clear()

    def holds_partial_packet(self) -> bool:
        """Whether the start of a packet (a header) is waiting for the rest of its bytes."""
        return self._buffer.startswith(HEADER)

    def feed(self, data: bytes) -> list[Packet]:
        self._buffer += data
        packets: list[Packet] = []
        while True:
            start = self._buffer.find(HEADER)
            if start < 0:
                # Keep a trailing FF: it may be the first half of the next header.
                del self._buffer[: max(0, len(self._buffer) - 1)]
                return packets
            del self._buffer[:start]
            # A third FF means the header starts one byte later (the id byte is never 0xFF).
            if len(self._buffer) >= 3 and self._buffer[2] == 0xFF:
                del self._buffer[0]
                continue
            if len(self._buffer) < 4:
                return packets
            length = self._buffer[3]
            if length < 2 or length + 4 > MAX_PACKET_LEN:
                del self._buffer[:2]
                continue
            total = length + 4
            if len(self._buffer) < total:
                return packets
            raw = bytes(self._buffer[:total])
            del self._buffer[:total]
            if checksum(raw[2:-1]) != raw[-1]:
                self.bad_checksums += 1
                continue
            packets.append(Packet(servo_id=raw[2], code=raw[4], params=raw[5:-1]))


def encode_sign_magnitude(value: int, sign_bit: int) -> int:
    """Signed int -> sign-magnitude with the sign at ``sign_bit`` (Homing_Offset uses 11, positions 15)."""
    magnitude = abs(int(value))
    if magnitude >= 1 << sign_bit:
        raise ValueError(f"{value} does not fit a sign-magnitude number with sign bit {sign_bit}")
    return magnitude | (1 << sign_bit) if value < 0 else magnitude


def decode_sign_magnitude(raw: int, sign_bit: int) -> int:
    """Sign-magnitude -> signed int."""
    magnitude = raw & ((1 << sign_bit) - 1)
    return -magnitude if raw & (1 << sign_bit) else magnitude


def to_le(value: int, size: int) -> bytes:
    return int(value).to_bytes(size, "little")


def from_le(data: bytes) -> int:
    return int.from_bytes(data, "little")
