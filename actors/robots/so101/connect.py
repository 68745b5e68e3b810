"""Connecting to an SO-101 arm (follower or leader) safely: checks that turn bus trouble into one line.

LeRobot's own failures are multi-line (motor tables), interactive (``input()`` when the calibration
does not match) or silent (a servo whose status carries error bits looks "missing"). Before handing
the port to LeRobot we probe it with the plain Feetech SDK and check the calibration file, so every
bad input ends in a ``UserError`` naming the problem and the fix. ``safe_stop`` turns torque off on
every servo even when some of them report errors (LeRobot's ``disable_torque`` stops at the first).
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from actors.robots.contract import MOTORS
from configs.errors import UserError

logger = logging.getLogger(__name__)

TORQUE_ENABLE_ADDR = 40
LOCK_ADDR = 55
STATUS_NAMES = {1: "voltage", 2: "angle sensor", 4: "overheat", 8: "over-current", 32: "overload"}
CALIBRATION_KEYS = ("id", "drive_mode", "homing_offset", "range_min", "range_max")


def describe_error_bits(bits: int) -> str:
    return "+".join(name for bit, name in STATUS_NAMES.items() if bits & bit) or f"error 0x{bits:02x}"


def calibrate_command(kind: str, port: str | None, device_id: str, calibration_dir: Path) -> str:
    """The command that creates a calibration file for this arm."""
    role = "robot" if kind == "follower" else "teleop"
    return (
        f"lerobot-calibrate --{role}.type=so101_{kind} --{role}.port={port or '<PORT>'} "
        f"--{role}.id={device_id} --{role}.calibration_dir={calibration_dir}"
        f" (for the simulator: hilserl servo-sim --calibrate {calibration_dir} --id {device_id})"
    )


# A simulated bus (`hilserl servo-sim`) answers through a pseudo-terminal from another process, so
# its replies wait on the OS scheduler; on a loaded 2-core machine that can exceed the SDK's
# 16 ms latency allowance (a ~34 ms packet timeout) and a healthy servo reads as silent. Real USB
# adapters keep the SDK default.
PTY_LATENCY_TIMER_MS = 75


def is_pseudo_terminal(port: str) -> bool:
    return os.path.realpath(port).startswith("/dev/pts/")


def allow_pty_latency(port: str) -> None:
    """Widen the Feetech SDK's packet timeout when ``port`` is a pseudo-terminal (a simulated bus)."""
    if is_pseudo_terminal(port):
        import scservo_sdk.port_handler as sdk_port

        sdk_port.LATENCY_TIMER = max(sdk_port.LATENCY_TIMER, PTY_LATENCY_TIMER_MS)


def check_port(port: str | None, option: str) -> str:
    if not port:
        raise UserError(
            f"{option} is not set; pass the arm's serial port (find it with lerobot-find-port) "
            "or start a simulated bus with `hilserl servo-sim` and pass the port it prints"
        )
    if not os.path.exists(port):
        raise UserError(
            f"serial port {port} does not exist; plug in the arm and pass the right {option} "
            "(find it with lerobot-find-port), or start `hilserl servo-sim` and use the port it prints"
        )
    allow_pty_latency(port)
    return port


def load_calibration(path: Path, kind: str, port: str | None, device_id: str) -> dict[str, dict[str, Any]]:
    """Read and validate a LeRobot calibration file (one entry per SO-101 motor, ids 1-6)."""
    fix = calibrate_command(kind, port, device_id, path.parent)
    if not path.is_file():
        raise UserError(f"calibration file {path} is missing; create it with {fix}")
    try:
        calibration = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise UserError(f"calibration file {path} is not valid JSON ({err}); recreate it with {fix}") from err
    if not isinstance(calibration, dict) or set(calibration) != set(MOTORS):
        got = sorted(calibration) if isinstance(calibration, dict) else type(calibration).__name__
        raise UserError(
            f"calibration file {path} does not match an SO-101 (motors {got}, expected {list(MOTORS)}); "
            f"recreate it with {fix}"
        )
    for motor, entry in calibration.items():
        if not isinstance(entry, dict) or any(k not in entry for k in CALIBRATION_KEYS):
            raise UserError(
                f"calibration file {path}: motor '{motor}' lacks one of {CALIBRATION_KEYS}; recreate it with {fix}"
            )
        if entry["id"] != MOTORS[motor]:
            raise UserError(
                f"calibration file {path}: motor '{motor}' has id {entry['id']}, expected {MOTORS[motor]}; "
                f"recreate it with {fix}"
            )
        if entry["range_min"] >= entry["range_max"]:
            raise UserError(
                f"calibration file {path}: motor '{motor}' has range_min >= range_max; recreate it with {fix}"
            )
    return calibration


