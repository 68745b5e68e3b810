"""benchmarks/classifier.py helpers: device from torch, accuracy at matched step counts."""

import torch

from benchmarks import classifier


def test_device_comes_from_torch(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "NVIDIA H200")
    assert "NVIDIA H200" in classifier.device_description()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert classifier.device_description().startswith("cpu")


def test_accuracy_at_matched_steps():
    history = [{"step": 200, "accuracy": 0.8}, {"step": 400, "accuracy": 0.95}]
    assert classifier.at_step(history, 333)["accuracy"] == 0.8
    assert classifier.at_step(history, 100) is None
