"""LeRobot interop (0.4 and 0.6): reward classifier checkpoints go both ways; our ResNet-10 loads into it.

1. ``convert_lerobot_state_dict``: a ``Classifier.save_pretrained`` folder (``pretrained_model/``)
   holds the backbone once as ``encoder.*`` and again inside every camera branch
   (``encoders.<key>.0.*``), then ``encoders.<key>.{1,3,4}`` (spatial embedding, projection,
   LayerNorm) and ``classifier_head.*``. ``load_checkpoint`` calls this when it sees such a folder,
   so ``hilserl eval-reward --checkpoint lerobot_run/pretrained_model`` just works. Given the same
   normalized images, ours gives the same probabilities.
   LeRobot normalizes with dataset statistics in training; our run time applies ImageNet
   normalization, so feed such a checkpoint images normalized the way it was trained.
   ``to_lerobot_state_dict`` is the way back: ``save_checkpoint`` writes LeRobot's names, so
   LeRobot 0.6's ``Classifier.from_pretrained`` loads a folder of ours (when its backbone folder is
   one transformers' ``AutoModel`` reads, and at a 4x4 feature map, i.e. 128x128 inputs: LeRobot
   hard-codes that size) and, given the same normalized images, gives our probabilities.

2. ``write_transformers_resnet10``: a folder that transformers' ``AutoModel`` loads with
   ``trust_remote_code=True`` from a local path (config.json with ``auto_map`` + a small modeling
   file that wraps OUR ``ResNet10``). LeRobot's ``Classifier`` can then be built with no network
   and with exactly our backbone weights: the benchmark and the interop test use it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch
from safetensors.torch import save_file

from configs.errors import UserError
from configs.reward import RewardClassifierConfig
from reward.model import camera_keys, module_key
from vision.resnet10 import HIDDEN_SIZES, ResNet10, expected_state_dict_shapes, feature_map_size

logger = logging.getLogger(__name__)

# LeRobot's per-camera nn.Sequential: 0 backbone, 1 spatial embedding, 2 dropout, 3 linear, 4 layernorm, 5 tanh.
_BRANCH = {"1.kernel": "spatial.kernel", "3.": "projection.", "4.": "norm."}


def convert_lerobot_state_dict(
    state: dict[str, torch.Tensor], config: RewardClassifierConfig
) -> dict[str, torch.Tensor]:
    """LeRobot Classifier weights → our RewardClassifier's names (and the config's image size fixed up)."""
    if config.model_type != "cnn":
        raise UserError(
            "LeRobot transformer reward classifiers have no per-camera projection and cannot be converted; "
            "retrain with hilserl train-reward"
        )
    backbone_names = set(expected_state_dict_shapes())
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name.startswith("encoder."):
            inner = name[len("encoder.") :]
            for prefix in ("", "resnet.", "model."):
                if inner.startswith(prefix) and inner[len(prefix) :] in backbone_names:
                    out["backbone." + inner[len(prefix) :]] = tensor
                    break
        elif name.startswith("classifier_head."):
            out["head." + name[len("classifier_head.") :]] = tensor
        elif name.startswith("encoders."):
            key, rest = name[len("encoders.") :].split(".", 1)
            for theirs, ours in _BRANCH.items():
                if rest.startswith(theirs):
                    out[f"camera_encoders.{key}.{ours}{rest[len(theirs) :]}"] = tensor
    _fix_image_size(out, config)
    return out


def to_lerobot_state_dict(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our RewardClassifier's weights → LeRobot Classifier's names (``convert_lerobot_state_dict`` undone).

    The backbone goes in once, as ``encoder.*``: LeRobot's camera branches share that module, and
    safetensors' ``load_model`` fills the shared names from it."""
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        if name.startswith("backbone."):
            out["encoder." + name[len("backbone.") :]] = tensor
        elif name.startswith("head."):
            out["classifier_head." + name[len("head.") :]] = tensor
        elif name.startswith("camera_encoders."):
            key, rest = name[len("camera_encoders.") :].split(".", 1)
            theirs = next(t for t, ours in _BRANCH.items() if rest.startswith(ours))
            out[f"encoders.{key}.{theirs}{rest[len(_BRANCH[theirs]) :]}"] = tensor
        else:
            raise ValueError(f"no LeRobot name for weight {name}")
    return out


