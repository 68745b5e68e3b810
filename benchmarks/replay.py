"""`hilserl bench replay [--json]`: our replay storage against LeRobot 0.6's ReplayBuffer, one process.

Same data on both sides: two cameras 3x128x128, state 18, action 4, grasp penalty; episodes of
100 steps; batches of 256 mixed 50/50 online/demo (LeRobot: two ``sample(128)`` calls and its
``concatenate_batch_transitions``, as its learner does). LeRobot runs with ``optimize_memory=True``
(what its learner passes) and images as float32 in [0, 1] (what its processors hand it).
DrQ augmentation is timed separately: LeRobot's own ``random_shift`` (uncompiled, so no compiler
time is counted) against ours, both on the CPU.

Ours is measured in both storage modes: the pixel replay (uint8 frames, ``feature_cache: false``)
and the feature replay (float16 frozen ResNet-10 maps, the default; frames encoded once, batched per
``extend``). The demo-import entry writes a 1,000-frame, two-camera LeRobot dataset (images, not
video, so decoding does not dominate) and imports it in a fresh subprocess per side, reporting
wall time and peak RSS growth: ours (``import_lerobot_dataset`` into a feature replay, one
backbone pass per episode) against LeRobot's ``ReplayBuffer.from_lerobot_dataset``.

Prints a JSON list of {"metric", "ours", "lerobot", "ratio", ...}; ratio > 1 means ours is better
(lerobot / ours for bytes, ours / lerobot for rates). Warm-up first, then the median of repeats.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time

import numpy as np
import torch

from benchmarks import machine_info

CAMERAS = ["observation.images.front", "observation.images.wrist"]
STATE = "observation.state"
IMAGE_SHAPE = (3, 128, 128)
STATE_DIM, ACTION_DIM, BATCH = 18, 4, 256


def median_seconds(fn, warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_episodes(transitions: int, episode_length: int, seed: int):
    """Yield (obs_images, state, action, reward, next_images, next_state, terminated, truncated) as numpy."""
    rng = np.random.default_rng(seed)

    def frame():
        return {k: rng.integers(0, 256, IMAGE_SHAPE, dtype=np.uint8) for k in CAMERAS}, rng.standard_normal(
            STATE_DIM
        ).astype(np.float32)

    made = 0
    while made < transitions:
        images, state = frame()
        for step in range(min(episode_length, transitions - made)):
            next_images, next_state = frame()
            action = rng.uniform(-1, 1, ACTION_DIM).astype(np.float32)
            action[-1] = rng.integers(0, 3)  # Gripper: 0 close, 1 stay, 2 open (LeRobot's)
            last = step == episode_length - 1 or made + 1 == transitions
            yield images, state, action, float(rng.random()), next_images, next_state, False, last
            images, state = next_images, next_state
            made += 1


def build_ours(transitions: int, episode_length: int, encoder=None):
    """Our MixedReplay; with ``encoder`` (a ``FeatureEncoder``) a feature replay, filled an episode per extend."""
    from learner.replay import MixedReplay, ReplayBuffer
    from learner.types import Transition

    def buffer(seed):
        return ReplayBuffer(
            transitions + transitions // episode_length + 2,
            CAMERAS,
            IMAGE_SHAPE,
            STATE,
            STATE_DIM,
            ACTION_DIM,
            seed=seed,
            encoder=encoder,
        )

    replay = MixedReplay(buffer(0), buffer(1), online_ratio=0.5)
    for target, seed in ((replay.online, 0), (replay.demo, 1)):
        pending = []
        for images, state, action, reward, next_images, next_state, terminated, truncated in make_episodes(
            transitions, episode_length, seed
        ):
            pending.append(
                Transition(
                    observation={**images, STATE: state},
                    action=action,
                    reward=reward,
                    next_observation={**next_images, STATE: next_state},
                    terminated=terminated,
                    truncated=truncated,
                    complementary_info={"grasp_penalty": -0.02},
                )
            )
            if terminated or truncated:
                target.extend(pending)
                pending = []
        target.extend(pending)
    return replay


def local_encoder(folder):
    """A FeatureEncoder on the benchmark's local ResNet-10 folder (128 px), CPU."""
    from vision.backbone import FrozenBackbone
    from vision.features import FeatureEncoder
    from vision.resnet10 import load_resnet10

    return FeatureEncoder(FrozenBackbone(load_resnet10(str(folder)), IMAGE_SHAPE[-1]))


