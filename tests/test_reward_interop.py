"""LeRobot 0.4.4 interop: its Classifier (on our ResNet-10 through transformers) loads into ours."""

import torch

from reward.checkpoint import load_checkpoint
from reward.interop import write_transformers_resnet10
from reward.resnet10 import ResNet10, load_resnet10


def test_lerobot_save_pretrained_loads_with_same_probabilities(tmp_path):
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.sac.reward_model.configuration_classifier import RewardClassifierConfig
    from lerobot.policies.sac.reward_model.modeling_classifier import Classifier

    torch.manual_seed(0)
    net = ResNet10()
    folder = write_transformers_resnet10(tmp_path / "resnet10", net)
    # Our loader reads the same folder (no remote code) and gets the same weights.
    assert torch.equal(load_resnet10(str(folder)).embedder[0].weight, net.embedder[0].weight)

    cameras = ("observation.images.front", "observation.images.side")
    config = RewardClassifierConfig(
        model_name=str(folder),
        num_cameras=2,
        device="cpu",
        input_features={k: PolicyFeature(type=FeatureType.VISUAL, shape=(3, 128, 128)) for k in cameras},
    )
    theirs = Classifier(config)
    with torch.no_grad():  # their branch never trains (no_grad); perturb so the comparison means something
        for p in theirs.parameters():
            p.add_(0.01 * torch.randn_like(p))
    theirs.save_pretrained(tmp_path / "pretrained_model")
    theirs.eval()

    ours, info = load_checkpoint(tmp_path / "pretrained_model")
    assert info.source == "lerobot" and ours.camera_keys == list(cameras)
    images = [torch.randn(4, 3, 128, 128), torch.randn(4, 3, 128, 128)]
    with torch.no_grad():
        expected = theirs.predict(images).probabilities
        got = ours.probabilities(ours(pixels=images))
    # Same numbers up to float summation order (einsum vs multiply-and-sum).
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    assert (expected.max() - expected.min()) > 1e-3  # not a constant output
