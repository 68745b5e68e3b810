"""An interrupted learner checkpoint save leaves the previous checkpoint of the same step usable."""

from __future__ import annotations

import pytest
import torch

import learner.checkpoint as checkpoint
from learner.sac import SACAgent
from tests.learner_fixtures import single_thread_torch, tiny_config  # noqa: F401 (autouse fixture)


def test_a_save_that_crashes_halfway_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    torch.manual_seed(0)
    agent = SACAgent(tiny_config(image_keys=[], action_dim=2))
    first = checkpoint.save_checkpoint(agent, tmp_path / "ckpt", extra={"copy": "old"})
    before = {p.name: p.read_bytes() for p in first.iterdir()}
    real = checkpoint.save_file
    calls = []

    def crash_on_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # model written, crash before rng.safetensors
            raise KeyboardInterrupt("power cut")
        return real(*args, **kwargs)

    monkeypatch.setattr(checkpoint, "save_file", crash_on_second)
    with torch.no_grad():
        agent.log_alpha.add_(1.0)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(agent, tmp_path / "ckpt", extra={"copy": "new"})
    assert {p.name: p.read_bytes() for p in first.iterdir()} == before
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [first.name, "latest"]  # no leftovers
    monkeypatch.setattr(checkpoint, "save_file", real)
    fresh = SACAgent(tiny_config(image_keys=[], action_dim=2))
    assert checkpoint.load_checkpoint(fresh, tmp_path / "ckpt")["extra"] == {"copy": "old"}
