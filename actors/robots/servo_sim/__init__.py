"""A simulated bus of Feetech STS3215 servos on a Linux pty, so the real-robot code path runs without an arm.

    scservo_sdk / LeRobot FeetechMotorsBus ──bytes──▶ /dev/pts/N ──▶ SimulatedBus thread
                                                                      │  per-servo register file
                                                                      ▼
                                                           plant: speed-limited motion, or MuJoCo

`protocol` frames packets, `registers` is the STS3215 control table, `bus` serves the pty, `arm` holds
the SO-101 motor layout and a matching LeRobot calibration, `mujoco_plant` couples the servos to the
simulated scene, and `process` runs a bus in a child process (its own GIL, so replies keep
hardware-like timing however busy the client is). Start one from the shell with `hilserl servo-sim`.
"""

from actors.robots.servo_sim.bus import SimulatedBus
from actors.robots.servo_sim.protocol import ErrorBit, Instruction
from actors.robots.servo_sim.registers import ServoRegisters

__all__ = ["ErrorBit", "Instruction", "ServoRegisters", "SimulatedBus"]
