"""Replies matched to their requests: late, stale and garbled status packets on a real pty.

A scripted servo answers on the master side of a pty; the client is the Feetech SDK's PortHandler
with our ``StrictPacketHandler`` (and, to pin the bug, the SDK's own PacketHandler).
"""

from __future__ import annotations

import os
import select
import threading
import time
import tty

import pytest
import scservo_sdk as scs

from actors.robots.servo_sim import SimulatedBus
from actors.robots.servo_sim.protocol import Instruction, PacketParser, encode_packet
from actors.robots.so101.packets import StrictPacketHandler, _scan, replies_expected

PRESENT_POSITION, STATUS, MIN_LIMIT, MAX_LIMIT = 56, 65, 9, 11


class ScriptedServo(threading.Thread):
    """Answers each request on the master side with its scripted replies, in order: (delay_s, bytes)
    pairs, or a threading.Event to wait for before going on."""

    def __init__(self, master: int, script: list[list]) -> None:
        super().__init__(daemon=True)
        self.master, self.script, self.requests = master, script, []

    def run(self) -> None:
        parser, pending = PacketParser(), []
        for answers in self.script:
            deadline = time.monotonic() + 5
            while not pending and time.monotonic() < deadline:
                if select.select([self.master], [], [], 0.05)[0]:
                    pending += parser.feed(os.read(self.master, 4096))
            if not pending:
                return
            self.requests.append(pending.pop(0))
            for answer in answers:
                if isinstance(answer, threading.Event):
                    answer.wait(5)
                    continue
                delay, data = answer
                time.sleep(delay)
                os.write(self.master, data)


@pytest.fixture
def line():
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    port = scs.PortHandler(os.ttyname(slave))
    assert port.openPort()
    fixed_timeouts(port)  # generous: the scripted servo is a thread of this (possibly busy) process
    yield master, port
    port.closePort()
    os.close(master)
    os.close(slave)


def fixed_timeouts(port, *milliseconds: float) -> None:
    """The port's next packet timeouts, one per request (instead of the SDK's computed ones)."""
    queue = list(milliseconds)
    port.setPacketTimeout = lambda _length: port.setPacketTimeoutMillis(queue.pop(0) if queue else 2000)


def reply(servo_id: int, data: bytes = b"", error: int = 0) -> bytes:
    return encode_packet(servo_id, error, data)


POSITION_REPLY = reply(1, (0x0B28).to_bytes(2, "little"))  # position 2856: its low byte 0x28 is 40


def test_the_plain_sdk_reads_a_late_position_reply_as_fault_bits(line):
    """The bug: the SDK never flushes input and checks neither length nor request, so the late reply to
    a timed-out Present_Position read answers the next Status read - 0x28, over-current + overload."""
    master, port = line
    # Servo 1 answers the position read only once the next request (Status) is on the line.
    servo = ScriptedServo(master, [[], [(0.0, POSITION_REPLY + reply(1, b"\x00"))]])
    servo.start()
    packets = scs.PacketHandler(0)
    fixed_timeouts(port, 50, 2000, 50, 2000)
    assert packets.read2ByteTxRx(port, 1, PRESENT_POSITION)[1] == scs.COMM_RX_TIMEOUT
    status, comm, _ = packets.read1ByteTxRx(port, 1, STATUS)
    assert (status, comm) == (0x28, scs.COMM_SUCCESS)  # 8 over-current + 32 overload, from nowhere
    servo.join(5)

    # The same exchange with replies matched to their requests: the status is the servo's own.
    servo = ScriptedServo(master, [[], [(0.0, POSITION_REPLY + reply(1, b"\x00"))]])
    servo.start()
    packets = StrictPacketHandler()
    assert packets.read2ByteTxRx(port, 1, PRESENT_POSITION)[1] == scs.COMM_RX_TIMEOUT
    assert packets.read1ByteTxRx(port, 1, STATUS) == (0, scs.COMM_SUCCESS, 0)
    assert packets.stale == 1
    servo.join(5)


def test_a_late_reply_is_waited_for_and_dropped_before_the_next_request(line):
    master, port = line
    timed_out = threading.Event()
    servo = ScriptedServo(master, [[timed_out, (0.0, POSITION_REPLY)], [(0.0, reply(1, b"\x00"))]])
    servo.start()
    packets = StrictPacketHandler(settle_quiet_s=1.0, settle_max_s=3.0)
    fixed_timeouts(port, 50, 2000)
    assert packets.read2ByteTxRx(port, 1, PRESENT_POSITION)[1] == scs.COMM_RX_TIMEOUT
    assert packets.owed == 1
    timed_out.set()  # the position reply comes now, after its request timed out
    assert packets.read1ByteTxRx(port, 1, STATUS) == (0, scs.COMM_SUCCESS, 0)
    assert packets.stale == 1 and packets.owed == 0  # waited for, then thrown away
    servo.join(5)


def test_a_stale_reply_already_waiting_is_flushed(line):
    master, port = line
    os.write(master, reply(3, (946).to_bytes(2, "little")))  # e.g. Min_Position_Limit, answered late
    time.sleep(0.05)
    servo = ScriptedServo(master, [[(0.0, reply(3, (3150).to_bytes(2, "little")))]])
    servo.start()
    packets = StrictPacketHandler()
    assert packets.read2ByteTxRx(port, 3, MAX_LIMIT) == (3150, scs.COMM_SUCCESS, 0)


