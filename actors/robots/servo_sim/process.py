"""A simulated servo bus served from its own process, for clients that need hardware-like timing.

    with BusProcess(calibration=sim_calibration()) as bus:     # child process owns the servos
        robot = SO101Follower(SO101FollowerConfig(port=bus.port, ...))
        bus.inject_fault(3, "overload"); bus.torques()         # control and inspection over a pipe

In-process, the serving thread shares the client's GIL: the Feetech SDK polls the port in a tight
loop, and on a loaded machine the thread holding the GIL can be descheduled for longer than the
SDK's packet timeout, so replies come "late" in a way real servos (separate hardware) never do. A
child process has its own interpreter, like ``hilserl servo-sim``. With ``mujoco=True`` the child
also owns the simulated scene (``SO101SimEnv``) the servos drive, and renders its cameras on request
(``RemoteSceneCamera``).
"""

from __future__ import annotations

import multiprocessing as mp
import traceback
from typing import Any

import numpy as np


def _child_main(
    conn, calibration, mujoco: bool, image_size: int, seed: int, faults, task, camera_sizes
) -> None:
    import os

    os.environ.setdefault("MUJOCO_GL", "egl")
    from actors.robots.servo_sim.arm import MOTORS, STEPS_PER_RAD, apply_calibration
    from actors.robots.servo_sim.bus import SimulatedBus

    scene, plant, renderers = None, None, {}
    if mujoco:
        from actors.robots.servo_sim.mujoco_plant import MujocoPlant
        from actors.robots.sim.env import SO101SimEnv

        if camera_sizes:
            # Cameras at their own (width, height), rendered here; the scene's square renderer is not needed.
            largest = max(max(size) for size in camera_sizes.values())
            scene = SO101SimEnv(task=task, image_size=max(image_size, largest), render=False)
        else:
            scene = SO101SimEnv(task=task, image_size=image_size)
        scene.reset(seed=seed)
        plant = MujocoPlant(scene)
    bus = SimulatedBus(plant=plant)
    if calibration is not None:
        apply_calibration(bus.servos, calibration)
    for servo_id, kind in faults:
        bus.inject_fault(servo_id, kind)

    def registers(name: str) -> list[int]:
        with bus.lock:
            return [bus.servo(i).get(name) for i in MOTORS.values()]

    def move_by_hand(servo_id: int, degrees: float) -> None:
        with bus.lock:
            bus.servo(servo_id).actual += np.deg2rad(degrees) * STEPS_PER_RAD

    def hold_by_hand(steps: dict[int, float]) -> None:
        """Put shafts at encoder positions, as a hand holding the arm there (torque off)."""
        with bus.lock:
            for servo_id, value in steps.items():
                bus.servo(servo_id).actual = float(value)

    def render_cameras() -> dict[str, np.ndarray]:
        import mujoco

        if not renderers:
            for name, (width, height) in camera_sizes.items():
                renderers[name] = mujoco.Renderer(scene.model, int(height), int(width))
        frames = {}
        with scene._lock:
            for name, renderer in renderers.items():
                renderer.update_scene(scene.data, camera=name)
                frames[name] = renderer.render()
        return frames

    commands = {
        "inject_fault": bus.inject_fault,
        "clear_faults": bus.clear_faults,
        "registers": registers,
        "move_by_hand": move_by_hand,
        "hold_by_hand": hold_by_hand,
        "register": lambda servo_id, name: bus.servo(servo_id).get(name),
    }
    if scene is not None:
        commands.update(
            joints=scene.joint_positions,
            ee_position=scene.ee_position,
            render=render_cameras
            if camera_sizes
            else lambda: {
                k.rsplit(".", 1)[-1]: v
                for k, v in scene.observation().items()
                if k.startswith("observation.images")
            },
            scene_info=scene.privileged_info,
            place_cube=scene.place_cube,
        )
    with bus:
        conn.send((True, bus.port))
        while True:
            name, args = conn.recv()
            if name == "stop":
                break
            try:
                conn.send((True, commands[name](*args)))
            except Exception:
                conn.send((False, traceback.format_exc(limit=3)))
    for renderer in renderers.values():
        renderer.close()
    if scene is not None:
        scene.close()
    conn.send((True, None))


