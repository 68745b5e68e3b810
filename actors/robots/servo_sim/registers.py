"""The STS3215 control table as a register file, one per servo, plus the servo's motion state.

Addresses 0-39 are EEPROM, 40 and up SRAM (Feetech STS memory table; the names are LeRobot's).
Sign-magnitude registers are stored raw, exactly as on the wire, and decoded where the servo itself
uses them: ``Present_Position = actual - Homing_Offset`` and goals are clipped to the position limits
in that offset frame.
"""

from __future__ import annotations

from dataclasses import dataclass

from actors.robots.servo_sim.protocol import ErrorBit, decode_sign_magnitude, encode_sign_magnitude

MODEL_NUMBER_STS3215 = 777
RESOLUTION = 4096
TORQUE_CALIBRATE = 128  # writing this to Torque_Enable re-zeros the current position to 2048


@dataclass(frozen=True)
class Register:
    addr: int
    size: int
    sign_bit: int | None = None
    read_only: bool = False


# name -> register. EEPROM first, then SRAM (from address 40).
CONTROL_TABLE: dict[str, Register] = {
    "Firmware_Major_Version": Register(0, 1, read_only=True),
    "Firmware_Minor_Version": Register(1, 1, read_only=True),
    "Model_Number": Register(3, 2, read_only=True),
    "ID": Register(5, 1),
    "Baud_Rate": Register(6, 1),
    "Return_Delay_Time": Register(7, 1),
    "Response_Status_Level": Register(8, 1),
    "Min_Position_Limit": Register(9, 2),
    "Max_Position_Limit": Register(11, 2),
    "Max_Temperature_Limit": Register(13, 1),
    "Max_Voltage_Limit": Register(14, 1),
    "Min_Voltage_Limit": Register(15, 1),
    "Max_Torque_Limit": Register(16, 2),
    "Phase": Register(18, 1),
    "Unloading_Condition": Register(19, 1),
    "LED_Alarm_Condition": Register(20, 1),
    "P_Coefficient": Register(21, 1),
    "D_Coefficient": Register(22, 1),
    "I_Coefficient": Register(23, 1),
    "Minimum_Startup_Force": Register(24, 2),
    "CW_Dead_Zone": Register(26, 1),
    "CCW_Dead_Zone": Register(27, 1),
    "Protection_Current": Register(28, 2),
    "Angular_Resolution": Register(30, 1),
    "Homing_Offset": Register(31, 2, sign_bit=11),
    "Operating_Mode": Register(33, 1),
    "Protective_Torque": Register(34, 1),
    "Protection_Time": Register(35, 1),
    "Overload_Torque": Register(36, 1),
    "Velocity_P": Register(37, 1),
    "Over_Current_Protection_Time": Register(38, 1),
    "Velocity_I": Register(39, 1),
    "Torque_Enable": Register(40, 1),
    "Acceleration": Register(41, 1),
    "Goal_Position": Register(42, 2, sign_bit=15),
    "Goal_Time": Register(44, 2),
    "Goal_Velocity": Register(46, 2, sign_bit=15),
    "Torque_Limit": Register(48, 2),
    "Lock": Register(55, 1),
    "Present_Position": Register(56, 2, sign_bit=15, read_only=True),
    "Present_Velocity": Register(58, 2, sign_bit=15, read_only=True),
    "Present_Load": Register(60, 2, sign_bit=10, read_only=True),
    "Present_Voltage": Register(62, 1, read_only=True),
    "Present_Temperature": Register(63, 1, read_only=True),
    "Status": Register(65, 1, read_only=True),
    "Moving": Register(66, 1, read_only=True),
    "Present_Current": Register(69, 2, read_only=True),
    "Goal_Position_2": Register(71, 2, read_only=True),
    "Moving_Velocity_Threshold": Register(80, 1),
    "DTs": Register(81, 1),
    "Velocity_Unit_factor": Register(82, 1),
    "Hts": Register(83, 1),
    "Maximum_Velocity_Limit": Register(84, 1),
    "Maximum_Acceleration": Register(85, 1),
    "Acceleration_Multiplier": Register(86, 1),
}
EEPROM_END = 40
_READ_ONLY = {a for r in CONTROL_TABLE.values() if r.read_only for a in range(r.addr, r.addr + r.size)}

# Factory values of a fresh STS3215 (firmware 3.10).
FACTORY_DEFAULTS: dict[str, int] = {
    "Firmware_Major_Version": 3,
    "Firmware_Minor_Version": 10,
    "Model_Number": MODEL_NUMBER_STS3215,
    "Baud_Rate": 0,
    "Return_Delay_Time": 250,
    "Response_Status_Level": 1,
    "Min_Position_Limit": 0,
    "Max_Position_Limit": 4095,
    "Max_Temperature_Limit": 70,
    "Max_Voltage_Limit": 140,
    "Min_Voltage_Limit": 40,
    "Max_Torque_Limit": 1000,
    "Phase": 0x0C,
    "Unloading_Condition": 44,
    "LED_Alarm_Condition": 47,
    "P_Coefficient": 32,
    "D_Coefficient": 32,
    "Protection_Current": 500,
    "Angular_Resolution": 1,
    "Protective_Torque": 20,
    "Protection_Time": 200,
    "Overload_Torque": 80,
    "Torque_Limit": 1000,
    "Lock": 0,
    "Present_Voltage": 120,
    "Present_Temperature": 30,
    "Maximum_Velocity_Limit": 0,
    "Maximum_Acceleration": 0,
}

