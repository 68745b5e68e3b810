"""Connecting to an SO-101 arm (follower or leader) safely: checks that turn bus trouble into one line.

LeRobot's own failures are multi-line (motor tables), interactive (``input()`` when the calibration
does not match) or silent (a servo whose status carries error bits looks "missing"). Before handing
the port to LeRobot we probe it with the plain Feetech SDK and check the calibration file, so every
bad input ends in a ``UserError`` naming the problem and the fix. ``safe_stop`` turns torque off on
every servo even when some of them report errors (LeRobot's ``disable_torque`` stops at the first).

Every bus we open (the probe's and LeRobot's) gets a ``StrictPacketHandler`` (``packets``): a reply is
accepted only for the request it answers, so a late or garbled packet never reads as a fault or as
another register's value. ``connect_bus`` replaces LeRobot's handshake with the same checks, retried.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import termios
from pathlib import Path
from typing import Any

from actors.robots.contract import MOTORS
from actors.robots.so101.packets import StrictPacketHandler, harden_bus
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
# 16 ms latency allowance (a ~34 ms packet timeout). Our probe's port handler gets 75 ms instead
# (``allow_pty_latency``); the SDK module, LeRobot's buses and real USB adapters keep their timeouts.
SDK_LATENCY_TIMER_MS = 16
PTY_LATENCY_TIMER_MS = 75


def is_pseudo_terminal(port: str) -> bool:
    return os.path.realpath(port).startswith("/dev/pts/")


def allow_pty_latency(port_handler: Any) -> None:
    """Widen one SDK ``PortHandler``'s packet timeout when its port is a pseudo-terminal (a simulated
    bus): this handler only, never the SDK module (LeRobot's buses elsewhere keep their timeouts)."""
    if not is_pseudo_terminal(port_handler.getPortName()) or getattr(port_handler, "pty_latency", False):
        return
    base = port_handler.setPacketTimeout
    extra_ms = 2.0 * (PTY_LATENCY_TIMER_MS - SDK_LATENCY_TIMER_MS)

    def set_packet_timeout(packet_length: int) -> None:
        base(packet_length)
        port_handler.packet_timeout += extra_ms

    port_handler.setPacketTimeout = set_packet_timeout
    port_handler.pty_latency = True


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
    """Ping every SO-101 servo with the plain SDK: the port opens, each id answers, none reports an error.

    Replies are matched to their requests (``StrictPacketHandler``): a late reply to an earlier ping
    is never taken for this one, and error bits come only from a valid status packet of that servo."""
    import scservo_sdk as scs

    handler = scs.PortHandler(port)
    allow_pty_latency(handler)
    packets = StrictPacketHandler()
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
                model, comm, error = packets.ping(handler, motor_id)
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
    except BUS_ERRORS as err:
        raise port_lost_error(port, err, "probing the servos", torque_was_on=False) from err
    finally:
        try:
            handler.closePort()
        except Exception:
            logger.exception("closing the port failed")
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
            if on_motor != entry[key]:  # a mismatch is worth a second look before refusing the arm
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
    except Exception as err:  # a stop must never mask the error that caused it
        logger.warning("torque-off on stop failed: %s: %s", type(err).__name__, err)
    finally:
        try:
            bus.port_handler.closePort()
        except Exception as err:
            logger.warning("closing the port failed: %s: %s", type(err).__name__, err)


def read_status_bits(bus: Any) -> dict[str, int]:
    """Status register (65) of every servo: the same bits as the status packets' error byte."""
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


def connect_bus(bus: Any, port: str, option: str) -> None:
    """Open a LeRobot ``FeetechMotorsBus`` with matched replies and LeRobot's handshake checks, retried.

    LeRobot's own handshake pings each servo once (no retry), so one lost status packet fails the
    connect with a multi-line motor table; here every check is retried and ends in one line."""
    harden_bus(bus)
    bus.connect(handshake=False)
    expected = bus.model_number_table["sts3215"]
    firmware = {}
    for motor in MOTORS:
        model = bus.ping(motor, num_retry=2)
        if model is None:
            raise UserError(
                f"no answer on {port} from servo {motor} (id {MOTORS[motor]}) after the probe; check its cable "
                f"and power and {option}, then reconnect"
            )
        if model != expected:
            raise UserError(
                f"servo {motor} (id {MOTORS[motor]}) on {port} is model {model}, not an STS3215 ({expected}); "
                "set up the motors with lerobot-setup-motors"
            )
        firmware[motor] = tuple(
            bus.read(name, motor, normalize=False, num_retry=2)
            for name in ("Firmware_Major_Version", "Firmware_Minor_Version")
        )
    if len(set(firmware.values())) > 1:
        versions = ", ".join(f"{m} {a}.{b}" for m, (a, b) in firmware.items())
        raise UserError(
            f"servos on {port} run different firmware ({versions}); update them with Feetech's software "
            "(https://www.feetechrc.com/software), then reconnect"
        )


# A port that disappears under us: pyserial raises SerialException (an OSError) from reads, termios
# raises termios.error (not an OSError) from flushes and drains.
BUS_ERRORS = (ConnectionError, RuntimeError, OSError, termios.error)
_GONE_ERRNOS = {errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF, errno.ENOENT}


def port_is_gone(port: str, err: BaseException) -> bool:
    """Whether ``err`` says the serial port itself went away (unplugged adapter, stopped simulator)."""
    if isinstance(err, termios.error) or not os.path.exists(port):
        return True
    if isinstance(err, OSError) and err.errno in _GONE_ERRNOS:
        return True
    text = str(err).lower()
    return any(s in text for s in ("device disconnected", "input/output error", "bad file descriptor"))


def port_lost_error(port: str, err: BaseException, doing: str, torque_was_on: bool = True) -> UserError:
    """One line for a serial port that vanished while ``doing`` something."""
    if isinstance(err, termios.error) and len(err.args) == 2:
        detail = f"{err.args[1]} (errno {err.args[0]})"  # termios.error carries (errno, text)
    else:
        detail = " ".join(str(err).split()) or type(err).__name__
    torque = "torque-off was attempted but may not have reached the servos; " if torque_was_on else ""
    return UserError(
        f"the servo bus on {port} vanished while {doing} ({detail}); {torque}reconnect the arm's USB cable and "
        "power (or restart `hilserl servo-sim`), then restart with the port it has now"
    )
