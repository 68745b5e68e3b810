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
corrupt, delay, overload, overheat, voltage) to see how the robot side reacts.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

from actors.robots.servo_sim.arm import MOTORS, apply_calibration, sim_calibration, write_calibration_file
from actors.robots.servo_sim.bus import FAULTS, SimulatedBus
from configs.errors import UserError

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hilserl servo-sim", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--calibrate", metavar="DIR", help="write DIR/<id>.json matching the simulated servos"
    )
    parser.add_argument(
        "--id", default="follower", help="arm id: names the calibration file (default follower)"
    )
    parser.add_argument("--mujoco", action="store_true", help="drive the simulated SO-101 scene (MuJoCo)")
    parser.add_argument("--fault", action="append", default=[], metavar="ID:KIND", help="inject a fault")
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


def write_sim_calibration(directory: str | Path, arm_id: str) -> Path:
    """Write ``directory/<arm_id>.json`` for the simulated arm; an existing different file is an error."""
    path = Path(directory) / f"{arm_id}.json"
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
    return write_calibration_file(path, calibration)


def run(args: argparse.Namespace) -> int:
    faults = _parse_faults(args.fault)
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
        print("Ctrl-C to stop", flush=True)
        deadline = None if args.seconds is None else time.monotonic() + args.seconds
        try:
            while deadline is None or time.monotonic() < deadline:
                time.sleep(0.2)
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