# Unloaded no-load speed of an STS3215 at 12 V is about 0.222 s / 60 deg, i.e. ~3000 steps/s.
DEFAULT_MAX_SPEED_STEPS = 3000.0


class ServoRegisters:
    """One servo: 256 bytes of registers plus the physical (pre-offset) shaft angle and fault state.

    ``actual`` is the encoder reading before the homing offset, in steps. A plant (the default
    speed-limited model, or MuJoCo) moves it; the register file turns it into Present_Position.
    """

    def __init__(self, servo_id: int, actual: float = 2048.0) -> None:
        self.memory = bytearray(256)
        for name, value in FACTORY_DEFAULTS.items():
            self.set(name, value)
        self.set("ID", servo_id)
        self.actual = float(actual)
        self.velocity = 0.0  # steps/s
        self.load = 0  # 0.1 % units, signed
        self.error_bits = ErrorBit(0)
        self.pending: tuple[int, bytes] | None = None  # REG_WRITE waiting for ACTION
        self.set("Goal_Position", self.present_position())
        self.refresh()

    # Raw access, as the bus sees it.
    def read(self, addr: int, size: int) -> bytes:
        self.refresh()
        return bytes(self.memory[addr : addr + size])

    def write(self, addr: int, data: bytes) -> None:
        """A WRITE from the bus; read-only bytes are ignored, like on the servo."""
        was_enabled = self.torque_enabled
        touched = range(addr, addr + len(data))
        for offset, byte in enumerate(data):
            if addr + offset not in _READ_ONLY and addr + offset < len(self.memory):
                self.memory[addr + offset] = byte
        goal = CONTROL_TABLE["Goal_Position"].addr
        goal_written = goal in touched or goal + 1 in touched
        if CONTROL_TABLE["Torque_Enable"].addr in touched:
            self._on_torque_write(was_enabled, goal_written)
        if goal_written:
            self.set("Goal_Position", self._clip_to_limits(self.get("Goal_Position")))

    # Named access, with sign-magnitude decoding.
    def get(self, name: str) -> int:
        reg = CONTROL_TABLE[name]
        raw = int.from_bytes(self.memory[reg.addr : reg.addr + reg.size], "little")
        return decode_sign_magnitude(raw, reg.sign_bit) if reg.sign_bit is not None else raw

    def set(self, name: str, value: int) -> None:
        reg = CONTROL_TABLE[name]
        raw = encode_sign_magnitude(int(value), reg.sign_bit) if reg.sign_bit is not None else int(value)
        self.memory[reg.addr : reg.addr + reg.size] = raw.to_bytes(reg.size, "little")

    @property
    def servo_id(self) -> int:
        return self.get("ID")

    @property
    def torque_enabled(self) -> bool:
        return self.get("Torque_Enable") == 1

    def present_position(self) -> int:
        return int(round(self.actual - self.get("Homing_Offset"))) % RESOLUTION

    def goal_actual(self) -> float:
        """The goal in the physical (pre-offset) frame, where the plant works."""
        return float(self.get("Goal_Position") + self.get("Homing_Offset"))

    def max_speed(self) -> float:
        """Steps/s: Goal_Velocity when set, else the motor's no-load speed."""
        speed = abs(self.get("Goal_Velocity"))
        return float(speed) if speed > 0 else DEFAULT_MAX_SPEED_STEPS

    def refresh(self) -> None:
        """Derive the read-only registers from the motion and fault state."""
        self.set("Present_Position", self.present_position())
        self.set("Present_Velocity", int(round(max(-32767, min(32767, self.velocity)))))
        self.set("Present_Load", int(max(-1000, min(1000, self.load))))
        self.set("Status", int(self.error_bits))
        self.set("Moving", int(abs(self.velocity) > 1.0))
        self.set("Goal_Position_2", self.get("Goal_Position") & 0xFFFF)
        if self.error_bits & ErrorBit.OVERHEAT:
            self.set("Present_Temperature", max(self.get("Max_Temperature_Limit") + 5, 75))

    def _on_torque_write(self, was_enabled: bool, goal_written: bool) -> None:
        if self.get("Torque_Enable") == TORQUE_CALIBRATE:
            # Re-zero: choose the offset so the current shaft angle reads 2048 (Feetech's "mid calibration").
            self.set("Homing_Offset", int(round(self.actual)) - 2048)
            self.set("Torque_Enable", 0)
        if self.torque_enabled and not was_enabled and not goal_written:
            # Taking torque holds the current position (no jump to a stale goal).
            self.set("Goal_Position", self._clip_to_limits(self.present_position()))

    def _clip_to_limits(self, goal: int) -> int:
        low, high = self.get("Min_Position_Limit"), self.get("Max_Position_Limit")
        if low == 0 and high == 0:  # multi-turn mode: no limits
            return goal
        return max(low, min(high, goal))
