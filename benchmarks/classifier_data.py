"""The classifier benchmark's dataset: two 128x128 cameras, ~1300 frames, a success cue that is not trivial.

A gripper approaches a small red cube among distractors. Cameras:
- ``observation.images.wrist``: the gripper's jaws are fixed in the image (as on a real wrist
  camera); the world moves under them and grows as the gripper descends.
- ``observation.images.front``: a top view of the table with the gripper drawn where it is.

Success (``next.reward`` = 1) means the red cube is between the jaws with the gripper down. The
hard negatives: near misses (the cube just beside the jaws), a distractor between the jaws
(orange, purple, ...), the gripper above the cube but not down yet; and lighting changes per
episode and per frame. Written with LeRobot's own ``create`` / ``add_frame`` / ``save_episode``,
deterministic for a given seed, and cached: ``ensure_dataset(root)`` only writes it once.

    python -m benchmarks.classifier_data /tmp/hilserl_bench/classifier_v1
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np

VERSION = 1
SIZE = 128
EPISODES = 15
FRAMES_PER_EPISODE = 87  # 15 x 87 = 1305 frames
CAMERAS = ("observation.images.wrist", "observation.images.front")
RED = np.array([200, 30, 35])
DISTRACTOR_COLORS = [
    np.array(c) for c in ([230, 120, 30], [150, 40, 160], [40, 90, 200], [40, 160, 60], [210, 200, 40])
]
JAW_HALF_GAP = 0.045  # world units: how far the cube centre may be from the jaw axis and still be "inside"


def _table(rng: np.random.Generator) -> np.ndarray:
    base = np.array([150, 130, 105]) + rng.integers(-20, 20, 3)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    grain = 10 * np.sin(xx / rng.uniform(3, 7)) + 6 * np.sin((xx + yy) / rng.uniform(5, 11))
    return np.clip(base[None, None, :] + grain[..., None], 0, 255)


def _square(img: np.ndarray, cx: float, cy: float, half: float, color: np.ndarray) -> None:
    x0, x1 = int(round(cx - half)), int(round(cx + half))
    y0, y1 = int(round(cy - half)), int(round(cy + half))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, SIZE), min(y1, SIZE)
    if x0 < x1 and y0 < y1:
        img[y0:y1, x0:x1] = color
        img[y0:y1, x0 : min(x0 + 1, x1)] = color * 0.7  # a shaded edge so cubes look like cubes


def _episode_plan(rng: np.random.Generator, kind: str) -> dict:
    cube = rng.uniform(0.25, 0.75, 2)
    distractors = [rng.uniform(0.15, 0.85, 2) for _ in range(3)]
    colors = [DISTRACTOR_COLORS[i] for i in rng.choice(len(DISTRACTOR_COLORS), 3, replace=False)]
    if kind == "success":
        target = cube + rng.normal(0, 0.01, 2)
    elif kind == "near_miss":
        angle = rng.uniform(0, 2 * np.pi)
        target = cube + rng.uniform(0.075, 0.11) * np.array([np.cos(angle), np.sin(angle)])
    else:  # a distractor between the jaws
        target = distractors[0] + rng.normal(0, 0.01, 2)
    return {
        "cube": cube,
        "distractors": distractors,
        "colors": colors,
        "start": rng.uniform(0.1, 0.9, 2),
        "target": target,
        "light": rng.uniform(0.6, 1.35),
        "tint": rng.uniform(0.85, 1.15, 3),
        "table": _table(rng),
    }


def _gripper_state(plan: dict, i: int) -> tuple[np.ndarray, float]:
    """Approach (frames 0-39), descend (40-59), hold low (60-86)."""
    t = min(i / 39, 1.0)
    xy = plan["start"] + (plan["target"] - plan["start"]) * (3 * t**2 - 2 * t**3)
    z = 1.0 if i < 40 else max(0.0, 1.0 - (i - 40) / 20)
    return xy, z


def _render(plan: dict, xy: np.ndarray, z: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    light = plan["light"] * plan["tint"] * rng.uniform(0.93, 1.07)
    objects = [(plan["cube"], RED)] + list(zip(plan["distractors"], plan["colors"], strict=True))
    # Front camera: top view, world [0, 1]^2 -> pixels; the gripper is a grey U with a height-dependent shadow.
    front = plan["table"].copy()
    for pos, color in objects:
        _square(front, pos[0] * SIZE, pos[1] * SIZE, 3, color)
    gx, gy = xy * SIZE
    shadow = 6 * z
    _square(
        front, gx + shadow, gy + shadow, 7, front[int(np.clip(gy, 0, 127)), int(np.clip(gx, 0, 127))] * 0.55
    )
    for dx in (-7, 7):
        _square(front, gx + dx, gy, 2.5, np.array([90, 90, 95]))
    _square(front, gx, gy - 6, 7, np.array([110, 110, 115]))
    # Wrist camera: jaws fixed at the bottom centre; the world scaled by closeness.
    scale = SIZE * (1.6 + 2.4 * (1 - z))
    wrist = np.full((SIZE, SIZE, 3), 0.0)
    wrist[:] = plan["table"][::4, ::4].repeat(4, 0).repeat(4, 1).mean(axis=(0, 1))
    jaw_x, jaw_y = SIZE / 2, SIZE * 0.72
    for pos, color in objects:
        rel = (pos - xy) * scale
        _square(wrist, jaw_x + rel[0], jaw_y + rel[1], 0.02 * scale, color)
    for side in (-1, 1):
        x = jaw_x + side * (JAW_HALF_GAP * scale + 6)
        wrist[int(jaw_y - 22) : SIZE, int(x - 5) : int(x + 5)] = np.array([70, 70, 75])
    images = []
    for img in (wrist, front):
        img = img * light[None, None, :] + rng.normal(0, 4, img.shape)
        images.append(np.clip(img, 0, 255).astype(np.uint8))
    return images[0], images[1]


def _success(plan: dict, xy: np.ndarray, z: float) -> bool:
    return bool(np.all(np.abs(plan["cube"] - xy) < JAW_HALF_GAP) and z < 0.35)


def write_dataset(root: Path, seed: int = 0) -> dict:
    """Write the dataset at ``root`` (which must not exist) and return its summary."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        key: {"dtype": "video", "shape": (SIZE, SIZE, 3), "names": ["height", "width", "channels"]}
        for key in CAMERAS
    }
    features["observation.state"] = {"dtype": "float32", "shape": (3,), "names": None}
    features["next.reward"] = {"dtype": "float32", "shape": (1,), "names": None}
    dataset = LeRobotDataset.create(
        repo_id="bench/classifier", fps=10, features=features, root=root, use_videos=True, robot_type="so101"
    )
    rng = np.random.default_rng(seed)
    kinds = ["success"] * 8 + ["near_miss"] * 4 + ["distractor"] * 3
    rng.shuffle(kinds)
    positives = 0
    for kind in kinds:
        plan = _episode_plan(rng, kind)
        for i in range(FRAMES_PER_EPISODE):
            xy, z = _gripper_state(plan, i)
            wrist, front = _render(plan, xy, z, rng)
            label = _success(plan, xy, z)
            positives += label
            dataset.add_frame(
                {
                    CAMERAS[0]: wrist,
                    CAMERAS[1]: front,
                    "observation.state": np.array([xy[0], xy[1], z], dtype=np.float32),
                    "next.reward": np.array([float(label)], dtype=np.float32),
                    "task": "grasp the red cube",
                }
            )
        dataset.save_episode()
    dataset.finalize()
    frames = EPISODES * FRAMES_PER_EPISODE
    return {
        "version": VERSION,
        "seed": seed,
        "episodes": EPISODES,
        "frames": frames,
        "positives": int(positives),
    }


def ensure_dataset(root: str | Path, seed: int = 0) -> tuple[Path, dict]:
    """The cached dataset at ``root``, written first if missing or from another version/seed."""
    root = Path(root)
    marker = root / "bench_dataset.json"
    if marker.is_file():
        summary = json.loads(marker.read_text())
        if summary.get("version") == VERSION and summary.get("seed") == seed:
            return root, summary
    if root.exists():
        shutil.rmtree(root)
    summary = write_dataset(root, seed)
    marker.write_text(json.dumps(summary) + "\n")
    return root, summary


if __name__ == "__main__":
    print(ensure_dataset(sys.argv[1] if len(sys.argv) > 1 else "/tmp/hilserl_bench/classifier_v1")[1])
