"""One real Ray Train run (TorchTrainer, one CPU worker) through the train-reward job code."""

import os
import signal

import pytest

from cluster.train_job import train_and_export
from reward.checkpoint import load_checkpoint
from tests.reward_helpers import labeled_dataset, train_config, write_backbone


@pytest.mark.ray
@pytest.mark.slow
def test_ray_train_job_exports_a_loadable_checkpoint(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)  # never attach to a stray cluster
    root = tmp_path / "data"
    labeled_dataset(root, image_size=32, episodes=(4, 4, 4))
    cfg = train_config(root, write_backbone(tmp_path / "resnet10"), tmp_path / "out", use_ray=True)
    sigint = signal.getsignal(signal.SIGINT)
    path = train_and_export(cfg, quiet=True)
    # Ray Train's fit() installs its own SIGINT handler; a later Ctrl-C in this process (the demo's
    # RL run) must reach ours, not Ray Train's abort of a controller that is gone.
    assert signal.getsignal(signal.SIGINT) is sigint

    assert path == tmp_path / "out" / "pretrained_model"
    model, info = load_checkpoint(path)
    assert model.camera_keys == ["observation.images.front", "observation.images.side"]
    assert info.metrics["step"] == 2 and "best_f1" in info.thresholds
    # Ray Train stored the run under the storage path with a unique name.
    runs = [p for p in (tmp_path / "out" / "ray").iterdir() if p.is_dir()]
    assert len(runs) == 1 and runs[0].name.startswith("reward-")
    assert list(runs[0].glob("checkpoint_*"))
    assert os.environ.get("RAY_ADDRESS") is None
