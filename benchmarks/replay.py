"""`hilserl bench replay [--json]`: our replay storage against LeRobot 0.4.4's ReplayBuffer, one process.

Same data on both sides: two cameras 3x128x128, state 18, action 4, grasp penalty; episodes of
100 steps; batches of 256 mixed 50/50 online/demo (LeRobot: two ``sample(128)`` calls and its
``concatenate_batch_transitions``, as its learner does). LeRobot runs with ``optimize_memory=True``
(what its learner passes) and images as float32 in [0, 1] (what its processors hand it).
DrQ augmentation is timed separately: LeRobot's own ``random_shift`` (uncompiled, so no compiler
time is counted) against ours, both on the CPU.

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


def build_ours(transitions: int, episode_length: int):
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
        )

    replay = MixedReplay(buffer(0), buffer(1), online_ratio=0.5)
    for target, seed in ((replay.online, 0), (replay.demo, 1)):
        for images, state, action, reward, next_images, next_state, terminated, truncated in make_episodes(
            transitions, episode_length, seed
        ):
            target.add(
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
    return replay


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


def run(transitions: int = 1000, episode_length: int = 100, warmup: int = 3, repeats: int = 15) -> list[dict]:
    from lerobot.rl.buffer import concatenate_batch_transitions

    from learner.augment import random_shift

    torch.manual_seed(0)
    ours = build_ours(transitions, episode_length)
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
    theirs_bytes = lerobot_bytes_per_transition(theirs_online)
    ours_s = median_seconds(lambda: ours.sample(BATCH), warmup, repeats)
    theirs_s = median_seconds(lerobot_sample, warmup, repeats)
    ours_aug_s = median_seconds(ours_augmented, warmup, repeats)
    theirs_online.use_drq = theirs_offline.use_drq = True
    theirs_aug_s = median_seconds(lerobot_sample, warmup, repeats)
    machine = machine_info()
    setup = (
        f"2 cameras {IMAGE_SHAPE}, state {STATE_DIM}, action {ACTION_DIM}, batch {BATCH} (50/50 online/demo), "
        f"{transitions} transitions per buffer, episodes of {episode_length}, CPU; no GPU in this session"
    )
    common = {"setup": setup, "machine": machine, "warmup": warmup, "repeats": repeats}
    return [
        entry(
            "bytes per stored transition",
            ours_bytes,
            theirs_bytes,
            "bytes",
            False,
            4.0,
            note="ours includes the one extra final-observation frame per episode",
            **common,
        ),
        entry("sampled batches/s", 1 / ours_s, 1 / theirs_s, "batches/s", True, 2.0, **common),
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    results = run(transitions=args.transitions, repeats=args.repeats)
    print(json.dumps(results, indent=None if args.json else 2))
    return 0
