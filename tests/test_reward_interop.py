"""LeRobot 0.6 interop, both ways, with its real Classifier (on our ResNet-10 through transformers)."""

import hashlib
import json

import torch
from safetensors.torch import load_file, save_file

from cluster.cli import main as hilserl
from configs.parsing import save_config
from reward.checkpoint import FORMATS, load_checkpoint
from reward.interop import convert_lerobot_state_dict, write_transformers_resnet10
from tests.reward_helpers import labeled_dataset, train_config
from vision.resnet10 import ResNet10, load_resnet10

CAMERAS = ("observation.images.front", "observation.images.side")


def test_lerobot_save_pretrained_loads_with_same_probabilities(tmp_path):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.rewards.classifier import Classifier, RewardClassifierConfig

    torch.manual_seed(0)
    net = ResNet10()
    folder = write_transformers_resnet10(tmp_path / "resnet10", net)
    # Our loader reads the same folder (no remote code) and gets the same weights.
    assert torch.equal(load_resnet10(str(folder)).embedder[0].weight, net.embedder[0].weight)

    config = RewardClassifierConfig(
        model_name=str(folder),
        num_cameras=2,
        device="cpu",
        input_features={k: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 128, 128)) for k in CAMERAS},
    )
    theirs = Classifier(config)
    with torch.no_grad():  # their branch never trains (no_grad); perturb so the comparison means something
        for p in theirs.parameters():
            p.add_(0.01 * torch.randn_like(p))
    theirs.save_pretrained(tmp_path / "pretrained_model")
    theirs.eval()

    ours, info = load_checkpoint(tmp_path / "pretrained_model")
    assert info.source == "lerobot" and ours.camera_keys == list(CAMERAS)
    images = [torch.randn(4, 3, 128, 128), torch.randn(4, 3, 128, 128)]
    with torch.no_grad():
        expected = theirs.predict(images).probabilities
        got = ours.probabilities(ours(pixels=images))
    # Same numbers up to float summation order (einsum vs multiply-and-sum).
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (expected.max() - expected.min()) > 1e-3  # not a constant output


def test_a_train_reward_checkpoint_loads_unchanged_in_lerobot_with_our_probabilities(tmp_path):
    """``hilserl train-reward``'s pretrained_model, as it is, in LeRobot's Classifier.from_pretrained
    (strict: every weight present, none left over): its config.json parses in LeRobot's config class
    and, for the same normalized images, LeRobot gives our probabilities. 128x128 frames: LeRobot's
    spatial embedding is fixed at the 4x4 map they give."""
    from lerobot.rewards.classifier import Classifier

    torch.manual_seed(1)
    backbone = write_transformers_resnet10(tmp_path / "resnet10", ResNet10())
    data = tmp_path / "data"
    labeled_dataset(data, image_size=128, episodes=(4, 4, 4))
    cfg = train_config(data, backbone, tmp_path / "out", steps=4, eval_freq=2)
    save_config(cfg, tmp_path / "cfg.json")
    assert hilserl(["train-reward", "--config_path", str(tmp_path / "cfg.json")]) == 0
    checkpoint = tmp_path / "out" / "pretrained_model"

    ours, info = load_checkpoint(checkpoint)
    theirs = Classifier.from_pretrained(checkpoint, strict=True)
    assert theirs.config.num_cameras == 2 and theirs.config.latent_dim == cfg.policy.latent_dim
    frames = torch.randint(0, 256, (2, 6, 3, 128, 128), dtype=torch.uint8)  # (camera, B, C, H, W)
    with torch.no_grad():
        pixels = [ours.preprocess(frames[i]) for i in range(2)]
        expected = ours.predict_proba(dict(zip(CAMERAS, frames, strict=True)))
        got = theirs.predict(pixels).probabilities
    largest = float((got - expected).abs().max())
    print(f"largest probability difference, ours vs LeRobot's Classifier: {largest:.2e}")
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert info.source == "hilserl_ray" and info.thresholds


def test_a_format_1_checkpoint_still_loads(tmp_path):
    """Format 1 (this project before LeRobot 0.6): our fields inside config.json, our weight names."""
    torch.manual_seed(2)
    backbone = write_transformers_resnet10(tmp_path / "resnet10", ResNet10())
    data = tmp_path / "data"
    labeled_dataset(data, image_size=32)
    cfg = train_config(data, backbone, tmp_path / "out", steps=2)
    save_config(cfg, tmp_path / "cfg.json")
    assert hilserl(["train-reward", "--config_path", str(tmp_path / "cfg.json")]) == 0
    new = tmp_path / "out" / "pretrained_model"
    model, info = load_checkpoint(new)

    old = tmp_path / "old"
    old.mkdir()
    weights = convert_lerobot_state_dict(load_file(str(new / "model.safetensors")), info.config)
    save_file(weights, str(old / "model.safetensors"), metadata={"format": "pt"})
    config = {
        **json.loads((new / "config.json").read_text()),
        **json.loads((new / "hilserl.json").read_text()),
    }
    config["format"] = FORMATS[1]
    config["weights_sha256"] = hashlib.sha256((old / "model.safetensors").read_bytes()).hexdigest()
    (old / "config.json").write_text(json.dumps(config))
    loaded, old_info = load_checkpoint(old)
    assert old_info.source == "hilserl_ray" and old_info.thresholds == info.thresholds
    frames = {k: torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8) for k in CAMERAS}
    assert torch.equal(loaded.predict_proba(frames), model.predict_proba(frames))
