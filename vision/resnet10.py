"""The HIL-SERL ResNet-10 backbone, with the parameter names of ``helper2424/resnet10``.

HIL-SERL (``serl_launcher/vision/resnet_v1.py``) encodes camera images with a frozen ResNet-10 whose
convolutions and max pool use JAX "SAME" padding. LeRobot loads a PyTorch port of it from the Hub
with remote code; building the same architecture under the same parameter names lets us load those
weights from a local folder or the Hugging Face cache with no network and no remote code.

    net = load_resnet10("helper2424/resnet10")          # hub cache only, never downloads
    features = net(preprocess_images(images, 128))     # (B, 512, 4, 4)

``SpatialLearnedEmbeddings`` is HIL-SERL's pooling of that feature map, sized from the real map
(``feature_map_size``) instead of a hard-coded 4x4, so 84x84 inputs work too.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from configs.errors import UserError

logger = logging.getLogger(__name__)

EMBEDDING_SIZE = 64
HIDDEN_SIZES = (64, 128, 256, 512)
GROUPS = 4
# Checkpoints written from a wrapper module carry one of these in front of the backbone's names.
KNOWN_PREFIXES = ("model.", "resnet.", "encoder.model.", "backbone.", "module.")


_WARNED_RANDOM: set[str] = set()


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """JAX/TF "SAME" padding for one axis: output ceil(size/stride), the extra pixel goes after."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SameConv2d(nn.Module):
    """A bias-free conv with JAX "SAME" padding; the weight lives at ``<name>.conv.weight``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=0, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_padding(x.shape[-2], self.kernel_size, self.stride)
        left, right = _same_padding(x.shape[-1], self.kernel_size, self.stride)
        return self.conv(F.pad(x, (left, right, top, bottom)))


class SameMaxPool2d(nn.Module):
    """3x3 stride-2 max pool with JAX "SAME" padding (pad value -inf, extra pixel bottom/right)."""

    def __init__(self, kernel_size: int = 3, stride: int = 2):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        top, bottom = _same_padding(x.shape[-2], self.kernel_size, self.stride)
        left, right = _same_padding(x.shape[-1], self.kernel_size, self.stride)
        x = F.pad(x, (left, right, top, bottom), value=float("-inf"))
        return F.max_pool2d(x, self.kernel_size, self.stride)


class BasicBlock(nn.Module):
    """Two 3x3 SAME convs with GroupNorm, a projection shortcut when the width changes, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.conv1 = SameConv2d(in_channels, out_channels, 3, stride)
        self.norm1 = nn.GroupNorm(GROUPS, out_channels, eps=1e-5)
        self.conv2 = SameConv2d(out_channels, out_channels, 3, 1)
        self.norm2 = nn.GroupNorm(GROUPS, out_channels, eps=1e-5)
        self.shortcut = None
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                SameConv2d(in_channels, out_channels, 1, stride), nn.GroupNorm(GROUPS, out_channels, eps=1e-5)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x if self.shortcut is None else self.shortcut(x)
        out = F.relu(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return F.relu(out + residual)


class ResNet10Encoder(nn.Module):
    """The four stages; a module of its own so the names read ``encoder.stages.N``."""

    def __init__(self):
        super().__init__()
        widths = (EMBEDDING_SIZE, *HIDDEN_SIZES)
        self.stages = nn.ModuleList(
            BasicBlock(widths[i], widths[i + 1], stride=1 if i == 0 else 2) for i in range(len(HIDDEN_SIZES))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for stage in self.stages:
            x = stage(x)
        return x


class ResNet10(nn.Module):
    """ResNet-10: (B, 3, H, W) ImageNet-normalized float -> (B, 512, h, w) feature map."""

    out_channels = HIDDEN_SIZES[-1]

    def __init__(self):
        super().__init__()
        self.embedder = nn.Sequential(
            nn.Conv2d(3, EMBEDDING_SIZE, kernel_size=7, stride=2, padding=3, bias=False),
            nn.GroupNorm(GROUPS, EMBEDDING_SIZE, eps=1e-5),
            nn.ReLU(),
            SameMaxPool2d(3, 2),
        )
        self.encoder = ResNet10Encoder()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(self.embedder(x))


@functools.lru_cache(maxsize=32)
def feature_map_size(image_size: int, width: int | None = None) -> tuple[int, int]:
    """(h, w) of the feature map for an image_size (x width) input, from a dry run on the meta device."""
    with torch.device("meta"):
        out = ResNet10()(torch.empty(1, 3, image_size, width or image_size))
    return int(out.shape[-2]), int(out.shape[-1])


def expected_state_dict_shapes() -> dict[str, tuple[int, ...]]:
    """Every parameter name of the backbone and its shape (the helper2424/resnet10 layout)."""
    with torch.device("meta"):
        net = ResNet10()
    return {name: tuple(t.shape) for name, t in net.state_dict().items()}


class SpatialLearnedEmbeddings(nn.Module):
    """HIL-SERL pooling: a learned (C, H, W, K) kernel weights the map and sums over space -> (B, C*K)."""

    def __init__(self, channels: int, height: int, width: int, num_features: int = 8):
        super().__init__()
        self.channels, self.height, self.width, self.num_features = channels, height, width, num_features
        self.kernel = nn.Parameter(torch.empty(channels, height, width, num_features))
        nn.init.kaiming_normal_(self.kernel, mode="fan_in", nonlinearity="linear")

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        # features: (B, C, H, W) float; output channel-major (c * K + k), the order LeRobot flattens in.
        if features.shape[1:] != (self.channels, self.height, self.width):
            raise ValueError(
                f"feature map {tuple(features.shape[1:])} does not match the embedding's "
                f"{(self.channels, self.height, self.width)}; size it with feature_map_size(image_size)"
            )
        return torch.einsum("bchw,chwk->bck", features, self.kernel).flatten(1)


def _resolve_folder(model_name: str) -> Path | None:
    """A local folder, or the hub cache snapshot of a repo id (local_files_only: never the network)."""
    path = Path(model_name).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or model_name.startswith((".", "~")) or model_name.count("/") != 1:
        return None
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_name, local_files_only=True))
    except Exception:  # noqa: BLE001 - any failure means "not in the cache"
        return None


