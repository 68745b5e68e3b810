"""`hilserl bench env [--json]`: env steps/s with two 128x128 cameras, our SO-101 scene vs gym-hil's Panda.

Both envs run in this one process on the same headless GL backend, each stepped with seeded
random actions after a warm-up: ours (``SO101SimEnv``, primitive geoms, fast-render settings)
and gym-hil 0.1.14's ``PandaPickCubeBase-v0`` exactly as shipped (``image_obs=True``, its own
shadows and MSAA), which is LeRobot's simulated HIL-SERL env. Steps/s is the median over
several timed windows; gym-hil is slow (about 1.5 steps/s on 2 CPU cores), so it gets fewer
steps per window. Episode ends inside a window reset the env and count toward the time.

    hilserl bench env --json
    hilserl bench env --ours-steps 200 --gym-hil-steps 10 --windows 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import actors.robots.sim  # noqa: F401  (chooses the headless GL backend before anything imports mujoco)
from benchmarks import machine_info
from configs.errors import UserError

GYM_HIL_ID = "gym_hil/PandaPickCubeBase-v0"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hilserl bench env", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.add_argument("--windows", type=int, default=5, help="timed windows per env (median taken)")
    parser.add_argument("--ours-steps", type=int, default=100, help="steps per timed window, our env")
    parser.add_argument("--gym-hil-steps", type=int, default=4, help="steps per timed window, gym-hil")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps before timing (ours)")
    parser.add_argument(
        "--image-size", type=int, default=128, help="camera side in pixels (ours and gym-hil)"
    )
    parser.add_argument("--skip-gym-hil", action="store_true", help="time our env only")
    return parser


def _time_env(env, steps: int, windows: int, warmup: int, seed: int = 0) -> tuple[list[float], list[float]]:
    """Steps per wall-clock second and per CPU second of ``windows`` windows of ``steps`` random steps."""
    env.action_space.seed(seed)
    env.reset(seed=seed)

    def run(n: int) -> None:
        for _ in range(n):
            _, _, terminated, truncated, _ = env.step(env.action_space.sample())
            if terminated or truncated:
                env.reset()

    run(warmup)
    rates, cpu_rates = [], []
    for _ in range(windows):
        start, start_cpu = time.perf_counter(), time.process_time()
        run(steps)
        rates.append(steps / (time.perf_counter() - start))
        # CPU time of this process (renderer threads included): on a shared machine this shows what
        # the env costs when the wall clock also counts other people's work.
        cpu_rates.append(steps / max(time.process_time() - start_cpu, 1e-9))
    return rates, cpu_rates


def run(args: argparse.Namespace) -> dict:
    """Time both envs; returns the JSON-ready result."""
    if min(args.windows, args.ours_steps, args.gym_hil_steps) < 1 or args.warmup < 0:
        raise UserError("--windows, --ours-steps and --gym-hil-steps must be >= 1 and --warmup >= 0")
    import mujoco

    from actors.robots.sim.env import SO101SimEnv

    result: dict = {"benchmark": "env", "image_size": args.image_size, "cameras": ["front", "wrist"]}
    ours = SO101SimEnv(image_size=args.image_size)
    try:
        rates, cpu_rates = _time_env(ours, args.ours_steps, args.windows, args.warmup)
    finally:
        ours.close()
    result["ours_steps_per_s"] = round(statistics.median(rates), 2)
    result["ours_windows_steps_per_s"] = [round(r, 2) for r in rates]
    result["ours_steps_per_cpu_s"] = round(statistics.median(cpu_rates), 2)
    result["ours"] = {"env": "SO101SimEnv pick_lift", "control_hz": ours.fps, "substeps": ours.substeps}

    if not args.skip_gym_hil:
        try:
            import gym_hil  # noqa: F401  (registers the gym_hil/* ids)
            import gymnasium as gym
            from gym_hil.mujoco_gym_env import GymRenderingSpec
        except ImportError:
            raise UserError(
                "gym-hil is not installed: run `uv pip install -p .venv/bin/python -e '.[bench]'` "
                "or pass --skip-gym-hil"
            ) from None
        spec = GymRenderingSpec(height=args.image_size, width=args.image_size)
        panda = gym.make(GYM_HIL_ID, image_obs=True, render_spec=spec)
        try:
            # Its own renderer makes the first frames slow; one warm-up step is enough at ~1 step/s.
            rates, cpu_rates = _time_env(panda, args.gym_hil_steps, args.windows, warmup=1)
        finally:
            panda.close()
        result["gym_hil_steps_per_s"] = round(statistics.median(rates), 3)
        result["gym_hil_windows_steps_per_s"] = [round(r, 3) for r in rates]
        result["gym_hil_steps_per_cpu_s"] = round(statistics.median(cpu_rates), 3)
        result["gym_hil"] = {"env": GYM_HIL_ID, "version": _version("gym-hil"), "as_shipped": True}
        result["ratio"] = round(result["ours_steps_per_s"] / result["gym_hil_steps_per_s"], 1)
    else:
        result["gym_hil_steps_per_s"] = None
        result["ratio"] = None
    result["windows"] = args.windows
    result["steps_per_window"] = {"ours": args.ours_steps, "gym_hil": args.gym_hil_steps}
    result["mujoco"] = mujoco.__version__
    result["mujoco_gl"] = os.environ.get("MUJOCO_GL")
    result["machine"] = machine_info()
    # The machine may be shared: the load says how much of it the numbers above had.
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    return result


def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        result = run(args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(f"ours (SO101SimEnv, 2 cameras {args.image_size}px): {result['ours_steps_per_s']:.1f} steps/s")
        if result["gym_hil_steps_per_s"] is not None:
            print(f"gym-hil {GYM_HIL_ID} as shipped:      {result['gym_hil_steps_per_s']:.2f} steps/s")
            print(f"ratio: {result['ratio']}x")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
