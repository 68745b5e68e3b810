"""`hilserl bench classifier [--json]`: our reward classifier recipe against LeRobot 0.6's, in one process.

Recipe (seed 003): 2000 optimizer steps at batch 32, AdamW lr 1e-4 wd 0.01, grad clip 1.0, on the
generated two-camera 128x128 dataset of ``benchmarks/classifier_data.py`` (~1300 frames), with the
same episode-wise validation split for both.

- Ours: ``reward.train.run`` as the command runs it (decoding the videos, caching backbone
  features, class-balanced batches), timed end to end.
- LeRobot: its ``Classifier`` trained its way: ``forward(batch)`` + AdamW + clipping on shuffled
  batches of the training frames. It gets the frames already decoded and normalized in memory
  (a head start: its own pipeline decodes video every step).
- Both use the same backbone: a ResNet-10 with fixed-seed random weights (no pretrained weights
  can be downloaded here), loaded by LeRobot through transformers from a local folder that wraps
  our ResNet10 (``reward.interop.write_transformers_resnet10``).
- Wall-clock excludes evaluation for both (evaluations every ``--eval_every`` steps feed the
  "time to 95 % validation accuracy"). Inference frames/s at batch 1 and 32: medians over repeats
  after warm-up; ours from uint8 frames (preprocessing included), LeRobot's ``predict`` from
  normalized floats.

``--max_lerobot_s`` caps LeRobot's run on slow machines: its wall-clock for the full recipe is
then extrapolated from the steps it did, and the JSON says so.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import machine_info
from benchmarks.classifier_data import CAMERAS, ensure_dataset
from configs.dataset import DatasetConfig
from configs.reward import RewardClassifierConfig, RewardTrainConfig
from reward.checkpoint import load_checkpoint, save_checkpoint
from reward.data import episode_split, load_labeled_frames
from reward.interop import write_transformers_resnet10
from reward.metrics import binary_metrics
from reward.train import run
from vision.preprocess import preprocess_images
from vision.resnet10 import ResNet10

logger = logging.getLogger(__name__)
TARGET = 0.95


def _parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="hilserl bench classifier")
    p.add_argument("--json", action="store_true", help="print only the JSON object")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--eval_every", type=int, default=100)
    p.add_argument("--data_dir", default=str(Path(tempfile.gettempdir()) / "hilserl_bench" / "classifier_v1"))
    p.add_argument(
        "--max_lerobot_s", type=float, default=None, help="stop LeRobot's run after this many seconds"
    )
    p.add_argument("--skip_lerobot", action="store_true")
    p.add_argument("--seed", type=int, default=1000)
    p.add_argument("--interleaved_rounds", type=int, default=15, help="alternated windows of step timings")
    p.add_argument("--window", type=int, default=3, help="steps per side in each alternated window")
    return p.parse_args(argv)


def _median_fps(fn, batch: int, repeats: int) -> float:
    fn()  # warm-up
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return batch / statistics.median(times)


def _first_reaching(history: list[dict], key: str = "train_s") -> float | None:
    for entry in history:
        if entry["accuracy"] >= TARGET:
            return round(entry[key], 2)
    return None


def run_ours(cfg: RewardTrainConfig) -> dict:
    start = time.perf_counter()
    result = run(cfg)
    wall = time.perf_counter() - start
    eval_total = sum(h["eval_s"] for h in result.history)
    # Time to 95 %: elapsed at that evaluation minus the evaluations before it (both sides exclude eval).
    spent = 0.0
    for h in result.history:
        h["train_s"] = h["elapsed_s"] - spent
        spent += h["eval_s"]
    return {
        "seconds": wall - eval_total,
        "val_acc": result.history[-1]["accuracy"],
        "s_to_95": _first_reaching(result.history),
        "checkpoint": result.best_checkpoint,
        "history": result.history,
    }


class LeRobotRun:
    """LeRobot 0.6's Classifier trained the way lerobot-train does it (forward + AdamW + clip)."""

    def __init__(self, backbone_dir: Path, frames, image_size: int):
        from lerobot.configs.types import FeatureType, PolicyFeature
        from lerobot.rewards.classifier import Classifier
        from lerobot.rewards.classifier import RewardClassifierConfig as LRConfig

        self.keys = list(frames.camera_keys)
        config = LRConfig(
            model_name=str(backbone_dir),
            num_cameras=len(self.keys),
            device="cpu",
            input_features={
                k: PolicyFeature(type=FeatureType.VISUAL, shape=(3, image_size, image_size))
                for k in self.keys
            },
        )
        self.model = Classifier(config)
        preset = config.get_optimizer_preset()
        self.optimizer = torch.optim.AdamW(
            [p for p in self.model.parameters() if p.requires_grad],
            lr=preset.lr,
            weight_decay=preset.weight_decay,
        )
        self.clip = preset.grad_clip_norm
        # Decoded and normalized once, in memory (LeRobot's own loader would decode video per sample).
        self.pixels = {k: preprocess_images(frames.images[k], image_size) for k in self.keys}
        self.labels = frames.labels

    def batch(self, idx: torch.Tensor) -> dict:
        out = {k: self.pixels[k][idx] for k in self.keys}
        out["next.reward"] = self.labels[idx]
        return out

    def train(self, train_idx, val_idx, steps, batch_size, eval_every, seed, max_s) -> dict:
        g = torch.Generator().manual_seed(seed)
        order, cursor = train_idx[torch.randperm(len(train_idx), generator=g)], 0
        train_s, history = 0.0, []
        steps_done = 0
        for step in range(1, steps + 1):
            start = time.perf_counter()
            if cursor + batch_size > len(order):  # a new shuffled epoch (EpisodeAwareSampler(shuffle=True))
                order, cursor = train_idx[torch.randperm(len(train_idx), generator=g)], 0
            idx = order[cursor : cursor + batch_size]
            cursor += batch_size
            self.model.train()
            loss, _ = self.model.forward(self.batch(idx))
            self.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip)
            self.optimizer.step()
            train_s += time.perf_counter() - start
            steps_done = step
            if step % eval_every == 0 or step == steps:
                history.append({"step": step, "train_s": train_s, "accuracy": self.evaluate(val_idx)})
                logger.info("lerobot step %d: %.1fs, val acc %.4f", step, train_s, history[-1]["accuracy"])
            if max_s is not None and train_s > max_s:
                if not history or history[-1]["step"] != step:
                    history.append({"step": step, "train_s": train_s, "accuracy": self.evaluate(val_idx)})
                break
        return {"seconds": train_s, "steps_done": steps_done, "history": history}

    @torch.no_grad()
    def probabilities(self, idx: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        out = []
        for s in range(0, len(idx), 64):
            part = idx[s : s + 64]
            out.append(self.model.predict([self.pixels[k][part] for k in self.keys]).probabilities)
        return torch.cat(out)

    def evaluate(self, idx: torch.Tensor) -> float:
        return binary_metrics(self.probabilities(idx), self.labels[idx], 0.5)["accuracy"]


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_costs(
    model, theirs: LeRobotRun, frames, train_idx, batch_size: int, rounds: int, seed: int, window: int = 3
) -> dict:
    """Per-step costs measured alternately (ours, LeRobot, ours, ...), so both see the same machine load.

    On a shared CPU the load changes over minutes; the sequential runs above then compare
    different machines. Alternating single steps and taking medians removes most of that.
    """
    g = torch.Generator().manual_seed(seed)
    model.train()
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4, weight_decay=0.01)
    chunk = train_idx[:batch_size]
    with torch.no_grad():
        cached = [
            model.backbone_features(model.preprocess(frames.images[k][chunk])) for k in model.camera_keys
        ]
    labels = frames.labels[chunk]

    def ours_step():  # what reward.train.run does per step once features are cached (one thread)
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            _ours_step()
        finally:
            torch.set_num_threads(threads)

    def _ours_step():
        feats = [c[torch.randint(0, len(chunk), (batch_size,), generator=g)] for c in cached]
        loss = model.loss(model(features=feats), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.trainable_parameters(), 1.0)
        optimizer.step()

    def backbone_chunk():  # feature caching throughput: one camera, batch_size frames
        with torch.no_grad():
            model.backbone_features(model.preprocess(frames.images[model.camera_keys[0]][chunk]))

    def theirs_step():
        theirs.model.train()
        loss, _ = theirs.model.forward(theirs.batch(chunk))
        theirs.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(theirs.model.parameters(), theirs.clip)
        theirs.optimizer.step()

    one = {k: frames.images[k][chunk[:1]] for k in model.camera_keys}
    many = {k: frames.images[k][chunk] for k in model.camera_keys}
    pix1 = [theirs.pixels[k][chunk[:1]] for k in theirs.keys]
    pix32 = [theirs.pixels[k][chunk] for k in theirs.keys]
    model.eval()
    theirs.model.eval()

    def ours_infer(images):
        return lambda: model.predict_proba(images)

    def theirs_infer(pixels):
        def call():
            with torch.no_grad():
                theirs.model.predict(pixels)

        return call

    times: dict[str, list[float]] = {
        k: [] for k in ("ours", "theirs", "backbone", "oi1", "ti1", "oi32", "ti32")
    }
    for fn in (ours_step, theirs_step, backbone_chunk):  # warm-up
        fn()
    load = [_load_average()]
    for _ in range(rounds):
        # One window per side, alternating: both sides see the same machine load within a round.
        model.train()
        times["ours"] += [_timed(ours_step) for _ in range(window)]
        times["theirs"] += [_timed(theirs_step) for _ in range(window)]
        times["backbone"] += [_timed(backbone_chunk) for _ in range(window)]
        model.eval()
        theirs.model.eval()
        times["oi1"].append(_timed(ours_infer(one)))
        times["ti1"].append(_timed(theirs_infer(pix1)))
        times["oi32"].append(_timed(ours_infer(many)))
        times["ti32"].append(_timed(theirs_infer(pix32)))
    load.append(_load_average())
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "rounds": rounds,
        "window_steps": window,
        "load_average_1m": load,
        "ours_step_is": "one step on cached backbone features (the backbone ran once per frame beforehand)",
        "lerobot_step_is": "one step that runs the frozen backbone on every image of the batch",
        "ours_step_ms": round(1000 * med["ours"], 2),
        "lerobot_step_ms": round(1000 * med["theirs"], 2),
        "backbone_frames_per_s": round(batch_size / med["backbone"], 1),
        "infer_fps_b1": round(1 / med["oi1"], 1),
        "lerobot_infer_fps_b1": round(1 / med["ti1"], 1),
        "infer_fps_b32": round(batch_size / med["oi32"], 1),
        "lerobot_infer_fps_b32": round(batch_size / med["ti32"], 1),
    }