def _read_state_dict(folder: Path) -> dict[str, torch.Tensor]:
    safetensors_file = folder / "model.safetensors"
    bin_file = folder / "pytorch_model.bin"
    if safetensors_file.is_file():
        from safetensors.torch import load_file

        return load_file(str(safetensors_file))
    if bin_file.is_file():
        # weights_only: plain tensors, no arbitrary unpickling.
        return torch.load(bin_file, map_location="cpu", weights_only=True)
    raise UserError(
        f"no model.safetensors or pytorch_model.bin in {folder}; point policy.model_name at a ResNet-10 weights folder"
    )


def _strip_prefix(state: dict[str, torch.Tensor], expected: set[str]) -> dict[str, torch.Tensor]:
    if expected <= set(state):
        return {k: v for k, v in state.items() if k in expected}
    for prefix in KNOWN_PREFIXES:
        stripped = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if expected <= set(stripped):
            return {k: v for k, v in stripped.items() if k in expected}
    return state


def _check_config(folder: Path) -> None:
    config_file = folder / "config.json"
    if not config_file.is_file():
        return
    config = json.loads(config_file.read_text())
    hidden = config.get("hidden_sizes")
    if hidden is not None and tuple(hidden) != HIDDEN_SIZES:
        raise UserError(
            f"{config_file} has hidden_sizes {hidden}, not ResNet-10's {list(HIDDEN_SIZES)}; "
            "use a helper2424/resnet10 weights folder"
        )


def load_state_dict_into(net: ResNet10, state: dict[str, torch.Tensor], source: str) -> None:
    """Check every key and shape of ``state`` against ``net`` (after prefix stripping), then load it."""
    expected = expected_state_dict_shapes()
    state = _strip_prefix(state, set(expected))
    missing = sorted(set(expected) - set(state))
    if missing:
        raise UserError(
            f"{source} lacks {len(missing)} ResNet-10 weights (first: {missing[0]}); "
            "use a helper2424/resnet10 checkpoint"
        )
    for name, shape in expected.items():
        if tuple(state[name].shape) != shape:
            raise UserError(
                f"{source}: weight {name} has shape {tuple(state[name].shape)}, expected {shape}; "
                "use a helper2424/resnet10 checkpoint"
            )
    net.load_state_dict({k: state[k].float() for k in expected}, strict=True)


RANDOM_BACKBONE_SEED = 0


DOWNLOAD_HINT = "hf download helper2424/resnet10, or LeRobot 0.6's copy lerobot/resnet10"


def _missing_weights(model_name: str) -> UserError:
    return UserError(
        f"ResNet-10 weights '{model_name}' are neither a local folder nor in the Hugging Face cache; "
        f"download them once ({DOWNLOAD_HINT}) or pass a local folder"
    )


def check_resnet10(model_name: str, allow_random: bool, what: str) -> str:
    """Where ``model_name``'s weights come from, checked without building anything: 'pretrained'
    (a local folder or the hub cache), or 'random' (allowed; logged loudly once); a UserError when
    they are missing and random weights are not allowed. ``what`` names the user of the backbone."""
    if _resolve_folder(model_name) is not None:
        return "pretrained"
    if not allow_random:
        raise _missing_weights(model_name)
    logger.warning(
        "!!! %s: ResNet-10 weights '%s' not found locally: its backbone is RANDOM (fixed seed). Frozen random "
        "features are much weaker; download them once (%s). !!!",
        what,
        model_name,
        DOWNLOAD_HINT,
    )
    return "random"


def load_resnet10(model_name: str, allow_random: bool = False) -> ResNet10:
    """ResNet-10 with weights from a local folder or the hub cache; random init only if allowed (loudly)."""
    # Random weights come from a fixed seed, not the global RNG: every process of a run (robots,
    # replay, learner, reward) must hold the SAME frozen backbone, or stored features and acting disagree.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_BACKBONE_SEED)
        net = ResNet10()
    folder = _resolve_folder(model_name)
    if folder is None:
        if not allow_random:
            raise _missing_weights(model_name)
        if model_name not in _WARNED_RANDOM:  # once per process, however often the backbone is built
            _WARNED_RANDOM.add(model_name)
            logger.warning(
                "!!! ResNet-10 weights '%s' not found locally: using RANDOM backbone weights. "
                "Frozen random features are much weaker; a reward classifier can train them end to end "
                "(--train_backbone=true). !!!",
                model_name,
            )
        return net
    _check_config(folder)
    load_state_dict_into(net, _read_state_dict(folder), str(folder))
    logger.info("loaded ResNet-10 weights from %s", folder)
    return net
