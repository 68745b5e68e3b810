"""A local ResNet-10 weights folder that both our loader and LeRobot's ``AutoModel`` path accept.

LeRobot's SAC (and classifier) load the backbone with ``AutoModel.from_pretrained(name,
trust_remote_code=True)``. Nothing may be downloaded here, so the benchmarks write a folder with
seeded random weights through ``reward.interop.write_transformers_resnet10`` (config.json with
``auto_map`` + a modeling file wrapping OUR ``vision.resnet10.ResNet10``): both sides of a
benchmark then run the identical architecture with the identical weights.

    folder = make_local_resnet10_folder(tmp / "resnet10", seed=0)
"""

from __future__ import annotations

from pathlib import Path

import torch

from reward.interop import write_transformers_resnet10
from vision.resnet10 import ResNet10


def make_local_resnet10_folder(path: str | Path, seed: int = 0) -> Path:
    """Write seeded random ResNet-10 weights to ``path`` (config.json, modeling file, model.safetensors)."""
    generator_state = torch.get_rng_state()
    torch.manual_seed(seed)
    try:
        net = ResNet10()
    finally:
        torch.set_rng_state(generator_state)
    return write_transformers_resnet10(path, net)