def test_only_the_addressed_servo_and_the_requested_length_answer(line):
    master, port = line
    answers = [
        (0.0, reply(2, (910).to_bytes(2, "little"))),  # another servo
        (0.0, reply(3, b"\x20")),  # right servo, wrong length (a 1-byte register)
        (0.0, reply(3, (3150).to_bytes(2, "little"))),
    ]
    servo = ScriptedServo(master, [answers])
    servo.start()
    packets = StrictPacketHandler()
    assert packets.read2ByteTxRx(port, 3, MAX_LIMIT) == (3150, scs.COMM_SUCCESS, 0)
    assert packets.stale == 2


def test_fault_bits_come_only_from_a_valid_status_packet(line):
    master, port = line
    garbled = bytearray(reply(2, error=0x20))  # claims overload, but its checksum is wrong
    garbled[-1] ^= 0x5A
    fragment = b"\xff\xff\x02\xf0"  # a header whose length (240) would swallow what follows
    script = [
        [(0.0, bytes(garbled))],
        [(0.0, fragment + reply(2) + reply(2, (777).to_bytes(2, "little")))],
    ]
    servo = ScriptedServo(master, script)
    servo.start()
    packets = StrictPacketHandler()
    fixed_timeouts(port, 300, 300)  # a garbled reply is reported when the timeout ends
    _, comm, error = packets.txRxPacket(port, [0xFF, 0xFF, 2, 2, Instruction.PING, 0])
    assert (comm, error) == (scs.COMM_RX_CORRUPT, 0)
    assert packets.garbled == 1
    # A fragment with a bogus length does not hide the whole packet behind it.
    _, comm, error = packets.txRxPacket(port, [0xFF, 0xFF, 2, 2, Instruction.PING, 0])
    assert (comm, error) == (scs.COMM_SUCCESS, 0)


def test_sync_read_skips_a_stale_packet_between_the_replies(line):
    master, port = line
    answers = [(0.0, reply(1, b"\x00") + POSITION_REPLY + reply(2, b"\x00") + reply(3, b"\x04"))]
    servo = ScriptedServo(master, [answers])
    servo.start()
    packets = StrictPacketHandler()
    reader = scs.GroupSyncRead(port, packets, STATUS, 1)
    for servo_id in (1, 2, 3):
        reader.addParam(servo_id)
    assert reader.txRxPacket() == scs.COMM_SUCCESS
    assert [reader.getData(i, STATUS, 1) for i in (1, 2, 3)] == [0, 0, 4]
    assert packets.stale == 1


def test_scan_and_expected_replies():
    buffer = bytearray(b"\x00\xff" + reply(1) + b"\xff\xff\xff" + reply(2, b"\x05") + b"\xff")
    packets, garbled = _scan(buffer)
    assert [p[2] for p in packets] == [1, 2] and garbled == 0 and buffer == b"\xff"
    assert replies_expected([0xFF, 0xFF, 0xFE, 10, Instruction.SYNC_READ, 56, 2, 1, 2, 3, 4, 5, 6, 0]) == 6
    assert replies_expected([0xFF, 0xFF, 0xFE, 4, Instruction.WRITE, 40, 0, 0]) == 0
    assert replies_expected([0xFF, 0xFF, 3, 4, Instruction.READ, 9, 2, 0]) == 1


# ----- the simulated bus: never a reply to a request the client gave up on -----
def test_the_simulated_bus_drops_replies_to_superseded_requests():
    with SimulatedBus(ids=[1, 2]) as bus:
        fd = os.open(bus.port, os.O_RDWR | os.O_NOCTTY)
        try:
            tty.setraw(fd)
            first = encode_packet(1, Instruction.READ, [MIN_LIMIT, 2])
            second = encode_packet(1, Instruction.READ, [MAX_LIMIT, 2])
            os.write(fd, first + second)  # the client moved on before the first one was answered
            time.sleep(0.3)
            data = os.read(fd, 4096)
        finally:
            os.close(fd)
        assert data == reply(1, (4095).to_bytes(2, "little"))  # only the second request's answer
        assert bus.superseded == 1


def test_late_replies_of_the_delay_fault_never_answer_another_request():
    """The 'delay' fault sends every reply 50 ms late, after the SDK's ~34 ms timeout, even when the
    client has moved on: each read then fails or returns its own register, never the other one."""
    with SimulatedBus(ids=[3]) as bus:
        bus.servo(3).set("Min_Position_Limit", 946)
        bus.servo(3).set("Max_Position_Limit", 3150)
        bus.inject_fault(3, "delay")
        port = scs.PortHandler(bus.port)
        assert port.openPort()
        try:
            packets = StrictPacketHandler()
            values = {MIN_LIMIT: 946, MAX_LIMIT: 3150}
            results = []
            for i in range(8):
                addr = (MIN_LIMIT, MAX_LIMIT)[i % 2]
                value, comm, _ = packets.read2ByteTxRx(port, 3, addr)
                results.append(comm)
                assert comm != scs.COMM_SUCCESS or value == values[addr]
        finally:
            port.closePort()
        assert scs.COMM_RX_TIMEOUT in results


def test_a_request_without_a_reply_does_not_wait_for_owed_replies(line):
    """A broadcast torque-off after a timeout goes out at once; the next read waits for the owed reply."""
    _, port = line
    packets = StrictPacketHandler(settle_quiet_s=1.0, settle_max_s=3.0)
    fixed_timeouts(port, 50)
    assert packets.ping(port, 1)[1] == scs.COMM_RX_TIMEOUT  # nobody answers
    assert packets.owed == 1
    start = time.monotonic()
    assert packets.write1ByteTxOnly(port, scs.BROADCAST_ID, 40, 0) == scs.COMM_SUCCESS
    assert time.monotonic() - start < 0.5 and packets.owed == 1
