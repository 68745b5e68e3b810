"""The classifier trains on the pixels it scores: what the recorder stores and the training data
path decodes must be the frames the robot hands the reward actor at run time."""

from __future__ import annotations

import logging

import numpy as np
import torch

from actors.intervention.scripted import InterventionSchedule, ScriptedHuman
from actors.loop.record import Recorder
from actors.robots.contract import FRONT, WRIST
from actors.robots.sim.env import SO101SimEnv
from actors.robots.sim.expert import ScriptedExpert
from actors.roles.evaluate import to_chw
from configs.dataset import DatasetConfig
from configs.env import EnvConfig, ProcessorConfig, ResetConfig, TeleopConfig
from reward.data import load_labeled_frames
from tests.rl_fixtures import write_classifier

SIZE = 32


class _Capture:
    """Wraps the recorder's sink: keeps each step's camera frames exactly as the env returned them."""

    def __init__(self, sink) -> None:
        self.sink, self.frames = sink, {FRONT: [], WRIST: []}

    def add(self, step) -> None:
        for key in self.frames:
            self.frames[key].append(step.observation[key].copy())
        self.sink.add(step)

    def __getattr__(self, name):
        return getattr(self.sink, name)


def _record(root, video: bool) -> dict[str, np.ndarray]:
    cfg = EnvConfig(
        task="reach_grasp",
        image_size=SIZE,
        seed=3,
        mode="record",
        repo_id="test/frames",
        num_episodes=2,
        number_of_steps_after_success=2,
        video=video,
        teleop=TeleopConfig(type="scripted", schedule="always"),
        processor=ProcessorConfig(reset=ResetConfig(control_time_s=2.5)),
    )
    env = SO101SimEnv(cfg)
    human = ScriptedHuman(ScriptedExpert(env, seed=3), InterventionSchedule("always"))
    recorder = Recorder(cfg, env, human, root)
    capture = recorder.sink = _Capture(recorder.sink)
    summary = recorder.run()
    assert summary.episodes == 2 and summary.successes >= 1
    return {k: np.stack(v) for k, v in capture.frames.items()}


def _training_frames(root) -> dict[str, torch.Tensor]:
    from reward.checkpoint import read_checkpoint_info

    policy = read_checkpoint_info(write_classifier(root.parent / f"{root.name}-clf", size=SIZE)).config
    frames, _ = load_labeled_frames(DatasetConfig(root=str(root)), policy, require_both_classes=False)
    return frames.images


def test_images_store_the_pixels_the_reward_actor_scores(tmp_path):
    raw = _record(tmp_path / "png", video=False)
    trained_on = _training_frames(tmp_path / "png")
    for key in (FRONT, WRIST):
        scored = torch.stack([torch.from_numpy(to_chw(f)) for f in raw[key]])  # the robot's conversion
        assert trained_on[key].shape == scored.shape
        assert torch.equal(trained_on[key], scored), f"{key}: the classifier would train on other pixels"


def test_video_frames_differ_from_the_live_ones(tmp_path):
    """Why the simulated demo records images: AV1 in yuv420p changes the pixels the classifier learns from."""
    raw = _record(tmp_path / "av1", video=True)
    trained_on = _training_frames(tmp_path / "av1")[FRONT].float()
    scored = torch.stack([torch.from_numpy(to_chw(f)) for f in raw[FRONT]]).float()
    assert (trained_on - scored).abs().mean() > 0.5


def test_the_demo_records_images():
    from cluster.demo import DemoConfig, budget_overrides
    from configs import preset_path
    from configs.parsing import parse_config

    for budget in ("tiny", "small", "full"):
        cfg = parse_config(
            DemoConfig, ["--config_path", preset_path("sim_default"), *budget_overrides(budget)]
        )
        assert cfg.env.video is False, budget


def test_a_classifier_trained_on_video_frames_says_so_at_run_time(tmp_path, caplog):
    from actors.roles.reward import warn_if_trained_on_video
    from reward.checkpoint import read_checkpoint_info
    from reward.dataset import dataset_fingerprint

    info = read_checkpoint_info(write_classifier(tmp_path / "clf", size=SIZE))
    for storage, warned in (("image", False), ("video", True)):
        info.metrics = {
            "dataset": {"camera_storage": {FRONT: "image"}, "merged": [{"camera_storage": {WRIST: storage}}]}
        }
        caplog.clear()
        # At the logger itself: an earlier test in the same process may have raised the root's level.
        with caplog.at_level(logging.WARNING, logger="actors.roles.reward"):
            assert warn_if_trained_on_video(info) is warned
        assert ("--env.video=false" in caplog.text) is warned
    # The fingerprint a checkpoint records names each camera's storage.
    _record(tmp_path / "png", video=False)
    assert dataset_fingerprint(tmp_path / "png")["camera_storage"] == {FRONT: "image", WRIST: "image"}
