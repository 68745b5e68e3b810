"""Learner checkpoints that resume bit for bit.

A checkpoint is a folder ``<root>/<step:09d>/``:

    model.safetensors   every network (encoder heads, actor, critics, targets, grasp critic + target)
                        and log_alpha (the temperature LeRobot lost on resume, #1373)
    optimizers.safetensors  the Adam moments and step counts (``<optimizer>/<param>/<key>``)
    optimizers.json     each optimizer's param_groups and any non-tensor state
    rng.safetensors     torch CPU and CUDA generator states
    state.json          counters, numpy and python RNG states, the frozen backbone's hash

It is written to a temporary folder and renamed into place (``reward.dataset.safe_output``: an
existing folder of the same step is moved aside and deleted only once the new one is in place),
then ``<root>/latest`` is replaced atomically, so a crash leaves the previous checkpoint usable. The frozen backbone is not saved
(it is loaded from the configured weights); its hash is checked on load. Replay buffers are saved
separately (``MixedReplay.save``) and carry their own sampler state.

    path = save_checkpoint(agent, "run/checkpoints")
    load_checkpoint(agent, "run/checkpoints")        # latest, or a step folder
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from configs.errors import UserError
from learner.sac import SACAgent
from reward.dataset import safe_output
from vision.backbone import weights_sha256

CHECKPOINT_FORMAT = 1


def backbone_hash(agent: SACAgent) -> str | None:
    backbone = agent.policy.backbone
    return None if backbone is None else weights_sha256(backbone)


def _network_tensors(agent: SACAgent) -> dict[str, torch.Tensor]:
    tensors = {
        f"{name}.{key}": value.detach().cpu().contiguous()
        for name, module in agent.modules().items()
        for key, value in module.state_dict().items()
    }
    tensors["log_alpha"] = agent.log_alpha.detach().cpu().reshape(1)
    return tensors


def _optimizer_parts(agent: SACAgent) -> tuple[dict[str, torch.Tensor], dict]:
    """Optimizer states as safetensors tensors plus JSON (param_groups and non-tensor values)."""
    tensors: dict[str, torch.Tensor] = {}
    meta: dict = {}
    for name, optimizer in agent.optimizers().items():
        state = optimizer.state_dict()
        scalars = {}
        for index, entry in state["state"].items():
            for key, value in entry.items():
                if torch.is_tensor(value):
                    tensors[f"{name}/{index}/{key}"] = value.detach().cpu().contiguous()
                else:
                    scalars[f"{index}/{key}"] = value
        meta[name] = {"param_groups": state["param_groups"], "scalars": scalars}
    return tensors, meta


def _optimizer_states(folder: Path) -> dict[str, dict]:
    """The ``optimizer.state_dict()`` of each optimizer, rebuilt from optimizers.safetensors + .json."""
    if not (folder / "optimizers.safetensors").is_file() and (folder / "optimizers.pt").is_file():
        return torch.load(
            folder / "optimizers.pt", map_location="cpu", weights_only=True
        )  # an earlier version's checkpoint
    tensors = load_file(str(folder / "optimizers.safetensors"))
    meta = json.loads((folder / "optimizers.json").read_text())
    states: dict[str, dict] = {}
    for name, part in meta.items():
        groups = [
            {k: tuple(v) if k == "betas" else v for k, v in group.items()} for group in part["param_groups"]
        ]
        per_param: dict[int, dict] = {}
        for key, value in part["scalars"].items():
            index, field = key.split("/", 1)
            per_param.setdefault(int(index), {})[field] = value
        states[name] = {"state": per_param, "param_groups": groups}
    for key, value in tensors.items():
        name, index, field = key.split("/", 2)
        states[name]["state"].setdefault(int(index), {})[field] = value
    return states


def _python_state_to_json(state: tuple) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def save_checkpoint(agent: SACAgent, root: str | Path, extra: dict | None = None) -> Path:
    """Write ``<root>/<update_step>/`` atomically and point ``<root>/latest`` at it."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"{agent.update_step:09d}"
    with safe_output(final, overwrite=True) as tmp:
        tmp.mkdir()
        save_file(_network_tensors(agent), str(tmp / "model.safetensors"))
        optimizer_tensors, optimizer_meta = _optimizer_parts(agent)
        save_file(optimizer_tensors, str(tmp / "optimizers.safetensors"))
        (tmp / "optimizers.json").write_text(json.dumps(optimizer_meta, indent=1))
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng |= {f"cuda{i}": state for i, state in enumerate(torch.cuda.get_rng_state_all())}
        save_file(rng, str(tmp / "rng.safetensors"))
        np_state = np.random.get_state()
        state = {
            "format": CHECKPOINT_FORMAT,
            "update_step": agent.update_step,
            "critic_step": agent.critic_step,
            "temperature": agent.temperature.item(),
            "backbone_sha256": backbone_hash(agent),
            "numpy_rng": [np_state[0], np_state[1].tolist(), *np_state[2:]],
            "python_rng": _python_state_to_json(random.getstate()),
            "extra": extra or {},
        }
        (tmp / "state.json").write_text(json.dumps(state, indent=1))
    latest_tmp = root / ".latest.tmp"
    latest_tmp.write_text(final.name)
    os.replace(latest_tmp, root / "latest")
    return final


def resolve(path: str | Path) -> Path:
    path = Path(path)
    if (path / "latest").is_file():
        path = path / (path / "latest").read_text().strip()
    if not (path / "state.json").is_file():
        raise UserError(f"no learner checkpoint at {path}; pass a checkpoint root or one of its step folders")
    return path


def load_checkpoint(agent: SACAgent, path: str | Path, restore_rng: bool = True) -> dict:
    """Restore networks, optimizers, temperature, counters (and RNG states); returns ``state.json``."""
    folder = resolve(path)
    state = json.loads((folder / "state.json").read_text())
    if state.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{folder} has checkpoint format {state.get('format')}, expected {CHECKPOINT_FORMAT}")
    if state["backbone_sha256"] != backbone_hash(agent):
        raise UserError(
            f"{folder} was trained with other ResNet-10 weights than vision_model_name="
            f"'{agent.cfg.vision_model_name}'; point it at the weights the run started with"
        )
    tensors = load_file(str(folder / "model.safetensors"), device=str(agent.device))
    for name, module in agent.modules().items():
        prefix = f"{name}."
        module.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
    with torch.no_grad():
        agent.log_alpha.copy_(tensors["log_alpha"].reshape(()))
    optimizer_states = _optimizer_states(folder)
    for name, optimizer in agent.optimizers().items():
        optimizer.load_state_dict(optimizer_states[name])
    agent.update_step = int(state["update_step"])
    agent.critic_step = int(state["critic_step"])
    if restore_rng:
        rng = load_file(str(folder / "rng.safetensors"))
        torch.set_rng_state(rng["torch"])
        cuda_states = [rng[k] for k in sorted(rng) if k.startswith("cuda")]
        if cuda_states and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(cuda_states)
        kind, keys, *rest = state["numpy_rng"]
        np.random.set_state((kind, np.array(keys, dtype=np.uint32), *rest))
        version, internal, gauss = state["python_rng"]
        random.setstate((version, tuple(internal), gauss))
    return state
