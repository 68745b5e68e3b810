"""`hilserl bench learner [--json]`: our SAC learner against LeRobot 0.6's GaussianActorPolicy + SACAlgorithm, one process.

Same shapes on both sides: two cameras 3x128x128, state 18, action 3 continuous + 1 gripper
(grasp / discrete critic with 3 actions), batch 256 (128 online + 128 demo), UTD 2, two critics,
the SAME local ResNet-10 folder (``benchmarks.resnet10_folder``; LeRobot loads it through
``AutoModel.from_pretrained(..., trust_remote_code=True)``), frozen and shared.

LeRobot's update is its learner's own training step: ``RLTrainer.training_step`` over an
``OnlineOfflineMixer`` of its ``ReplayBuffer`` iterators (async prefetch, DrQ on; its uncompiled
``random_shift`` so no compile time lands in the figures), where ``SACAlgorithm.update`` runs the
UTD-1 critic + discrete-critic steps with target updates, then critic, discrete critic, actor,
temperature and a target update, with its Adam setup and its observation-feature cache. No
preprocessor (its normalization step), as on our side. ``use_torch_compile=False`` (its default).

Weight push: LeRobot's ``push_actor_policy_to_queue`` bytes (``SACAlgorithm.get_weights``: the actor
state dict incl. the frozen encoder, plus the discrete critic's, which holds the shared encoder again) against our
``export_to_bytes(export_policy(...))`` (trainable weights only). Both are torch.save payloads.

Ours runs in both modes: the pixel path (``feature_cache: false``: DrQ shift + frozen backbone on
every batch, today's recipe) and the feature replay (the default: stored float16 maps, only the
trainable heads run). "Trainable part alone" times the feature-mode update on batches already
sampled and held in memory: the limit a faster replay could approach. The sides are timed in
interleaved windows (the order rotates per window; the fast ones run several updates per window),
after warm-up; medians per update.

Prints a JSON list of {"metric", "ours", "lerobot", "ratio", ...}; ratio > 1 means ours is better.
"""

from __future__ import annotations

import argparse
import json
import logging
import queue
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from benchmarks import machine_info
from benchmarks.replay import (
    ACTION_DIM,
    BATCH,
    CAMERAS,
    IMAGE_SHAPE,
    STATE,
    STATE_DIM,
    build_lerobot,
    build_ours,
)
from benchmarks.resnet10_folder import make_local_resnet10_folder

UTD = 2