def _fix_image_size(state: dict[str, torch.Tensor], config: RewardClassifierConfig) -> None:
    """LeRobot hard-codes a 4x4 map (128x128 inputs); size our model to the kernel it saved."""
    keys = camera_keys(config)
    if not keys:
        raise UserError("the LeRobot config.json has no VISUAL input_features; it is not an image classifier")
    kernel = state.get(f"camera_encoders.{module_key(keys[0])}.spatial.kernel")
    if kernel is None:
        return
    want = tuple(kernel.shape[1:3])
    shape = list(config.input_features[keys[0]].shape)
    native = feature_map_size(shape[1], shape[2]) if len(shape) == 3 else None
    if config.image_size is None and native != want:
        for size in (128, 112, 96, 84, 64):
            if feature_map_size(size) == want:
                logger.warning(
                    "LeRobot checkpoint: %s maps to a %s feature map but its kernel is %s; resizing inputs to %dx%d",
                    shape,
                    native,
                    want,
                    size,
                    size,
                )
                config.image_size = size
                return


MODELING_FILE = "modeling_hilserl_resnet10.py"
MODELING_SOURCE = '''"""transformers wrapper around hilserl_ray's ResNet-10 (written by reward.interop; loads offline)."""

from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import BaseModelOutputWithPoolingAndNoAttention

from vision.resnet10 import ResNet10


class HilserlResNet10Config(PretrainedConfig):
    model_type = "hilserl_resnet10"

    def __init__(self, num_channels=3, embedding_size=64, hidden_sizes=(64, 128, 256, 512), depths=(1, 1, 1, 1),
                 hidden_act="relu", **kwargs):
        super().__init__(**kwargs)
        self.num_channels = num_channels
        self.embedding_size = embedding_size
        self.hidden_sizes = list(hidden_sizes)
        self.depths = list(depths)
        self.hidden_act = hidden_act


class HilserlResNet10Model(PreTrainedModel):
    config_class = HilserlResNet10Config
    main_input_name = "pixel_values"

    def __init__(self, config):
        super().__init__(config)
        net = ResNet10()
        self.embedder = net.embedder
        self.encoder = net.encoder
        self.pooler = nn.AdaptiveAvgPool2d(1)
        self.post_init()

    def _init_weights(self, module):
        pass  # every weight comes from model.safetensors

    def forward(self, pixel_values, output_hidden_states=None, return_dict=None):
        hidden = self.encoder(self.embedder(pixel_values))
        pooled = self.pooler(hidden).flatten(1)
        return BaseModelOutputWithPoolingAndNoAttention(last_hidden_state=hidden, pooler_output=pooled)
'''


def write_transformers_resnet10(folder: str | Path, net: ResNet10) -> Path:
    """A local folder that both ``load_resnet10`` and transformers' ``AutoModel`` (remote code, local) load."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "architectures": ["HilserlResNet10Model"],
        "model_type": "hilserl_resnet10",
        "auto_map": {
            "AutoConfig": f"{MODELING_FILE[:-3]}.HilserlResNet10Config",
            "AutoModel": f"{MODELING_FILE[:-3]}.HilserlResNet10Model",
        },
        "num_channels": 3,
        "embedding_size": 64,
        "hidden_sizes": list(HIDDEN_SIZES),
        "depths": [1, 1, 1, 1],
        "hidden_act": "relu",
        "torch_dtype": "float32",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    (folder / MODELING_FILE).write_text(MODELING_SOURCE)
    state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder
