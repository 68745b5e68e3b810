"""Augmentation comparison on the same budget: pixel DrQ against the feature-replay options.

The task is ``lab.check_image`` in its image-only form (the state hides the mass's position
and velocity, so the policy must read them from the 64 px frame), with the same seeds, env steps,
batch and UTD for every mode. Each row is one mode: score (0 random, 1 expert), final return,
wall seconds and stored bytes per frame of the camera.

    .venv/bin/python -m lab.augment_compare [--steps 1200] [--seeds 0 1] > rows.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys

import torch

from lab.check_image import run_image_check

MODES = {
    "pixel DrQ (feature_cache: false)": dict(feature_cache=False, augment=True, pad=4),
    "features, no augmentation": dict(feature_cache=True, feature_augment="none"),
    "features, K=2 stored pixel shifts": dict(
        feature_cache=True, feature_augment="pixel_shifts", feature_shifts=2
    ),
    "features, K=4 stored pixel shifts": dict(
        feature_cache=True, feature_augment="pixel_shifts", feature_shifts=4
    ),
    "features, feature-map shift (1 cell)": dict(
        feature_cache=True, feature_augment="map_shift", feature_pad=1
    ),
}


def compare(steps: int, warmup: int, seeds: list[int], batch_size: int, modes: list[str]) -> list[dict]:
    from lab.check_image import image_check_config

    rows = []
    torch.set_num_threads(1)
    for mode in modes:
        for seed in seeds:
            # temperature_lr 1e-3: the setting the recorded table (lab/AUGMENTATION.md) ran with.
            cfg = image_check_config(seed=seed, batch_size=batch_size, temperature_lr=1e-3, **MODES[mode])
            result = run_image_check(steps, warmup, seed, cfg, None, image_only=True)
            rows.append({"mode": mode, "seed": seed, **result.__dict__})
            logging.getLogger(__name__).info("%s", rows[-1])
    return rows


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--modes", nargs="+", default=list(MODES), help="mode names (default: all)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    rows = compare(args.steps, args.warmup, args.seeds, args.batch_size, args.modes)
    sys.stdout.write(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