def _load_average() -> float | None:
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):
        return None


def device_description() -> str:
    """The device the numbers ran on, from torch (never a fixed phrase)."""
    if torch.cuda.is_available():
        return f"cuda ({torch.cuda.get_device_name(0)}); benchmark tensors on cpu"
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads); torch sees no CUDA device"


def at_step(history: list[dict], steps: int) -> dict | None:
    """The last evaluation at or before ``steps`` (accuracy at a matched step count)."""
    done = [h for h in history if h["step"] <= steps]
    return done[-1] if done else None


def main(argv: list[str]) -> int:
    args = _parse(argv)
    load_start = _load_average()
    logging.basicConfig(level=logging.WARNING if args.json else logging.INFO)
    torch.manual_seed(0)
    root, summary = ensure_dataset(args.data_dir)
    work = Path(tempfile.mkdtemp(prefix="bench_classifier_"))
    backbone_dir = write_transformers_resnet10(work / "resnet10", ResNet10())  # seed 0: same weights for both

    policy = RewardClassifierConfig(model_name=str(backbone_dir), num_cameras=len(CAMERAS))
    cfg = RewardTrainConfig(
        policy=policy,
        dataset=DatasetConfig(repo_id="bench/classifier", root=str(root)),
        output_dir=str(work / "ours"),
        steps=args.steps,
        batch_size=args.batch_size,
        eval_freq=args.eval_every,
        log_freq=args.eval_every,
        seed=args.seed,
        use_ray=False,
    )
    decode_start = time.perf_counter()
    frames, _ = load_labeled_frames(cfg.dataset, policy)
    decode_s = time.perf_counter() - decode_start
    train_eps, val_eps = episode_split(frames.episodes, cfg.val_fraction, cfg.seed)  # what run() uses
    train_idx, val_idx = frames.indices_of(train_eps), frames.indices_of(val_eps)

    ours = run_ours(cfg)
    model, _ = load_checkpoint(ours["checkpoint"])
    # Round trip: save and reload, probabilities must be bitwise equal.
    val_images = {k: frames.images[k][val_idx] for k in model.camera_keys}
    before = model.predict_proba(val_images)
    save_checkpoint(work / "roundtrip", model)
    reloaded, _ = load_checkpoint(work / "roundtrip")
    roundtrip_equal = bool(torch.equal(before, reloaded.predict_proba(val_images)))
    one = {k: frames.images[k][val_idx[:1]] for k in model.camera_keys}
    many = {k: frames.images[k][val_idx[:32]] for k in model.camera_keys}
    infer_b1 = _median_fps(lambda: model.predict_proba(one), 1, 50)
    infer_b32 = _median_fps(lambda: model.predict_proba(many), 32, 10)

    report = {
        "ours_s": round(ours["seconds"], 2),
        "ours_val_acc": round(ours["val_acc"], 4),
        "ours_best_val_acc": round(max(h["accuracy"] for h in ours["history"]), 4),
        "ours_s_to_95": ours["s_to_95"],
        "infer_fps_b1": round(infer_b1, 1),
        "infer_fps_b32": round(infer_b32, 1),
        "roundtrip_bitwise_equal": roundtrip_equal,
    }
    if not args.skip_lerobot:
        theirs = LeRobotRun(backbone_dir, frames, 128)
        result = theirs.train(
            train_idx, val_idx, args.steps, args.batch_size, args.eval_every, args.seed, args.max_lerobot_s
        )
        extrapolated = result["steps_done"] < args.steps
        lerobot_s = result["seconds"] * args.steps / result["steps_done"]
        pix1 = [theirs.pixels[k][val_idx[:1]] for k in theirs.keys]
        pix32 = [theirs.pixels[k][val_idx[:32]] for k in theirs.keys]
        theirs.model.eval()
        with torch.no_grad():
            lr_b1 = _median_fps(lambda: theirs.model.predict(pix1), 1, 20)
            lr_b32 = _median_fps(lambda: theirs.model.predict(pix32), 32, 5)
        report |= {
            "lerobot_s": round(lerobot_s, 2),
            "speedup": round(lerobot_s / ours["seconds"], 1),
            "lerobot_val_acc": round(result["history"][-1]["accuracy"], 4),
            "lerobot_best_val_acc": round(max(h["accuracy"] for h in result["history"]), 4),
            "lerobot_s_to_95": _first_reaching(result["history"]),
            "lerobot_infer_fps_b1": round(lr_b1, 1),
            "lerobot_infer_fps_b32": round(lr_b32, 1),
            "lerobot_steps_done": result["steps_done"],
            "lerobot_s_extrapolated": extrapolated,
        }
        matched = at_step(ours["history"], result["steps_done"])
        report["matched_steps"] = {
            "steps": result["steps_done"],
            "ours_val_acc": round(matched["accuracy"], 4) if matched else None,
            "ours_eval_step": matched["step"] if matched else None,
            "lerobot_val_acc": round(result["history"][-1]["accuracy"], 4),
            "how": "accuracy of both recipes after the same number of optimizer steps "
            "(ours at LeRobot's step count; LeRobot stops at max_lerobot_s)",
        }
        costs = interleaved_costs(
            model, theirs, frames, train_idx, args.batch_size, args.interleaved_rounds, args.seed, args.window
        )
        cameras = len(model.camera_keys)
        ours_est = (
            decode_s
            + cameras * len(frames) / costs["backbone_frames_per_s"]
            + args.steps * costs["ours_step_ms"] / 1000
        )
        lerobot_est = args.steps * costs["lerobot_step_ms"] / 1000
        report["interleaved"] = costs | {
            "decode_s": round(decode_s, 2),
            "ours_recipe_s_est": round(ours_est, 1),
            "lerobot_recipe_s_est": round(lerobot_est, 1),
            "speedup_est": round(lerobot_est / ours_est, 1),
            "how": "recipe estimate = decode + feature caching (cameras x frames / backbone fps) + steps x step cost; "
            "LeRobot = steps x step cost; step costs are medians of alternated single steps",
        }
    report |= {
        "recipe": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "eval_every": args.eval_every,
            "lr": 1e-4,
        },
        "dataset": summary
        | {
            "root": str(root),
            "train_episodes": train_eps,
            "val_episodes": val_eps,
            "val_frames": len(val_idx),
        },
        "backbone": "ResNet-10 (helper2424/resnet10 architecture), random weights, torch seed 0, same for both",
        "notes": "wall-clock excludes evaluation; LeRobot gets pre-decoded normalized frames; ours includes video decoding and feature caching",
        "ours_history": [
            {
                k: round(v, 4) if isinstance(v, float) else v
                for k, v in h.items()
                if k in ("step", "train_s", "accuracy", "f1", "loss")
            }
            for h in ours["history"]
        ],
        "machine": machine_info()
        | {"device": device_description(), "load_average_1m": {"start": load_start, "end": _load_average()}},
    }
    print(json.dumps(report, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