def probe_servos(port: str, option: str) -> None:
    """Ping every SO-101 servo with the plain SDK: the port opens, each id answers, none reports an error."""
    import scservo_sdk as scs

    handler = scs.PortHandler(port)
    packets = scs.PacketHandler(0)
    try:
        opened = handler.openPort()
    except Exception as err:  # pyserial raises SerialException/OSError for non-serial paths
        raise UserError(
            f"cannot open serial port {port} ({err}); check {option} and that no other program holds the port"
        ) from err
    if not opened:
        raise UserError(f"cannot open serial port {port} at 1 Mbaud; check {option}")
    try:
        silent, garbled, faulty = [], [], []
        for motor, motor_id in MOTORS.items():
            for _ in range(3):  # real buses drop the odd packet (LeRobot retries reads twice too)
                handler.ser.reset_input_buffer()  # a late reply would answer the wrong request
                try:
                    model, comm, error = packets.ping(handler, motor_id)
                except IndexError:  # the SDK indexes a stale, shorter reply it took for its READ
                    model, comm, error = 0, scs.COMM_RX_CORRUPT, 0
                if comm == scs.COMM_SUCCESS:
                    break
            if comm == scs.COMM_RX_CORRUPT:
                garbled.append(f"{motor} (id {motor_id})")
            elif comm != scs.COMM_SUCCESS:
                silent.append(f"{motor} (id {motor_id})")
            elif error:
                faulty.append(f"{motor} (id {motor_id}) reports {describe_error_bits(error)}")
            elif model != 777:
                faulty.append(f"{motor} (id {motor_id}) is model {model}, not an STS3215 (777)")
    finally:
        handler.closePort()
    if silent:
        raise UserError(
            f"no answer on {port} from servo {', '.join(silent)}; check its cable and power, and its id "
            "(set ids with lerobot-setup-motors)"
        )
    if garbled:
        raise UserError(
            f"garbled replies (bad checksums) on {port} from servo {', '.join(garbled)}; check the cable, "
            "the power supply and that every servo runs at 1 Mbaud"
        )
    if faulty:
        raise UserError(
            f"servo {'; '.join(faulty)} on {port}; power the arm off, let it cool and free any blocked joint, "
            "then reconnect"
        )


def check_registers_match(bus: Any, calibration: dict[str, dict[str, Any]], path: Path, fix: str) -> None:
    """Compare the motors' homing offsets and limits with the file (what LeRobot's is_calibrated checks)."""
    registers = {
        "homing_offset": "Homing_Offset",
        "range_min": "Min_Position_Limit",
        "range_max": "Max_Position_Limit",
    }
    for motor, entry in calibration.items():
        for key, register in registers.items():
            on_motor = bus.read(register, motor, normalize=False, num_retry=2)
            if on_motor != entry[key]:
                raise UserError(
                    f"calibration file {path} does not match the arm ({motor} {key}: file {entry[key]}, "
                    f"motor {on_motor}); recalibrate with {fix}"
                )


def safe_stop(bus: Any) -> None:
    """Torque off on every servo, whatever state the bus is in, then close the port. Never raises."""
    try:
        import scservo_sdk as scs

        handler, packets = bus.port_handler, bus.packet_handler
        if not handler.is_open:
            return
        handler.is_using = False
        # One broadcast packet reaches every servo, even ones that no longer answer.
        packets.write1ByteTxOnly(handler, scs.BROADCAST_ID, TORQUE_ENABLE_ADDR, 0)
        for motor_id in MOTORS.values():
            for _ in range(3):
                handler.is_using = False
                comm, _ = packets.write1ByteTxRx(handler, motor_id, TORQUE_ENABLE_ADDR, 0)
                if comm == scs.COMM_SUCCESS:
                    handler.is_using = False
                    packets.write1ByteTxRx(handler, motor_id, LOCK_ADDR, 0)
                    break
    except Exception:  # a stop must never mask the error that caused it
        logger.exception("torque-off on stop failed")
    finally:
        try:
            bus.port_handler.closePort()
        except Exception:
            logger.exception("closing the port failed")


def read_status_bits(bus: Any) -> dict[str, int]:
    """Status register (65) of every servo: the same bits as the status packets' error byte."""
    drop_stale_replies(bus)
    values = bus.sync_read("Status", normalize=False, num_retry=2)
    return {motor: int(v) for motor, v in values.items() if int(v)}


def configure_with_retries(device: Any, attempts: int = 3) -> None:
    """LeRobot's ``configure()`` (idempotent register writes, none retried) with whole-call retries:
    serial buses drop the odd status packet, and one lost reply should not abort a connect."""
    for attempt in range(attempts):
        try:
            device.configure()
            return
        except ConnectionError as err:
            if attempt == attempts - 1:
                raise
            logger.warning("configuring %s failed (%s); retrying", device, err)
            device.bus.port_handler.is_using = False


def drop_stale_replies(bus: Any) -> None:
    """Discard bytes waiting on the port before a request. The SDK never does (its ``clearPort`` only
    drains output), so a reply that arrived after its timeout would be taken as the answer to the
    next request with the same servo id - e.g. a late Present_Position byte read as Status bits."""
    serial_port = getattr(bus.port_handler, "ser", None)
    if serial_port is not None and bus.port_handler.is_open:
        serial_port.reset_input_buffer()
