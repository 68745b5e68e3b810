"""Save the simulated cameras' views as PNGs: at reset and while the scripted expert lifts the cube.

    python -m actors.robots.sim.views outputs/sim_views [--size 128] [--seed 0] [--task pick_lift]

Writes ``front_reset.png``, ``wrist_reset.png``, ``front_grasp.png`` and ``wrist_grasp.png``:
a quick look that the scene is an arm, a table and a cube, seen the way the policy sees it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

from actors.robots.sim.env import FRONT, WRIST, SO101SimEnv
from actors.robots.sim.expert import ScriptedExpert


def save_views(out_dir: Path, *, size: int = 128, seed: int = 0, task: str = "pick_lift") -> list[Path]:
    """Render the views and return the written paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = SO101SimEnv(task=task, image_size=size)
    try:
        obs, info = env.reset(seed=seed)
        frames = {"reset": obs}
        expert = ScriptedExpert(env)
        for _ in range(env.max_episode_steps):
            obs, _, terminated, truncated, info = env.step(expert.act(obs, info))
            if info["grasped"]:
                frames["grasp"] = obs
            if terminated or truncated:
                break
        frames.setdefault("grasp", obs)
    finally:
        env.close()
    paths = []
    for moment, frame in frames.items():
        for camera, key in (("front", FRONT), ("wrist", WRIST)):
            path = out_dir / f"{camera}_{moment}.png"
            Image.fromarray(frame[key]).save(path)
            paths.append(path)
    return paths


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m actors.robots.sim.views", description=__doc__.splitlines()[0]
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--task", default="pick_lift")
    args = parser.parse_args(argv)
    for path in save_views(args.out_dir, size=args.size, seed=args.seed, task=args.task):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