def _seconds(fn) -> float:
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def timed_windows(sides: dict, warmup: int, repeats: int, calls: dict[str, int]) -> dict[str, list[float]]:
    """Per side, ``repeats`` windows of ``calls[side]`` updates (seconds per update), the order of the
    sides rotating per window, so every side sees the same machine load."""
    names = list(sides)
    for name in names:
        for _ in range(warmup * calls[name]):
            sides[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for repeat in range(repeats):
        order = names[repeat % len(names) :] + names[: repeat % len(names)]
        for name in order:
            n = calls[name]
            side = sides[name]
            times[name].append(_seconds(lambda side=side, n=n: [side() for _ in range(n)]) / n)
    return times


def make_ours(folder: Path, device: str, transitions: int, feature_cache: bool = False):
    """-> (update, push_bytes, trainable_only_update or None, replay)."""
    import itertools

    from configs.learner import LearnerConfig
    from learner.export import export_policy, export_to_bytes
    from learner.sac import SACAgent
    from vision.features import FeatureEncoder

    cfg = LearnerConfig(
        image_keys=list(CAMERAS),
        image_size=IMAGE_SHAPE[-1],
        state_dim=STATE_DIM,
        action_dim=ACTION_DIM,
        batch_size=BATCH,
        utd_ratio=UTD,
        vision_model_name=str(folder),
        device=device,
        feature_cache=feature_cache,
    )
    agent = SACAgent(cfg)
    encoder = FeatureEncoder.from_config(cfg, agent.policy.backbone) if feature_cache else None
    replay = build_ours(transitions, episode_length=100, encoder=encoder)
    batches = replay.batches(BATCH)

    def push_bytes(dtype: torch.dtype | None = None) -> int:
        return len(export_to_bytes(export_policy(agent.policy, agent.update_step, dtype=dtype)))

    trainable_only = None
    if feature_cache:
        held = itertools.cycle([replay.sample(BATCH).to(agent.device) for _ in range(2 * UTD)])
        # Fresh tensors each pull (augment_features replaces dict entries, never the stored batch).
        trainable_only = lambda: agent.update(held)  # noqa: E731
    return (lambda: agent.update(batches)), push_bytes, trainable_only


def make_lerobot(folder: Path, device: str, transitions: int):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.gaussian_actor.configuration_gaussian_actor import GaussianActorConfig
    from lerobot.policies.gaussian_actor.modeling_gaussian_actor import GaussianActorPolicy
    from lerobot.rl.algorithms.sac import SACAlgorithm, SACAlgorithmConfig
    from lerobot.rl.data_sources import OnlineOfflineMixer
    from lerobot.rl.learner import push_actor_policy_to_queue
    from lerobot.rl.trainer import RLTrainer
    from lerobot.utils.constants import ACTION

    features = {key: PolicyFeature(type=FeatureType.VISUAL, shape=IMAGE_SHAPE) for key in CAMERAS}
    features[STATE] = PolicyFeature(type=FeatureType.STATE, shape=(STATE_DIM,))
    policy_config = GaussianActorConfig(
        input_features=features,
        output_features={ACTION: PolicyFeature(type=FeatureType.ACTION, shape=(ACTION_DIM - 1,))},
        device=device,
        storage_device="cpu",
        vision_encoder_name=str(folder),
        freeze_vision_encoder=True,
        shared_encoder=True,
        num_discrete_actions=3,
    )
    policy = GaussianActorPolicy(policy_config).to(device).train()
    config = SACAlgorithmConfig.from_policy_config(policy_config)
    config.utd_ratio, config.discount, config.temperature_init = UTD, 0.97, 0.01
    config.use_torch_compile = False
    algorithm = SACAlgorithm(policy, config)
    online, offline = build_lerobot(transitions, episode_length=100, use_drq=True)
    online.device = offline.device = device
    # Its learner's own loop: a 50/50 online/offline mixer of async-prefetch iterators, one
    # RLTrainer.training_step per update (SACAlgorithm.update runs the UTD loop).
    trainer = RLTrainer(algorithm, OnlineOfflineMixer(online, offline, online_ratio=0.5), batch_size=BATCH)

    def push_bytes() -> int:
        parameters: queue.Queue = queue.Queue()
        push_actor_policy_to_queue(parameters, algorithm)
        return len(parameters.get())

    return trainer.training_step, push_bytes


def run(
    device: str = "cpu", warmup: int = 1, repeats: int = 4, transitions: int = 300, fast_calls: int = 10
) -> list[dict]:
    import os

    torch.manual_seed(0)
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        folder = make_local_resnet10_folder(Path(tmp) / "resnet10", seed=0)
        ours_update, ours_push, _ = make_ours(folder, device, transitions)
        feature_update, _, trainable_update = make_ours(folder, device, transitions, feature_cache=True)
        theirs_update, theirs_push = make_lerobot(folder, device, transitions)
        sides = {
            "pixels": ours_update,
            "features": feature_update,
            "trainable": trainable_update,
            "lerobot": theirs_update,
        }
        calls = {"pixels": 1, "features": fast_calls, "trainable": fast_calls, "lerobot": 1}
        times = timed_windows(sides, warmup, repeats, calls)
        ours_bytes, theirs_bytes = ours_push(), theirs_push()
        ours_bf16_bytes = ours_push(torch.bfloat16)
    ours_times, theirs_times = times["pixels"], times["lerobot"]
    gpu = torch.cuda.get_device_name(0) if device.startswith("cuda") else None
    setup = (
        f"2 cameras {IMAGE_SHAPE}, state {STATE_DIM}, action {ACTION_DIM - 1}+gripper, batch {BATCH} (128 online + "
        f"128 demo), UTD {UTD}, 2 critics, frozen shared ResNet-10 (same local folder), device {device}"
        + (f" ({gpu})" if gpu else "; no GPU in this session")
    )
    machine = machine_info() | {"load_average": list(os.getloadavg())}
    common = {"setup": setup, "machine": machine, "warmup": warmup, "repeats": repeats}
    ours_s, theirs_s = statistics.median(ours_times), statistics.median(theirs_times)
    feature_s, trainable_s = statistics.median(times["features"]), statistics.median(times["trainable"])
    feature_updates = {
        "metric": f"learner updates/s at UTD {UTD}, feature replay (the default; {device})",
        "ours": round(1 / feature_s, 4),
        "lerobot": round(1 / theirs_s, 4),
        "ratio": round(theirs_s / feature_s, 2),
        "unit": "updates/s",
        "ratio_meaning": "ours/lerobot",
        "target_ratio": 20.0,
        "meets_target": theirs_s / feature_s >= 20.0,
        "trainable_part_alone": {
            "updates_per_s": round(1 / trainable_s, 4),
            "ratio_vs_lerobot": round(theirs_s / trainable_s, 2),
            "note": "the same update on batches already sampled: sampling excluded",
        },
        "seconds_per_update": {
            "ours_features": [round(t, 4) for t in times["features"]],
            "trainable_part_alone": [round(t, 4) for t in times["trainable"]],
            "lerobot": [round(t, 3) for t in theirs_times],
        },
        "updates_per_window": fast_calls,
    }
    updates = {
        "metric": f"learner updates/s at UTD {UTD}, pixel path (feature_cache: false; {device})",
        "ours": round(1 / ours_s, 4),
        "lerobot": round(1 / theirs_s, 4),
        "ratio": round(theirs_s / ours_s, 2),
        "unit": "updates/s",
        "ratio_meaning": "ours/lerobot",
        "target_ratio": 1.5,
        "meets_target": theirs_s / ours_s >= 1.5,
        "seconds_per_update": {
            "ours": [round(t, 3) for t in ours_times],
            "lerobot": [round(t, 3) for t in theirs_times],
        },
    }
    push = {
        "metric": "bytes per weight push",
        "ours": ours_bytes,
        "lerobot": theirs_bytes,
        "ratio": round(theirs_bytes / ours_bytes, 2),
        "unit": "bytes",
        "ratio_meaning": "lerobot/ours",
        "target_ratio": 10.0,
        "meets_target": theirs_bytes / ours_bytes >= 10.0,
    }
    push_bf16 = {
        "metric": "bytes per weight push (ours with the optional bfloat16 export)",
        "ours": ours_bf16_bytes,
        "lerobot": theirs_bytes,
        "ratio": round(theirs_bytes / ours_bf16_bytes, 2),
        "unit": "bytes",
        "ratio_meaning": "lerobot/ours",
        "note": "rounded weights: acts close to, not bitwise like, the learner's policy",
    }
    return [feature_updates | common, updates | common, push | common, push_bf16 | common]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hilserl bench learner", description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print only the JSON list")
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu", help="torch device"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed updates per side")
    parser.add_argument("--repeats", type=int, default=4, help="timed updates per side (median)")
    parser.add_argument("--transitions", type=int, default=300, help="transitions per buffer per side")
    parser.add_argument("--fast-calls", type=int, default=10, help="feature-mode updates per timing window")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    results = run(
        device=args.device,
        warmup=args.warmup,
        repeats=args.repeats,
        transitions=args.transitions,
        fast_calls=args.fast_calls,
    )
    print(json.dumps(results, indent=None if args.json else 2))
    return 0
