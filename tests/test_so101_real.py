"""The real-robot path without an arm: LeRobot's FeetechMotorsBus / SO101Follower / SO101Leader and our
SO101RealEnv, through the unmodified Feetech SDK, a pty and the simulated STS3215 bus.

Slow: importing LeRobot's robot classes pulls in torch, datasets and transformers.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from actors.robots.servo_sim.arm import MOTORS, sim_calibration, write_calibration_file
from actors.robots.servo_sim.process import BusProcess, remote_scene_cameras
from configs.env import CameraConfig, EnvConfig, ResetConfig
from configs.errors import UserError

pytestmark = pytest.mark.slow
NAMES = list(MOTORS)


def wait_until(predicate, timeout_s: float = 30.0) -> bool:  # returns as soon as it holds
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def calibrated_bus(tmp_path: Path, arm_id: str = "follower", **kwargs) -> BusProcess:
    """A bus in its own process whose registers match the calibration file the test writes."""
    write_calibration_file(tmp_path / f"{arm_id}.json", sim_calibration())
    return BusProcess(calibration=sim_calibration(), **kwargs)


def env_config(bus: BusProcess | str, tmp_path: Path, **reset) -> EnvConfig:
    cfg = EnvConfig(type="so101", image_size=32)
    cfg.robot.type = "so101"
    cfg.robot.port = bus if isinstance(bus, str) else bus.port
    cfg.robot.calibration_dir = str(tmp_path)
    cfg.robot.camera_source = "test_pattern"
    cfg.processor.reset = ResetConfig(**reset) if reset else None
    return cfg


RETRY_FOR_S = 60.0
"""How long a whole LeRobot bus operation is retried. A count of attempts is scheduling luck: at a
load average of 40, five 50 ms reads in a row all missed their replies (the bus process never ran)."""


def connect_retrying(connect, port_handler, attempts: int = 5) -> None:
    """LeRobot's own connect, as LeRobot's tools use it. Its handshake pings each servo once, with
    no retry and a ~50 ms timeout, so on a loaded machine a single reply that waits on the scheduler
    fails it ("motor check failed"; it was the first packet only by being the first to time out).
    Our classes use ``connect_bus`` (retried checks, matched replies); here the whole connect is retried."""
    deadline = time.monotonic() + RETRY_FOR_S
    attempt = 0
    while True:
        attempt += 1
        try:
            connect()
            return
        except (RuntimeError, ConnectionError):
            if attempt >= attempts and time.monotonic() > deadline:
                raise
            port_handler.closePort()  # the failed handshake left the port open


def retrying(call, attempts: int = 5):
    """One of LeRobot's bus operations, whole, until it gets through: LeRobot's configuration writes
    and reads have no retry of their own, and on a loaded machine a simulated servo's reply can miss
    the ~50 ms timeout (as LeRobot's tools on a loaded machine, "run it again"). The operations retried
    here are idempotent; a reply never answers the wrong request (the bus drops superseded replies)."""
    deadline = time.monotonic() + RETRY_FOR_S
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except (RuntimeError, ConnectionError):
            if attempt >= attempts and time.monotonic() > deadline:
                raise


def answers(predicate):
    """A wait_until predicate for which a read that timed out means "not yet"."""

    def check() -> bool:
        try:
            return predicate()
        except ConnectionError:
            return False

    return check


@pytest.fixture
def bus(tmp_path):
    bus = calibrated_bus(tmp_path)
    yield bus
    bus.stop()


@pytest.fixture(scope="module", autouse=True)
def lerobot_loaded():
    """Import LeRobot's robot classes once, then freeze the heap: a full collection of it pauses the
    SDK's polling loop for longer than its packet timeout (SO101RealEnv does the same after connecting)."""
    import gc

    import lerobot.robots.so_follower  # noqa: F401
    import lerobot.teleoperators.so_leader  # noqa: F401

    gc.freeze()


def test_lerobot_feetech_bus_connects_calibrates_reads_writes(tmp_path):
    from lerobot.motors import Motor, MotorCalibration, MotorNormMode
    from lerobot.motors.feetech import FeetechMotorsBus

    with BusProcess() as sim:
        motors = {name: Motor(i, "sts3215", MotorNormMode.DEGREES) for name, i in MOTORS.items()}
        bus = FeetechMotorsBus(sim.port, motors)
        connect_retrying(
            bus.connect, bus.port_handler
        )  # handshake: ping every id, compare models and firmware
        calibration = {
            name: MotorCalibration(id=i, drive_mode=0, homing_offset=-100 * i, range_min=500, range_max=3500)
            for name, i in MOTORS.items()
        }

        def configure_and_calibrate() -> None:
            with bus.torque_disabled():
                bus.configure_motors()
                bus.write_calibration(calibration)

        retrying(configure_and_calibrate)
        assert retrying(lambda: bus.is_calibrated) and retrying(bus.read_calibration) == calibration
        assert sim.register(3, "Homing_Offset") == -300  # sign-magnitude on the wire, decoded by the servo
        assert retrying(lambda: bus.sync_read("Present_Position", normalize=False)) == {
            n: 2048 + 100 * i for n, i in MOTORS.items()
        }
        bus.sync_write("Goal_Position", dict.fromkeys(MOTORS, 20.0))  # degrees
        assert wait_until(
            answers(lambda: all(abs(v - 20.0) < 0.5 for v in bus.sync_read("Present_Position").values()))
        )
        assert sim.torques() == [1] * 6
        retrying(bus.disconnect)
        assert sim.torques() == [0] * 6


def test_follower_connects_moves_and_releases_torque(bus, tmp_path):
    from lerobot.robots.so_follower import SO101Follower, SO101FollowerConfig

    robot = SO101Follower(SO101FollowerConfig(port=bus.port, id="follower", calibration_dir=tmp_path))
    connect_retrying(lambda: robot.connect(calibrate=False), robot.bus.port_handler)
    assert retrying(lambda: robot.is_calibrated) and bus.torques() == [1] * 6
    goal = {"shoulder_pan.pos": 30.0, "elbow_flex.pos": -25.0, "gripper.pos": 60.0}
    robot.send_action(goal)
    assert wait_until(
        answers(lambda: all(abs(robot.get_observation()[k] - v) < 0.5 for k, v in goal.items()))
    )
    retrying(robot.disconnect)
    assert bus.torques() == [0] * 6


def test_real_env_contract_reset_and_end_effector_steps(bus, tmp_path):
    from actors.robots.so101.env import SO101RealEnv

    home = [-2.9, -21.9, 12.7, 94.0, 90.0, 30.0]  # hand above the table, fingers down
    cfg = env_config(bus, tmp_path, fixed_reset_joint_positions=home, reset_time_s=0.3)
    cfg.robot.cameras = {"front": CameraConfig(rotation=180), "wrist": CameraConfig(rotation=0)}
    with SO101RealEnv(cfg) as env:
        obs, _ = env.reset()
        assert env.observation_space.contains(obs)
        for _ in range(30):  # each reset moves at most max_relative_target (10 degrees) per waypoint
            if np.allclose(obs["observation.state"][:6], home, atol=0.5):
                break
            obs, _ = env.reset()
        np.testing.assert_allclose(obs["observation.state"][:6], home, atol=0.5)
        front, wrist = obs["observation.images.front"], obs["observation.images.wrist"]
        assert front.shape == (32, 32, 3) and front.dtype == np.uint8
        np.testing.assert_array_equal(front, np.rot90(wrist, 2))  # same test frame, front rotated 180
        z0 = obs["observation.state"][14]
        # After a reset the next step starts from the measured hand; after a step, from the command.
        np.testing.assert_allclose(env.commanded_ee_position(), obs["observation.state"][12:15], atol=1e-6)
        for _ in range(5):
            before = obs["observation.state"][:6]
            obs, reward, terminated, truncated, info = env.step(np.array([0, 0, 1, 2], np.float32))
            assert (reward, terminated, truncated) == (0.0, False, False)
            commanded = env.kinematics.ee_position(info["joint_targets"])
            np.testing.assert_allclose(env.commanded_ee_position(), commanded, atol=1e-6)
            # max_relative_target: no joint target further than 10 degrees from the observed position
            assert np.all(np.abs(info["joint_targets"] - before) <= 10.0 + 1e-3)
            time.sleep(0.05)
        obs, *_ = env.step(np.array([0, 0, 0, 1], np.float32))
        assert obs["observation.state"][14] > z0 + 0.02  # end effector went up
        assert obs["observation.state"][5] > home[5] + 20  # gripper opened
    assert bus.torques() == [0] * 6  # leaving the context turned torque off


def test_leader_reads_the_arm_and_env_reset_releases_it(bus, tmp_path):
    from actors.robots.so101.env import SO101RealEnv
    from actors.robots.so101.leader_arm import SO101LeaderArm

    leader_bus = calibrated_bus(tmp_path, arm_id="leader")
    try:
        leader = SO101LeaderArm(leader_bus.port, "leader", tmp_path)
        assert leader_bus.torques() == [0] * 6
        leader_bus.move_by_hand(1, 45.0)  # a human turns the base by 45 degrees
        assert leader.read_joint_positions()[0] == pytest.approx(45.0, abs=0.2)
        leader.enable_torque()
        assert leader_bus.torques() == [1] * 6
        cfg = env_config(bus, tmp_path, fixed_reset_joint_positions=[0, 0, 0, 0, 0, 10], reset_time_s=0.1)
        with SO101RealEnv(cfg, leader=leader) as env:
            env.reset()
            assert leader_bus.torques() == [0] * 6  # seed 003, bug 3
        leader.close()
    finally:
        leader_bus.stop()


# ----- bad input: one line naming the problem and the fix, the arm left safe -----
def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


def test_missing_port_and_missing_calibration(tmp_path):
    from actors.robots.so101.env import SO101RealEnv

    with BusProcess() as sim:
        cfg = env_config(sim, tmp_path)
        cfg.robot.port = "/dev/ttyACM99"
        with pytest.raises(UserError) as err:
            SO101RealEnv(cfg)
        assert "/dev/ttyACM99 does not exist" in one_line(err) and "servo-sim" in one_line(err)
        cfg.robot.port = sim.port
        with pytest.raises(UserError) as err:
            SO101RealEnv(cfg)
        assert f"{tmp_path / 'follower.json'} is missing" in one_line(
            err
        ) and "lerobot-calibrate" in one_line(err)
        assert sim.torques() == [0] * 6


def test_mismatched_calibration_file(bus, tmp_path):
    from actors.robots.so101.env import SO101RealEnv

    calibration = sim_calibration()
    calibration["elbow_flex"]["range_max"] -= 50
    (tmp_path / "follower.json").write_text(json.dumps(calibration))
    with pytest.raises(UserError) as err:
        SO101RealEnv(env_config(bus, tmp_path))
    assert "does not match the arm (elbow_flex range_max" in one_line(err) and "recalibrate" in one_line(err)
    calibration["elbow_flex"]["id"] = 7
    (tmp_path / "follower.json").write_text(json.dumps(calibration))
    with pytest.raises(UserError) as err:
        SO101RealEnv(env_config(bus, tmp_path))
    assert "'elbow_flex' has id 7, expected 3" in one_line(err)
    assert bus.torques() == [0] * 6  # torque never came on


@pytest.mark.parametrize(
    "fault, expected",
    [("silent", "no answer"), ("corrupt", "garbled replies"), ("overload", "reports overload")],
)
def test_servo_fault_at_connect(bus, tmp_path, fault, expected):
    from actors.robots.so101.env import SO101RealEnv

    bus.inject_fault(3, fault)
    with pytest.raises(UserError) as err:
        SO101RealEnv(env_config(bus, tmp_path))
    assert f"{expected}" in one_line(err) and "elbow_flex (id 3)" in one_line(err)
    assert bus.torques() == [0] * 6


@pytest.mark.parametrize("fault, expected", [("overheat", "reports overheat"), ("dead", "stopped")])
def test_servo_fault_while_running_turns_torque_off(bus, tmp_path, fault, expected):
    from actors.robots.so101.env import SO101RealEnv

    env = SO101RealEnv(env_config(bus, tmp_path))
    env.reset()
    assert bus.torques() == [1] * 6
    bus.inject_fault(4, fault)
    with pytest.raises(UserError) as err:
        env.step(np.array([0, 0, 1, 1], np.float32))
    assert expected in one_line(err) and "torque is off" in one_line(err)
    torque = bus.torques()
    assert torque[:3] + torque[4:] == [0] * 5  # a dead servo hears nothing; every other one is released
    if fault == "overheat":
        assert torque[3] == 0
    with pytest.raises(UserError, match="was stopped"):
        env.step(np.array([0, 0, 0, 1], np.float32))


def test_a_fault_mid_episode_from_the_servo_sim_command_turns_torque_off(tmp_path):
    """`hilserl servo-sim --fault-file` in its own process: a fault starts while SO101RealEnv (LeRobot's
    SO101Follower underneath) is running, and the next step turns torque off on every servo."""
    import scservo_sdk as scs

    from actors.robots.so101.env import SO101RealEnv
    from actors.robots.so101.packets import StrictPacketHandler

    faults = tmp_path / "faults"
    command = [sys.executable, "-m", "actors.robots.servo_sim.cli", "--calibrate", str(tmp_path)]
    command += ["--fault-file", str(faults), "--seconds", "300"]
    sim = subprocess.Popen(
        command, cwd=Path(__file__).parents[1], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        line = ""
        while " on /dev/pts/" not in line:
            line = sim.stdout.readline()
            assert line, "servo-sim ended before printing its port"
        port = line.rsplit(" on ", 1)[1].strip()
        env = SO101RealEnv(env_config(port, tmp_path))
        env.reset()
        env.step(np.array([0, 0, 1, 1], np.float32))
        faults.write_text("4:overheat\n")
        while "faults now: 4:overheat" not in line:
            line = sim.stdout.readline()
            assert line, "servo-sim ended before applying the fault file"
        with pytest.raises(UserError) as err:
            env.step(np.array([0, 0, 1, 1], np.float32))
        assert "wrist_flex (id 4) reports overheat" in one_line(err) and "torque is off" in one_line(err)
        handler = scs.PortHandler(port)
        assert handler.openPort()
        packets = StrictPacketHandler()
        torque = [packets.read1ByteTxRx(handler, i, 40)[:2] for i in MOTORS.values()]
        handler.closePort()
        assert torque == [(0, scs.COMM_SUCCESS)] * 6
    finally:
        sim.kill()
        sim.wait(10)


def test_the_bus_vanishing_mid_episode_is_one_line(bus, tmp_path):
    from actors.robots.so101.env import SO101RealEnv

    env = SO101RealEnv(env_config(bus, tmp_path))
    env.reset()
    bus.unplug()  # the pty disappears under the running env
    with pytest.raises(UserError) as err:
        env.step(np.array([0, 0, 1, 1], np.float32))
    message = one_line(err)
    assert f"the servo bus on {bus.port} vanished" in message and "torque-off was attempted" in message
    assert "reconnect the arm's USB cable" in message and "hilserl servo-sim" in message
    with pytest.raises(UserError, match="was stopped"):
        env.step(np.array([0, 0, 0, 1], np.float32))


def test_missing_camera(bus, tmp_path):
    from actors.robots.so101.env import SO101RealEnv

    cfg = env_config(bus, tmp_path)
    cfg.robot.camera_source = "opencv"
    cfg.robot.cameras = {"front": CameraConfig(index_or_path="/dev/video_missing")}
    with pytest.raises(UserError) as err:
        SO101RealEnv(cfg)
    assert "no 'wrist' camera" in one_line(err) and "robot.cameras.wrist" in one_line(err)
    cfg.robot.cameras["wrist"] = CameraConfig(index_or_path="/dev/video_missing")
    with pytest.raises(UserError) as err:
        SO101RealEnv(cfg)
    assert "camera 'front' at /dev/video_missing does not exist" in one_line(err)
    assert bus.torques() == [0] * 6


# ----- end to end: SO101Follower -> scservo_sdk -> pty -> simulated bus -> MuJoCo -----
def test_end_to_end_through_the_mujoco_scene(tmp_path):
    from actors.robots.so101.env import SO101RealEnv

    with calibrated_bus(tmp_path, mujoco=True, image_size=32) as bus:
        start_joints, start_ee = bus.joints(), bus.ee_position()
        with SO101RealEnv(env_config(bus, tmp_path), cameras=remote_scene_cameras(bus)) as env:
            obs, _ = env.reset()
            # Torque was off for a moment while LeRobot configured the servos; the arm may have sagged.
            np.testing.assert_allclose(obs["observation.state"][:5], start_joints[:5], atol=5.0)
            np.testing.assert_allclose(obs["observation.state"][:5], bus.joints()[:5], atol=0.5)
            first_front = obs["observation.images.front"]
            for _ in range(6):
                obs, *_ = env.step(np.array([0, 0, 1, 1], np.float32))
                time.sleep(0.1)
            time.sleep(0.3)
            obs, *_ = env.step(np.array([0, 0, 0, 1], np.float32))  # hold still, then compare
            assert bus.ee_position()[2] > start_ee[2] + 0.03  # the scene's arm lifted its hand
            assert np.abs(bus.joints()[:4] - start_joints[:4]).max() > 3.0
            np.testing.assert_allclose(obs["observation.state"][12:15], bus.ee_position(), atol=0.01)
            assert not np.array_equal(obs["observation.images.front"], first_front)  # rendered, not canned
        assert bus.torques() == [0] * 6


def test_record_command_on_the_servo_simulator(tmp_path):
    """`hilserl record` with the real backend, on a simulated bus instead of an arm."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    from actors.loop.record import main as record_main

    calibration_dir, root = tmp_path / "calib", tmp_path / "dataset"
    with calibrated_bus(calibration_dir) as bus:
        argv = [
            "--robot.type=so101",
            f"--robot.port={bus.port}",
            f"--robot.calibration_dir={calibration_dir}",
            "--robot.camera_source=test_pattern",
            "--teleop.type=none",
            "--num_episodes=1",
            "--processor.reset.control_time_s=1",
            "--image_size=32",
            f"--dataset_root={root}",
            "--repo_id=local/servo_sim",
        ]
        assert record_main(argv) == 0
        assert bus.torques() == [0] * 6  # the recorder closed the env: torque off
    dataset = LeRobotDataset("local/servo_sim", root=root, video_backend="pyav")
    assert dataset.num_episodes == 1 and dataset.num_frames == 10
    frame = dataset[0]
    assert frame["observation.state"].shape == (18,)
    assert frame["observation.images.front"].shape == (3, 32, 32)


# ----- safety in the action path: workspace bounds on every command, the policy's and the leader's -----
def _excess(env, joint_targets) -> float:
    """Metres the commanded joints' own end effector lies outside the env's workspace bounds."""
    position = env.kinematics.ee_position(joint_targets)
    low, high = env.ee_bounds
    return float(np.max(np.concatenate([low - position, position - high, [0.0]])))


def test_workspace_bounds_hold_for_every_policy_and_leader_command(bus, tmp_path):
    from actors.intervention.leader import LeaderArmSource, default_forward_kinematics
    from actors.robots.sim.ik import ee_position
    from actors.robots.so101.env import WORKSPACE_TOLERANCE_M, SO101RealEnv
    from actors.robots.so101.leader_arm import SO101LeaderArm

    home = [-2.9, -21.9, 12.7, 94.0, 90.0, 30.0]
    cfg = env_config(bus, tmp_path, fixed_reset_joint_positions=home, reset_time_s=0.3)
    centre = ee_position(home)  # a 4 cm box around the hand at home: every face is in reach
    cfg.robot.end_effector_bounds = {"min": (centre - 0.04).tolist(), "max": (centre + 0.04).tolist()}
    leader_bus = calibrated_bus(tmp_path, arm_id="leader")
    try:
        with SO101RealEnv(cfg) as env:
            low, high = env.ee_bounds
            for _ in range(30):  # each reset moves at most max_relative_target (10 degrees) per waypoint
                obs, _ = env.reset()
                if np.allclose(obs["observation.state"][:6], home, atol=0.5):
                    break
            # The policy pushes against each of the six faces in turn, each far past it.
            for axis in range(3):
                for direction in (1.0, -1.0):
                    action = np.array([0, 0, 0, 1], np.float32)
                    action[axis] = direction
                    face = high[axis] if direction > 0 else low[axis]
                    for _ in range(
                        100
                    ):  # until the hand is at the face (the simulated servos take their time)
                        obs, _, _, _, info = env.step(action)
                        assert _excess(env, info["joint_targets"]) <= WORKSPACE_TOLERANCE_M + 1e-6
                        hand = obs["observation.state"][12:15]
                        if abs(hand[axis] - face) < 0.01:
                            break
                        time.sleep(0.03)
                    assert abs(hand[axis] - face) < 0.01, (
                        axis,
                        direction,
                        hand,
                        face,
                    )  # it did reach the face
                    for _ in range(5):  # and goes on pushing against it
                        obs, _, _, _, info = env.step(action)
                        assert _excess(env, info["joint_targets"]) <= WORKSPACE_TOLERANCE_M + 1e-6
                        time.sleep(0.03)
            # The human's leader sweeps the hand 20-odd cm out of the box; every command stays inside.
            leader = SO101LeaderArm(leader_bus.port, "leader", tmp_path)
            source = LeaderArmSource(
                leader, fk=default_forward_kinematics(), release_steps=50
            )  # held until the end
            source.poll(obs, {})
            leader_bus.move_by_hand(2, 40.0)  # shoulder_lift: the leader reaches far forward and down
            leader_bus.move_by_hand(1, 35.0)  # and swings the base aside
            reached, driven = False, 0
            for _ in range(40):
                state = source.poll(obs, {})
                if driven and not state.is_intervening:
                    break  # the leader's motion is spent: the hand rests, the step is the policy's
                assert state.is_intervening and state.action is not None
                driven += 1
                obs, _, _, _, info = env.step(state.action)
                assert _excess(env, info["joint_targets"]) <= WORKSPACE_TOLERANCE_M + 1e-6
                hand = obs["observation.state"][12:15]
                reached |= bool(np.any(np.minimum(np.abs(hand - low), np.abs(hand - high)) < 0.01))
                time.sleep(0.03)
            assert driven >= 5 and reached  # the leader's motion did press the hand against a face
            leader.close()
        assert bus.torques() == [0] * 6 and leader_bus.torques() == [0] * 6
    finally:
        leader_bus.stop()