class BusProcess:
    """A ``SimulatedBus`` (optionally driving the MuJoCo scene) in a child process."""

    def __init__(
        self,
        calibration: dict | None = None,
        faults: list[tuple[int, str]] = (),
        mujoco: bool = False,
        image_size: int = 32,
        seed: int = 0,
        task: str = "pick_lift",
        camera_sizes: dict[str, tuple[int, int]] | None = None,
    ) -> None:
        """``camera_sizes``: name -> (width, height) of each scene camera ``render`` returns (mujoco=True;
        'front' and 'wrist' are the scene's cameras); default both at ``image_size`` square."""
        context = mp.get_context("spawn")  # no fork of a process that holds torch, threads or GL
        self._conn, child = context.Pipe()
        args = (child, calibration, mujoco, image_size, seed, list(faults), task, dict(camera_sizes or {}))
        self._process = context.Process(target=_child_main, args=args, daemon=True)
        self._process.start()
        ok, self.port = self._conn.recv()

    def _call(self, name: str, *args: Any) -> Any:
        self._conn.send((name, args))
        ok, value = self._conn.recv()
        if not ok:
            raise RuntimeError(f"servo bus process: {value}")
        return value

    def inject_fault(self, servo_id: int, fault: str) -> None:
        self._call("inject_fault", servo_id, fault)

    def clear_faults(self, servo_id: int | None = None) -> None:
        self._call("clear_faults", servo_id)

    def registers(self, name: str) -> list[int]:
        """One register of servos 1-6, decoded."""
        return self._call("registers", name)

    def register(self, servo_id: int, name: str) -> int:
        return self._call("register", servo_id, name)

    def torques(self) -> list[int]:
        return self.registers("Torque_Enable")

    def move_by_hand(self, servo_id: int, degrees: float) -> None:
        """Turn a shaft as a human would (meaningful with torque off)."""
        self._call("move_by_hand", servo_id, degrees)

    def hold_by_hand(self, steps: dict[int, float]) -> None:
        """Hold shafts at encoder positions (servo id -> steps), as a hand moving a limp arm would."""
        self._call("hold_by_hand", steps)

    def scene_info(self) -> dict:
        """What the scene's ``SO101SimEnv.privileged_info`` says now: cube, hand, grasp, success (mujoco=True)."""
        return self._call("scene_info")

    def place_cube(self) -> None:
        """Put the cube back at a new random place, the arm untouched (mujoco=True)."""
        self._call("place_cube")

    def joints(self) -> np.ndarray:
        """The scene's joint positions in degrees (mujoco=True)."""
        return self._call("joints")

    def ee_position(self) -> np.ndarray:
        return self._call("ee_position")

    def render(self) -> dict[str, np.ndarray]:
        """The scene's camera images by name (mujoco=True), at ``camera_sizes``."""
        return self._call("render")

    def unplug(self) -> None:
        """Kill the bus process at once, like pulling the arm's USB cable: the pty goes away."""
        self._process.kill()
        self._process.join(timeout=10)

    def stop(self) -> None:
        if self._process.is_alive():
            try:
                self._call("stop")
            except (EOFError, BrokenPipeError, RuntimeError):
                pass
            self._process.join(timeout=10)
        if self._process.is_alive():
            self._process.terminate()

    def __enter__(self) -> BusProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class RemoteSceneCamera:
    """A camera source for ``SO101RealEnv``: the child's scene camera, rendered on request."""

    def __init__(self, bus: BusProcess, name: str, shared: dict) -> None:
        self.bus, self.name, self._shared = bus, name, shared
        self.lost = False  # unplugged (a fault to rehearse): reads give no frame

    def connect(self) -> None:
        pass

    def read(self) -> np.ndarray | None:
        if self.lost:
            return None
        cached = self._shared.pop(self.name, None)
        if cached is None:
            self._shared.update(self.bus.render())
            cached = self._shared.pop(self.name)
        return cached

    def disconnect(self) -> None:
        pass


def remote_scene_cameras(bus: BusProcess, names=("front", "wrist")) -> dict[str, RemoteSceneCamera]:
    shared: dict = {}
    return {name: RemoteSceneCamera(bus, name, shared) for name in names}