def build_lerobot(transitions: int, episode_length: int, use_drq: bool):
    from lerobot.rl.buffer import ReplayBuffer, random_shift

    buffers = []
    for seed in (0, 1):
        buffer = ReplayBuffer(
            capacity=transitions,
            device="cpu",
            state_keys=[*CAMERAS, STATE],
            storage_device="cpu",
            optimize_memory=True,
            use_drq=use_drq,
            image_augmentation_function=random_shift,  # theirs, uncompiled: no compile time in the figures
        )
        for images, state, action, reward, next_images, next_state, terminated, truncated in make_episodes(
            transitions, episode_length, seed
        ):
            as_state = {k: torch.from_numpy(v).float().div_(255).unsqueeze(0) for k, v in images.items()}
            as_state[STATE] = torch.from_numpy(state).unsqueeze(0)
            as_next = {k: torch.from_numpy(v).float().div_(255).unsqueeze(0) for k, v in next_images.items()}
            as_next[STATE] = torch.from_numpy(next_state).unsqueeze(0)
            buffer.add(
                state=as_state,
                action=torch.from_numpy(action).unsqueeze(0),
                reward=reward,
                next_state=as_next,
                done=terminated,
                truncated=truncated,
                complementary_info={"discrete_penalty": -0.02},
            )
        buffers.append(buffer)
    return buffers


