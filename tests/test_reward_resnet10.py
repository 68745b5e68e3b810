"""ResNet-10 backbone: helper2424/resnet10 names and shapes, SAME padding, offline loading, preprocessing."""

import logging

import pytest
import torch
from safetensors.torch import save_file

from configs.errors import UserError
from vision.preprocess import IMAGENET_MEAN, IMAGENET_STD, preprocess_images, preprocessing_spec
from vision.resnet10 import ResNet10, SpatialLearnedEmbeddings, feature_map_size, load_resnet10


def _reference_shapes() -> dict[str, tuple[int, ...]]:
    """The helper2424/resnet10 state dict, written out from the published layout."""
    ref = {"embedder.0.weight": (64, 3, 7, 7), "embedder.1.weight": (64,), "embedder.1.bias": (64,)}
    widths = [64, 64, 128, 256, 512]
    for i in range(4):
        cin, cout = widths[i], widths[i + 1]
        p = f"encoder.stages.{i}."
        ref[p + "conv1.conv.weight"] = (cout, cin, 3, 3)
        ref[p + "norm1.weight"] = ref[p + "norm1.bias"] = (cout,)
        ref[p + "conv2.conv.weight"] = (cout, cout, 3, 3)
        ref[p + "norm2.weight"] = ref[p + "norm2.bias"] = (cout,)
        if i > 0:
            ref[p + "shortcut.0.conv.weight"] = (cout, cin, 1, 1)
            ref[p + "shortcut.1.weight"] = ref[p + "shortcut.1.bias"] = (cout,)
    return ref


def test_state_dict_names_and_shapes_match_reference():
    state = ResNet10().state_dict()
    assert {k: tuple(v.shape) for k, v in state.items()} == _reference_shapes()
    assert 4.8e6 < sum(v.numel() for v in state.values()) < 5.0e6


@pytest.mark.parametrize("size,expected", [(128, (4, 4)), (84, (3, 3)), (64, (2, 2))])
def test_feature_map_size_matches_real_forward(size, expected):
    assert feature_map_size(size) == expected
    with torch.no_grad():
        out = ResNet10()(torch.randn(1, 3, size, size))
    assert tuple(out.shape) == (1, 512, *expected)


def test_same_max_pool_pads_bottom_right_with_minus_inf():
    net = ResNet10()
    pool = net.embedder[3]
    x = -torch.ones(1, 1, 4, 4)  # all negative: a zero pad would leak 0 into the max
    out = pool(x)
    assert out.shape[-2:] == (2, 2) and torch.all(out == -1)


def test_spatial_embedding_shape_and_order():
    emb = SpatialLearnedEmbeddings(channels=5, height=3, width=3, num_features=2)
    x = torch.randn(4, 5, 3, 3)
    out = emb(x)
    assert out.shape == (4, 10)
    # channel-major flattening: entry c*K+k is sum_hw x[:, c] * kernel[c, :, :, k]
    manual = (x[:, 2] * emb.kernel[2, :, :, 1]).sum(dim=(1, 2))
    torch.testing.assert_close(out[:, 2 * 2 + 1], manual)
    with pytest.raises(ValueError, match="feature_map_size"):
        emb(torch.randn(1, 5, 4, 4))


def _save_weights(folder, prefix="", fmt="safetensors"):
    torch.manual_seed(7)
    net = ResNet10()
    state = {prefix + k: v.contiguous() for k, v in net.state_dict().items()}
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "safetensors":
        save_file(state, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return net


@pytest.mark.parametrize("prefix,fmt", [("", "safetensors"), ("model.", "safetensors"), ("resnet.", "bin")])
def test_load_from_local_folder(tmp_path, prefix, fmt):
    ref = _save_weights(tmp_path / "w", prefix, fmt)
    net = load_resnet10(str(tmp_path / "w"))
    for k, v in ref.state_dict().items():
        assert torch.equal(net.state_dict()[k], v), k


@pytest.mark.parametrize("repo_id", ["helper2424/resnet10", "lerobot/resnet10"])  # LeRobot 0.4's name, 0.6's
def test_load_from_fake_hub_cache(repo_id, tmp_path, monkeypatch):
    import huggingface_hub.constants as hf_constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / f"models--{repo_id.replace('/', '--')}"
    ref = _save_weights(repo / "snapshots" / commit)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    net = load_resnet10(repo_id)
    assert torch.equal(net.embedder[0].weight, ref.embedder[0].weight)


def test_missing_weights_error_or_loud_random(tmp_path, monkeypatch, caplog):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="neither a local folder nor in the Hugging Face cache"):
        load_resnet10("helper2424/resnet10")
    with caplog.at_level(logging.WARNING):
        net = load_resnet10("helper2424/resnet10", allow_random=True)
    assert isinstance(net, ResNet10) and "RANDOM" in caplog.text


def test_bad_weights_give_user_error(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    state = {k: v.contiguous() for k, v in ResNet10().state_dict().items()}
    state["encoder.stages.3.conv2.conv.weight"] = torch.zeros(512, 512, 1, 1)
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(UserError, match=r"encoder\.stages\.3\.conv2\.conv\.weight has shape"):
        load_resnet10(str(folder))
    del state["encoder.stages.3.conv2.conv.weight"]
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(UserError, match="lacks 1 ResNet-10 weights"):
        load_resnet10(str(folder))
    (folder / "model.safetensors").unlink()
    with pytest.raises(UserError, match="no model.safetensors"):
        load_resnet10(str(folder))


def test_preprocess_layouts_dtypes_and_resize():
    rng = torch.Generator().manual_seed(0)
    chw = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8, generator=rng)
    hwc = chw.permute(0, 2, 3, 1).contiguous()
    a, b = preprocess_images(chw, None), preprocess_images(hwc, None)
    assert a.dtype == torch.float32 and a.shape == (2, 3, 32, 32)
    assert torch.equal(a, b)
    assert torch.equal(a, preprocess_images(chw.float() / 255.0, None))
    pixel = chw[0, :, 0, 0].float() / 255.0
    expected = (pixel - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(a[0, :, 0, 0], expected)
    assert preprocess_images(hwc, 16).shape == (2, 3, 16, 16)
    spec = preprocessing_spec(16)
    assert spec["resize"]["size"] == [16, 16] and spec["normalize"]["mean"] == list(IMAGENET_MEAN)
