"""`hilserl servo-sim`: a simulated SO-101 servo bus (six STS3215s) on a pty, to try robot commands without an arm.

    hilserl servo-sim --calibrate /tmp/so101_calib             # prints the port, e.g. /dev/pts/5
    hilserl servo-sim --calibrate /tmp/so101_calib --mujoco    # the servos drive the MuJoCo scene
    hilserl servo-sim --id leader --calibrate /tmp/leader_calib  # a second bus for a leader arm

Pass the printed port as ``--robot.port`` (or ``--teleop.port``) with
``--robot.calibration_dir`` set to the ``--calibrate`` folder; LeRobot's own tools
(``lerobot-calibrate``, ``lerobot-teleoperate``) accept the port too. Runs until Ctrl-C (or
``--seconds``). ``--calibrate DIR`` writes ``DIR/<id>.json``, a LeRobot calibration matching the
simulated servos' registers, so the follower connects without the interactive calibration; an
existing, different file is never overwritten. ``--fault ID:KIND`` injects a fault (silent, dead,
corrupt, delay, overload, overheat, voltage) from the start, so the robot side meets it at connect.
``--fault-file PATH`` lets a fault start mid-episode: the running bus watches PATH (polled every
0.1 s) and, whenever it changes, applies the ``ID:KIND`` lines in it (one per line, ``#`` comments
allowed) on top of ``--fault``; empty the file to clear them again.

    hilserl servo-sim --calibrate /tmp/so101_calib --fault-file /tmp/faults &
    echo 4:overheat > /tmp/faults                              # servo 4 overheats now
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

from actors.robots.servo_sim.arm import MOTORS, apply_calibration, sim_calibration, write_calibration_file
from actors.robots.servo_sim.bus import FAULTS, SimulatedBus
from configs.errors import UserError

logger = logging.getLogger(__name__)

FAULT_FILE_POLL_S = 0.1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hilserl servo-sim", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--calibrate", metavar="DIR", help="write DIR/<id>.json matching the simulated servos"
    )
    parser.add_argument(
        "--id", default="follower", help="arm id: names the calibration file (default follower)"
    )
    parser.add_argument("--mujoco", action="store_true", help="drive the simulated SO-101 scene (MuJoCo)")
    parser.add_argument(
        "--fault", action="append", default=[], metavar="ID:KIND", help="inject a fault from the start"
    )
    parser.add_argument(
        "--fault-file",
        metavar="PATH",
        help="watch PATH while running: its ID:KIND lines become the faults (on top of --fault) when it changes",
    )
    parser.add_argument("--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)")
    return parser


def _parse_faults(specs: list[str]) -> list[tuple[int, str]]:
    faults = []
    for spec in specs:
        servo_id, _, kind = spec.partition(":")
        if not servo_id.isdigit() or int(servo_id) not in MOTORS.values() or kind not in FAULTS:
            raise UserError(
                f"bad --fault '{spec}'; use ID:KIND with ID in 1-6 and KIND one of {', '.join(FAULTS)}"
            )
        faults.append((int(servo_id), kind))
    return faults


def check_arm_id(arm_id: str) -> str:
    """An arm id names a file inside the calibration folder: no path separators, no '..'."""
    if not arm_id or "/" in arm_id or "\\" in arm_id or os.sep in arm_id or ".." in arm_id or "\0" in arm_id:
        raise UserError(
            f"bad --id '{arm_id}'; an id names DIR/<id>.json, so use a plain name without '/', '\\' or '..' "
            "(e.g. follower or leader)"
        )
    return arm_id


def write_sim_calibration(directory: str | Path, arm_id: str) -> Path:
    """Write ``directory/<arm_id>.json`` for the simulated arm; an existing different file is an error."""
    directory = Path(directory)
    check_arm_id(arm_id)
    if directory.exists() and not directory.is_dir():
        raise UserError(
            f"--calibrate {directory} is a file, not a folder; pass a folder (it gets {arm_id}.json), "
            f"e.g. --calibrate {directory.parent}"
        )
    path = directory / f"{arm_id}.json"
    calibration = sim_calibration()
    if path.exists():
        try:
            same = json.loads(path.read_text()) == calibration
        except (OSError, json.JSONDecodeError):
            same = False
        if not same:
            raise UserError(
                f"{path} already exists with a different calibration; pass another --calibrate folder or --id"
            )
        return path
    try:
        return write_calibration_file(path, calibration)
    except OSError as err:
        raise UserError(
            f"cannot write {path} ({err.strerror or err}); pass a writable --calibrate folder"
        ) from err


def parse_fault_text(text: str) -> list[tuple[int, str]]:
    """The ``ID:KIND`` lines of a fault file (blank lines and ``#`` comments skipped)."""
    lines = [line.split("#", 1)[0].strip() for line in text.splitlines()]
    return _parse_faults([line for line in lines if line])


class FaultFileWatcher:
    """Applies a fault file to a running bus whenever its content changes (a missing file: no faults)."""

    def __init__(self, bus: SimulatedBus, path: str | Path, base: list[tuple[int, str]]) -> None:
        self.bus, self.path, self.base = bus, Path(path), list(base)
        self._seen: str | None = None
        self._read_once = False

    def poll(self) -> bool:
        """Re-read the file; returns whether the bus's faults were replaced."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            text = ""
        except OSError as err:
            print(
                f"error: cannot read --fault-file {self.path} ({err.strerror or err})",
                file=sys.stderr,
                flush=True,
            )
            return False
        if self._read_once and text == self._seen:
            return False
        self._seen, self._read_once = text, True
        try:
            extra = parse_fault_text(text)
        except UserError as err:
            print(f"error: {self.path}: {err}; faults unchanged", file=sys.stderr, flush=True)
            return False
        with self.bus.lock:
            self.bus.clear_faults()
            for servo_id, kind in self.base + extra:
                self.bus.inject_fault(servo_id, kind)
        print(f"faults now: {', '.join(f'{i}:{k}' for i, k in self.base + extra) or 'none'}", flush=True)
        return True


def run(args: argparse.Namespace) -> int:
    faults = _parse_faults(args.fault)
    check_arm_id(args.id)
    plant = None
    if args.mujoco:
        from actors.robots.servo_sim.mujoco_plant import MujocoPlant
        from actors.robots.sim.env import SO101SimEnv

        scene = SO101SimEnv(render=False)
        scene.reset()
        plant = MujocoPlant(scene)
    bus = SimulatedBus(plant=plant)
    calibration_path = None
    if args.calibrate:
        calibration_path = write_sim_calibration(args.calibrate, args.id)
        apply_calibration(bus.servos, sim_calibration())
    for servo_id, kind in faults:
        bus.inject_fault(servo_id, kind)
    watcher = FaultFileWatcher(bus, args.fault_file, faults) if args.fault_file else None
    if watcher is not None:
        watcher.poll()
    with bus:
        print(f"simulated SO-101 servo bus (ids 1-6, STS3215) on {bus.port}", flush=True)
        if calibration_path:
            print(f"calibration: {calibration_path}", flush=True)
            role = "robot" if args.id != "leader" else "teleop"
            print(
                f"try: --{role}.port={bus.port} --{role}.calibration_dir={calibration_path.parent} "
                f"--{role}.id={args.id}",
                flush=True,
            )
        if watcher is not None:
            print(f"fault file: {watcher.path} (write ID:KIND lines to inject faults now)", flush=True)
        print("Ctrl-C to stop", flush=True)
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(FAULT_FILE_POLL_S if watcher is not None else 0.2)
                if watcher is not None:
                    watcher.poll()
        except KeyboardInterrupt:
            pass
        print(f"served {bus.requests} requests; stopping", flush=True)
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        return run(args)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