def write_demo_dataset(root, frames: int = 1000, episode_length: int = 100):
    """A LeRobot dataset of ``frames`` frames, two cameras (PNG images), next.reward and next.done."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    height, width = IMAGE_SHAPE[1:]
    features = {
        key: {"dtype": "image", "shape": (height, width, 3), "names": ["height", "width", "channels"]}
        for key in CAMERAS
    }
    features |= {
        STATE: {"dtype": "float32", "shape": (STATE_DIM,), "names": None},
        "action": {"dtype": "float32", "shape": (ACTION_DIM,), "names": None},
        "next.reward": {"dtype": "float32", "shape": (1,), "names": None},
        "next.done": {"dtype": "bool", "shape": (1,), "names": None},
    }
    dataset = LeRobotDataset.create(
        repo_id="bench/demos", fps=10, features=features, root=root, use_videos=False
    )
    rng = np.random.default_rng(0)
    for start in range(0, frames, episode_length):
        length = min(episode_length, frames - start)
        for i in range(length):
            frame = {key: rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for key in CAMERAS}
            frame |= {
                STATE: rng.standard_normal(STATE_DIM).astype(np.float32),
                "action": rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                "next.reward": np.array([float(i == length - 1)], dtype=np.float32),
                "next.done": np.array([i == length - 1]),
                "task": "pick",
            }
            dataset.add_frame(frame)
        dataset.save_episode()
    dataset.finalize()


def _import_child(side: str, root: str, folder: str, results) -> None:
    """In a fresh process: open + import the dataset; report seconds, peak private-memory growth
    (RSS minus file-backed shared pages, sampled every 5 ms: the dataset's memory-mapped Arrow files
    are not counted) and stored transitions."""
    import threading

    import psutil

    process = psutil.Process()

    def private() -> int:
        info = process.memory_info()
        return info.rss - info.shared

    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], private())
            time.sleep(0.005)

    if side == "lerobot":
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
        from lerobot.rl.buffer import ReplayBuffer

        before = private()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        dataset = LeRobotDataset("bench/demos", root=root)
        buffer = ReplayBuffer.from_lerobot_dataset(
            dataset, device="cpu", state_keys=[*CAMERAS, STATE], optimize_memory=True, use_drq=False
        )
        count = len(buffer)
    else:
        from learner.demos import import_lerobot_dataset
        from learner.replay import ReplayBuffer as Ours

        encoder = local_encoder(folder) if side == "ours-features" else None
        buffer = Ours(1100, CAMERAS, IMAGE_SHAPE, STATE, STATE_DIM, ACTION_DIM, encoder=encoder)
        before = private()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        start = time.perf_counter()
        count = import_lerobot_dataset(buffer, root)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak[0] = max(peak[0], private())
    results.put({"seconds": seconds, "peak_rss_growth": max(peak[0] - before, 0), "transitions": count})


def measure_import(root, folder) -> dict[str, dict]:
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    out = {}
    for side in ("ours-features", "ours-pixels", "lerobot"):
        results = context.Queue()
        process = context.Process(target=_import_child, args=(side, str(root), str(folder), results))
        process.start()
        out[side] = results.get(timeout=1800)
        process.join()
    return out


def lerobot_bytes_per_transition(buffer) -> float:
    tensors = [*buffer.states.values(), buffer.actions, buffer.rewards, buffer.dones, buffer.truncateds]
    tensors += [*buffer.complementary_info.values(), buffer.episode_ends]
    return sum(t.element_size() * t[0].numel() for t in tensors)


def entry(metric, ours, lerobot, unit, higher_is_better, target=None, **extra):
    ratio = ours / lerobot if higher_is_better else lerobot / ours
    item = {
        "metric": metric,
        "ours": round(ours, 3),
        "lerobot": round(lerobot, 3),
        "ratio": round(ratio, 2),
        "unit": unit,
        "ratio_meaning": "ours/lerobot" if higher_is_better else "lerobot/ours",
    }
    if target is not None:
        item |= {"target_ratio": target, "meets_target": ratio >= target}
    return item | extra


def run(
    transitions: int = 1000,
    episode_length: int = 100,
    warmup: int = 3,
    repeats: int = 15,
    demo_frames: int = 1000,
) -> list[dict]:
    import os
    import tempfile
    from pathlib import Path

    from lerobot.rl.buffer import concatenate_batch_transitions

    from benchmarks.resnet10_folder import make_local_resnet10_folder
    from vision.augment import random_shift

    torch.manual_seed(0)
    tmp = tempfile.TemporaryDirectory()
    folder = make_local_resnet10_folder(Path(tmp.name) / "resnet10", seed=0)
    ours = build_ours(transitions, episode_length)
    started = time.perf_counter()
    features = build_ours(transitions, episode_length, encoder=local_encoder(folder))
    feature_fill_s = time.perf_counter() - started
    theirs_online, theirs_offline = build_lerobot(transitions, episode_length, use_drq=False)
    half = BATCH // 2

    def lerobot_sample():
        return concatenate_batch_transitions(theirs_online.sample(half), theirs_offline.sample(half))

    def ours_augmented():
        batch = ours.sample(BATCH)
        for obs in (batch.observation, batch.next_observation):
            for key in CAMERAS:
                obs[key] = random_shift(obs[key], 4)
        return batch

    ours_bytes = ours.online.bytes_per_slot * ours.online.size / len(ours.online)
    feature_bytes = features.online.bytes_per_slot * features.online.size / len(features.online)
    theirs_bytes = lerobot_bytes_per_transition(theirs_online)
    feature_s = median_seconds(lambda: features.sample(BATCH), warmup, repeats)
    ours_s = median_seconds(lambda: ours.sample(BATCH), warmup, repeats)
    theirs_s = median_seconds(lerobot_sample, warmup, repeats)
    ours_aug_s = median_seconds(ours_augmented, warmup, repeats)
    theirs_online.use_drq = theirs_offline.use_drq = True
    theirs_aug_s = median_seconds(lerobot_sample, warmup, repeats)
    demo_root = Path(tmp.name) / "demos"
    write_demo_dataset(demo_root, demo_frames, episode_length)
    imports = measure_import(demo_root, folder)
    tmp.cleanup()
    machine = machine_info() | {"load_average": list(os.getloadavg())}
    setup = (
        f"2 cameras {IMAGE_SHAPE}, state {STATE_DIM}, action {ACTION_DIM}, batch {BATCH} (50/50 online/demo), "
        f"{transitions} transitions per buffer, episodes of {episode_length}, CPU; no GPU in this session"
    )
    common = {"setup": setup, "machine": machine, "warmup": warmup, "repeats": repeats}
    ours_import, theirs_import = imports["ours-features"], imports["lerobot"]
    return [
        entry(
            "bytes per stored transition (feature replay, the default)",
            feature_bytes,
            theirs_bytes,
            "bytes",
            False,
            8.0,
            target_bytes=48 * 1024,
            meets_bytes_target=feature_bytes <= 48 * 1024,
            note="two float16 512x4x4 maps + state/action/flags; one extra final-observation slot per episode",
            **common,
        ),
        entry("sampled batches/s (feature replay)", 1 / feature_s, 1 / theirs_s, "batches/s", True, **common),
        {
            "metric": "feature replay fill: frames encoded per second (batched backbone, CPU)",
            "ours": round((features.online.size + features.demo.size) * len(CAMERAS) / feature_fill_s, 1),
            "lerobot": None,
            "unit": "images/s",
            "note": "LeRobot stores float32 pixels: no encode step to compare",
            **common,
        },
        entry(
            f"seconds to import a {demo_frames}-frame, 2-camera demo dataset (fresh process)",
            ours_import["seconds"],
            theirs_import["seconds"],
            "s",
            False,
            ours_pixels=round(imports["ours-pixels"]["seconds"], 3),
            note="ours: into a feature replay (decode + batched ResNet-10 per episode); ours_pixels: uint8 replay",
            **common,
        ),
        entry(
            f"peak private memory growth importing the {demo_frames}-frame demo dataset",
            ours_import["peak_rss_growth"],
            theirs_import["peak_rss_growth"],
            "bytes",
            False,
            ours_pixels=imports["ours-pixels"]["peak_rss_growth"],
            transitions={k: v["transitions"] for k, v in imports.items()},
            **common,
        ),
        entry(
            "bytes per stored transition (pixel replay, feature_cache: false)",
            ours_bytes,
            theirs_bytes,
            "bytes",
            False,
            4.0,
            note="ours includes the one extra final-observation frame per episode",
            **common,
        ),
        entry("sampled batches/s (pixel replay)", 1 / ours_s, 1 / theirs_s, "batches/s", True, 2.0, **common),
        entry(
            "sampled + DrQ-augmented batches/s (CPU)",
            1 / ours_aug_s,
            1 / theirs_aug_s,
            "batches/s",
            True,
            **common,
        ),
    ]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hilserl bench replay", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON list")
    parser.add_argument("--transitions", type=int, default=1000, help="transitions per buffer")
    parser.add_argument("--repeats", type=int, default=15, help="timed repeats per measurement (median)")
    parser.add_argument("--demo-frames", type=int, default=1000, help="frames of the imported demo dataset")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    results = run(transitions=args.transitions, repeats=args.repeats, demo_frames=args.demo_frames)
    print(json.dumps(results, indent=None if args.json else 2))
    return 0
