"""`hilserl bench reward --json`: the reward actor's round trip and throughput on a local Ray.

Two 128x128 cameras, a classifier with the HIL-SERL architecture (random weights: the cost does not
depend on them). Measured through real Ray actors, robot clients calling ``score.remote``:

    p50_ms_1, p99_ms_1     round trip robot -> reward actor -> robot, one robot calling back to back
    p99_ms_8               the same with 8 robots calling at once
    batched_fps_8          frames/s served to 8 robots by the batching actor
    per_frame_fps_8        frames/s with one forward pass per frame (max_batch=1: LeRobot's pattern,
                           where each actor runs the classifier on its own frame)
    ratio                  batched_fps_8 / per_frame_fps_8
    robots_at_10hz         most robots (of 1, 2, 4, 8, 16, 32) each asking at 10 Hz whose p99 stays under 100 ms

Each of those twice: ``pixels`` (the robot sends its (3, H, W) frames; the reward actor runs the
classifier's ResNet-10) and ``maps`` (encode once: the robot sends the backbone maps it computed to
act, float32 (512, h, w), and the reward actor runs only the classifier's heads). The modes
alternate in windows so both see the same machine load; medians of the windows.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

KEYS = ["observation.images.front", "observation.images.wrist"]


def make_classifier(folder: Path, size: int) -> Path:
    import torch

    from configs.common import FeatureSpec
    from configs.reward import RewardClassifierConfig
    from reward.checkpoint import save_checkpoint
    from reward.model import build_classifier

    torch.manual_seed(0)
    config = RewardClassifierConfig(
        model_name="unused",
        num_cameras=2,
        image_size=size,
        input_features={k: FeatureSpec(type="VISUAL", shape=[3, size, size]) for k in KEYS},
    )
    return save_checkpoint(
        folder, build_classifier(config, load_weights=False).eval(), thresholds={"best_f1": 0.5}
    )


def _client_class():
    import ray

    @ray.remote(num_cpus=0)
    class Client:
        """A robot's side of the round trip: one frame (or its maps) per call, paced or back to back."""

        def __init__(self, size: int, seed: int):
            from vision.resnet10 import ResNet10, feature_map_size

            rng = np.random.default_rng(seed)
            shape = (ResNet10.out_channels, *feature_map_size(size, size))
            self.frames = {
                False: {k: rng.integers(0, 255, (3, size, size), dtype=np.uint8) for k in KEYS},
                True: {k: rng.normal(size=shape).astype(np.float32) for k in KEYS},  # encode once's maps
            }

        def run(self, reward, seconds: float, hz: float | None, maps: bool) -> list[float]:
            import ray

            frames = self.frames[maps]
            latencies, end = [], time.perf_counter() + seconds
            next_t = time.perf_counter()
            while time.perf_counter() < end:
                start = time.perf_counter()
                ray.get(reward.score.remote(frames))
                latencies.append(time.perf_counter() - start)
                if hz:
                    next_t += 1.0 / hz
                    time.sleep(max(0.0, next_t - time.perf_counter()))
            return latencies

    return Client


def _reward_actor(checkpoint: Path, size: int, max_batch: int):
    from cluster.ray_roles import RewardActor
    from configs.env import EnvConfig, ProcessorConfig, RewardClassifierEnvConfig
    from configs.rl import RewardActorConfig, TrainRLConfig

    cfg = TrainRLConfig(
        env=EnvConfig(
            image_size=size,
            processor=ProcessorConfig(
                reward_classifier=RewardClassifierEnvConfig(pretrained_path=str(checkpoint))
            ),
        ),
        reward=RewardActorConfig(max_batch=max_batch),
    )
    cfg.reward.source = "classifier"
    cfg.learner.image_keys = list(KEYS)
    return RewardActor.options(num_cpus=0).remote(cfg)


def _window(
    clients: list, reward, seconds: float, hz: float | None = None, maps: bool = False
) -> tuple[float, list[float]]:
    """``clients`` (started once and reused: Ray workers start slowly on a small machine) call at once."""
    import ray

    ray.get([a.run.remote(reward, 0.5, None, maps) for a in clients])  # warm-up
    start = time.perf_counter()
    per_client = ray.get([a.run.remote(reward, seconds, hz, maps) for a in clients])
    wall = time.perf_counter() - start
    latencies = [x for lat in per_client for x in lat]
    return len(latencies) / wall, latencies


def run(size: int = 128, seconds: float = 4.0, windows: int = 3, max_robots: int = 32) -> dict:
    import ray

    from benchmarks import machine_info
    from cluster.ray_session import start_ray

    started = start_ray(num_cpus=os.cpu_count(), quiet=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = make_classifier(Path(tmp) / "clf", size)
            batched = _reward_actor(checkpoint, size, max_batch=64)
            per_frame = _reward_actor(checkpoint, size, max_batch=1)
            ray.get([batched.ready.remote(), per_frame.ready.remote()])
            client_cls = _client_class()
            pool = [client_cls.remote(size, i) for i in range(max(8, max_robots))]
            modes = {"pixels": False, "maps": True}
            one = {m: [] for m in modes}
            fps_b, fps_p, p99_8 = ({m: [] for m in modes} for _ in range(3))
            for _ in range(windows):  # alternate so every mode sees the same load
                for mode, maps in modes.items():
                    one[mode] += _window(pool[:1], batched, seconds, maps=maps)[1]
                    fps, lat = _window(pool[:8], batched, seconds, maps=maps)
                    fps_b[mode].append(fps)
                    p99_8[mode].append(float(np.percentile(lat, 99)))
                    fps_p[mode].append(_window(pool[:8], per_frame, seconds, maps=maps)[0])
            robots_at_10hz = dict.fromkeys(modes, 0)
            for mode, maps in modes.items():
                for n in [n for n in (1, 2, 4, 8, 16, 32) if n <= max_robots]:
                    _, lat = _window(pool[:n], batched, seconds, hz=10.0, maps=maps)
                    if float(np.percentile(lat, 99)) * 1e3 >= 100.0:
                        break
                    robots_at_10hz[mode] = n
            import torch

            result = {
                mode: {
                    "p50_ms_1": float(np.percentile(one[mode], 50) * 1e3),
                    "p99_ms_1": float(np.percentile(one[mode], 99) * 1e3),
                    "p99_ms_8": float(np.median(p99_8[mode]) * 1e3),
                    "batched_fps_8": float(np.median(fps_b[mode])),
                    "per_frame_fps_8": float(np.median(fps_p[mode])),
                    "ratio": float(np.median(fps_b[mode]) / max(1e-9, np.median(fps_p[mode]))),
                    "robots_at_10hz": robots_at_10hz[mode],
                }
                for mode in modes
            }
            result |= {
                "device": "cuda" if torch.cuda.is_available() else "cpu",
                "image_size": size,
                "cameras": 2,
                "windows": windows,
                "max_robots": max_robots,
                "window_s": seconds,
                "load_average_1m": os.getloadavg()[0],
                "machine": machine_info(),
            }
    finally:
        if started:
            ray.shutdown()
    return result


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hilserl bench reward", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print the JSON only")
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=4.0, help="length of one timing window")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument(
        "--max-robots",
        type=int,
        default=32,
        help="largest robot count robots_at_10hz tries (each a Ray actor)",
    )
    args = parser.parse_args(argv)
    result = run(args.image_size, args.seconds, args.windows, args.max_robots)
    print(json.dumps(result, indent=None if args.json else 2))
    return 0
