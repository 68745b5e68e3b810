"""The simulated STS3215 bus: wire protocol, register file, and the unmodified Feetech SDK over a real pty."""

from __future__ import annotations

import json
import time

import pytest
import scservo_sdk as scs

from actors.robots.servo_sim import ErrorBit, Instruction, ServoRegisters, SimulatedBus
from actors.robots.servo_sim.arm import MOTORS, sim_calibration
from actors.robots.servo_sim.cli import FaultFileWatcher
from actors.robots.servo_sim.cli import main as servo_sim_main
from actors.robots.servo_sim.process import BusProcess
from actors.robots.servo_sim.protocol import (
    Packet,
    PacketParser,
    checksum,
    decode_sign_magnitude,
    encode_packet,
    encode_sign_magnitude,
)
from actors.robots.so101.connect import allow_pty_latency


def wait_until(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# ----- protocol -----
def test_packets_match_the_documented_bytes():
    assert encode_packet(1, Instruction.PING) == bytes.fromhex("FFFF010201FB")
    assert encode_packet(1, 0) == bytes.fromhex("FFFF010200FC")
    assert encode_packet(1, Instruction.READ, [0x38, 2]) == bytes.fromhex("FFFF0104023802BE")
    assert encode_packet(1, 0, [0x00, 0x08]) == bytes.fromhex("FFFF0104000008F2")
    sync = encode_packet(0xFE, Instruction.SYNC_READ, [0x38, 2, 1, 2, 3, 4, 5, 6])
    assert sync == bytes.fromhex("FFFFFE0A82380201020304050626")
    assert checksum([1, 4, 3, 0x28, 0x80]) == 0x4F


def test_parser_round_trips_resyncs_and_drops_bad_checksums():
    packets = [encode_packet(i, Instruction.WRITE, [42, i, 0]) for i in range(1, 4)]
    corrupt = bytearray(encode_packet(9, Instruction.PING))
    corrupt[-1] ^= 0xFF
    stream = b"\x00\x13\xff" + packets[0] + bytes(corrupt) + packets[1] + b"\xff" + packets[2]
    parser = PacketParser()
    parsed = []
    for i in range(0, len(stream), 3):  # bytes arrive in small chunks, as from a serial port
        parsed += parser.feed(stream[i : i + 3])
    assert parsed == [Packet(i, Instruction.WRITE, bytes([42, i, 0])) for i in range(1, 4)]
    assert parser.bad_checksums == 1


def test_sign_magnitude_matches_the_sdk_and_lerobots_example():
    assert encode_sign_magnitude(-100, 11) == 2148  # LeRobot's Homing_Offset -100
    for value in (-2047, -1, 0, 1, 2047):
        raw = encode_sign_magnitude(value, 11)
        assert raw == scs.SCS_TOSCS(value, 11)
        assert decode_sign_magnitude(raw, 11) == value == scs.SCS_TOHOST(raw, 11)
    assert decode_sign_magnitude(encode_sign_magnitude(-4000, 15), 15) == -4000
    with pytest.raises(ValueError):
        encode_sign_magnitude(2048, 11)


# ----- register file -----
def test_homing_offset_limits_torque_and_read_only_registers():
    servo = ServoRegisters(1, actual=2500)
    assert servo.get("Model_Number") == 777 and servo.present_position() == 2500
    servo.write(31, encode_sign_magnitude(-100, 11).to_bytes(2, "little"))  # Homing_Offset -100 on the wire
    assert servo.get("Homing_Offset") == -100 and servo.present_position() == 2600
    servo.set("Min_Position_Limit", 1000)
    servo.set("Max_Position_Limit", 3000)
    servo.write(42, (3900).to_bytes(2, "little"))
    assert servo.get("Goal_Position") == 3000  # clipped in the offset frame
    assert servo.goal_actual() == 2900
    servo.write(56, b"\x00\x00")  # Present_Position is read-only
    assert servo.read(56, 2) == (2600).to_bytes(2, "little")
    servo.write(40, b"\x01")  # torque on holds the present position rather than a stale goal
    assert servo.torque_enabled and servo.get("Goal_Position") == 2600
    servo.write(40, bytes([128]))  # Feetech's "set current position as 2048"
    assert servo.present_position() == 2048 and not servo.torque_enabled
    servo.error_bits = ErrorBit.OVERLOAD | ErrorBit.OVERHEAT
    assert servo.read(65, 1) == bytes([36])


def test_bus_instructions_without_a_port():
    bus = SimulatedBus(ids=[1, 2])
    assert bus.handle(Packet(0xFE, Instruction.PING, b"")) == encode_packet(1, 0) + encode_packet(2, 0)
    assert bus.handle(Packet(0xFE, Instruction.WRITE, bytes([7, 0]))) == b""  # broadcast: no reply
    assert [s.get("Return_Delay_Time") for s in bus.servos] == [0, 0]
    bus.handle(Packet(0xFE, Instruction.SYNC_WRITE, bytes([46, 2, 1, 10, 0, 2, 20, 0])))
    assert [s.get("Goal_Velocity") for s in bus.servos] == [10, 20]
    assert bus.handle(Packet(2, Instruction.REG_WRITE, bytes([48, 100, 0]))) == encode_packet(2, 0)
    assert bus.servo(2).get("Torque_Limit") == 1000  # buffered until ACTION
    bus.handle(Packet(0xFE, Instruction.ACTION, b""))
    assert bus.servo(2).get("Torque_Limit") == 100
    reply = bus.handle(Packet(0xFE, Instruction.SYNC_READ, bytes([3, 2, 2, 1])))
    assert reply == encode_packet(2, 0, (777).to_bytes(2, "little")) + encode_packet(1, 0, b"\x09\x03")
    bus.handle(Packet(1, Instruction.WRITE, bytes([8, 0])))  # Response_Status_Level 0: only READ/PING answer
    assert bus.handle(Packet(1, Instruction.WRITE, bytes([41, 5]))) == b""
    assert bus.handle(Packet(1, Instruction.WRITE, bytes([5, 9]))) == b""  # new id
    assert bus.servo(9).get("Acceleration") == 5
    assert bus.handle(Packet(1, Instruction.PING, b"")) == b""


# ----- the unmodified SDK over a pty -----
@pytest.fixture
def sdk_bus():
    # Served from its own process, like real servos: an in-process thread shares the SDK's GIL.
    with BusProcess() as bus:
        port = scs.PortHandler(bus.port)
        allow_pty_latency(port)
        assert port.openPort()
        yield bus, port, scs.PacketHandler(0)
        port.closePort()


def answered(port, call, comm_index: int = 1, timeout_s: float = 30.0):
    """One SDK transaction with a servo that does answer, sent again while it times out: the SDK's
    fixed packet timeout is missed when the bus process waits on a busy scheduler (seen once in a
    CI run). Input is flushed between tries, so a late reply cannot answer the next request."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = call()
        if result[comm_index] != scs.COMM_RX_TIMEOUT or time.monotonic() > deadline:
            return result
        port.clearPort()


def test_sdk_ping_read_write(sdk_bus):
    bus, port, packets = sdk_bus
    assert answered(port, lambda: packets.ping(port, 1)) == (777, scs.COMM_SUCCESS, 0)
    assert packets.ping(port, 42)[1] == scs.COMM_RX_TIMEOUT
    assert answered(port, lambda: packets.read1ByteTxRx(port, 3, 0))[0] == 3  # firmware major
    assert answered(port, lambda: packets.write1ByteTxRx(port, 3, 7, 0), 0) == (scs.COMM_SUCCESS, 0)
    assert bus.register(3, "Return_Delay_Time") == 0
    write = answered(port, lambda: packets.write2ByteTxRx(port, 3, 31, encode_sign_magnitude(-48, 11)), 0)
    assert write == (scs.COMM_SUCCESS, 0)
    assert answered(port, lambda: packets.read2ByteTxRx(port, 3, 56))[0] == 2048 + 48


def test_sdk_sync_write_moves_servos_only_with_torque(sdk_bus):
    bus, port, packets = sdk_bus
    writer = scs.GroupSyncWrite(port, packets, 42, 2)
    goals = {i: 2048 + 150 * i for i in MOTORS.values()}
    for servo_id, goal in goals.items():
        writer.addParam(servo_id, [scs.SCS_LOBYTE(goal), scs.SCS_HIBYTE(goal)])
    assert writer.txPacket() == scs.COMM_SUCCESS
    reader = scs.GroupSyncRead(port, packets, 56, 2)
    for servo_id in goals:
        reader.addParam(servo_id)

    def present() -> dict[int, int]:
        assert answered(port, lambda: (reader.txRxPacket(),), 0)[0] == scs.COMM_SUCCESS
        return {i: reader.getData(i, 56, 2) for i in goals}

    time.sleep(0.1)
    assert set(present().values()) == {2048}  # torque off: goals stored, shafts passive
    for servo_id in goals:
        assert (
            answered(port, lambda servo_id=servo_id: packets.write1ByteTxRx(port, servo_id, 40, 1), 0)[0] == 0
        )
    writer.txPacket()  # torque on held the present position; send the goals again
    assert wait_until(lambda: present() == goals)
    assert all(answered(port, lambda i=i: packets.read1ByteTxRx(port, i, 40))[0] == 1 for i in goals)


def test_sdk_sees_injected_faults(sdk_bus):
    bus, port, packets = sdk_bus
    bus.inject_fault(2, "overload")
    bus.inject_fault(4, "overheat")
    bus.inject_fault(5, "corrupt")
    bus.inject_fault(6, "silent")
    _, comm, error = answered(port, lambda: packets.ping(port, 2))
    assert comm == scs.COMM_SUCCESS and error == ErrorBit.OVERLOAD
    assert "Overload" in packets.getRxPacketError(error)
    # The Status register mirrors the bits, and the servo is hot.
    assert answered(port, lambda: packets.read1ByteTxRx(port, 4, 65))[0] == ErrorBit.OVERHEAT
    assert answered(port, lambda: packets.read1ByteTxRx(port, 4, 63))[0] > 70
    assert answered(port, lambda: packets.ping(port, 5))[1] == scs.COMM_RX_CORRUPT
    assert packets.ping(port, 6)[1] == scs.COMM_RX_TIMEOUT
    bus.clear_faults()
    pings = [answered(port, lambda i=i: packets.ping(port, i))[1:] for i in (2, 4, 5, 6)]
    assert pings == [(scs.COMM_SUCCESS, 0)] * 4


# ----- hilserl servo-sim -----
def test_servo_sim_command_writes_a_matching_calibration(tmp_path, capsys):
    assert servo_sim_main(["--calibrate", str(tmp_path), "--seconds", "0.2", "--fault", "3:overload"]) == 0
    out = capsys.readouterr().out
    assert "/dev/pts/" in out and str(tmp_path / "follower.json") in out
    assert json.loads((tmp_path / "follower.json").read_text()) == sim_calibration()
    assert servo_sim_main(["--calibrate", str(tmp_path), "--seconds", "0"]) == 0  # same file: reused

    (tmp_path / "leader.json").write_text("{}")
    assert servo_sim_main(["--calibrate", str(tmp_path), "--id", "leader", "--seconds", "0"]) == 2
    assert (tmp_path / "leader.json").read_text() == "{}"  # never overwritten
    assert servo_sim_main(["--fault", "9:melt", "--seconds", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 2 and "already exists" in err and "bad --fault" in err


def test_servo_sim_refuses_a_file_as_calibration_folder_and_ids_that_are_paths(tmp_path, capsys):
    target = tmp_path / "calib.json"
    target.write_text("{}")
    assert servo_sim_main(["--calibrate", str(target), "--seconds", "0"]) == 2
    calib = tmp_path / "calib"
    for bad_id in ("../x", "a/b", "..", ""):
        assert servo_sim_main(["--calibrate", str(calib), "--id", bad_id, "--seconds", "0"]) == 2
    assert target.read_text() == "{}" and sorted(p.name for p in tmp_path.iterdir()) == ["calib.json"]
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 5 and "is a file, not a folder" in lines[0]
    assert all("bad --id" in line for line in lines[1:])


def test_fault_file_injects_and_clears_faults_on_a_running_bus(tmp_path, capsys):
    bus = SimulatedBus()
    path = tmp_path / "faults"
    watcher = FaultFileWatcher(bus, path, [(2, "overload")])
    assert watcher.poll() and bus.faults == {2: {"overload"}}  # no file yet: only --fault
    assert not watcher.poll()  # unchanged
    path.write_text("# servo 4 overheats now\n4:overheat\n\n")
    assert watcher.poll()
    assert bus.faults == {2: {"overload"}, 4: {"overheat"}} and bus.servo(4).error_bits == ErrorBit.OVERHEAT
    path.write_text("4:melt\n")
    assert not watcher.poll() and 4 in bus.faults  # a bad line leaves the faults as they were
    path.write_text("")
    assert watcher.poll() and bus.faults == {2: {"overload"}} and bus.servo(4).error_bits == 0
    out, err = capsys.readouterr()
    assert "faults now: 2:overload, 4:overheat" in out and "bad --fault '4:melt'" in err


def test_pty_ports_get_a_wider_sdk_timeout_on_that_handler_only(sdk_bus, tmp_path):
    import scservo_sdk.port_handler as sdk_port

    from actors.robots.so101.connect import is_pseudo_terminal

    bus, port, _ = sdk_bus
    assert is_pseudo_terminal(bus.port)
    assert not is_pseudo_terminal("/dev/null") and not is_pseudo_terminal(str(tmp_path))
    port.setPacketTimeout(6)
    assert port.packet_timeout > 150  # 2 x 75 ms latency allowance on the patched handler
    other = scs.PortHandler(bus.port)  # the SDK module and every other handler keep their timeout
    other.setPacketTimeout(6)
    assert sdk_port.LATENCY_TIMER == 16 and other.packet_timeout < 40
