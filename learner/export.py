"""Policy export: the policy's trainable weights only, as a versioned CPU state dict.

The frozen ResNet-10 never travels: every actor loads it once from the same weights folder, so a
push carries the encoder heads, the actor and the grasp critic (about 2.7 M floats with two
cameras) instead of LeRobot's whole actor plus a second copy of the encoder.

    export = export_policy(agent.policy, version=agent.update_step)   # learner side
    apply_export(local_policy, export)                                # actor side, in place
    policy = load_policy(export, cfg)                                  # a fresh actor
"""

from __future__ import annotations

import hashlib
import io

import torch

from configs.errors import UserError
from configs.learner import LearnerConfig
from learner.networks import Policy
from vision.backbone import FrozenBackbone

EXPORT_FORMAT = 1
STATE_SCALING = ("encoder.state_loc", "encoder.state_scale")


def architecture_id(state_dict: dict[str, torch.Tensor]) -> str:
    """Hash of every key and shape: two policies accept each other's weights iff these match.
    The state's scaling is left out: its shape follows the state layer's, and exports written
    before it existed must still load (as unscaled)."""
    digest = hashlib.sha256()
    for key in sorted(k for k in state_dict if not k.endswith(STATE_SCALING)):
        digest.update(f"{key}:{tuple(state_dict[key].shape)};".encode())
    return digest.hexdigest()[:16]


def export_policy(policy: Policy, version: int, dtype: torch.dtype | None = None) -> dict:
    """{"format", "version", "architecture", "state_dict"}; tensors are detached CPU copies.

    ``dtype`` (e.g. torch.bfloat16) halves the push for a bandwidth-bound link; the receiving
    policy then acts with rounded weights, so only the default float32 export acts identically.
    """
    state = {
        k: v.detach().to(
            "cpu", dtype=dtype if dtype is not None and v.is_floating_point() else None, copy=True
        )
        for k, v in policy.trainable_state_dict().items()
    }
    return {
        "format": EXPORT_FORMAT,
        "version": int(version),
        "architecture": architecture_id(state),
        "state_dict": state,
    }


def apply_export(policy: Policy, export: dict) -> int:
    """Load an export into ``policy`` in place (never touching its backbone); returns its version."""
    if export.get("format") != EXPORT_FORMAT:
        raise UserError(
            f"policy export format {export.get('format')} is not {EXPORT_FORMAT}; update the actor's code"
        )
    expected = architecture_id(policy.trainable_state_dict())
    if export["architecture"] != expected:
        raise UserError(
            "the exported policy's architecture does not match this actor's config "
            "(image keys, sizes or hidden dims differ); start the actor with the learner's config"
        )
    missing, unexpected = policy.load_state_dict(export["state_dict"], strict=False)
    assert not unexpected and all(k.startswith("backbone.") for k in missing), (missing, unexpected)
    return int(export["version"])


def load_policy(export: dict, cfg: LearnerConfig, backbone: FrozenBackbone | None = None) -> Policy:
    """A fresh policy built from ``cfg`` with the exported weights (backbone loaded from cfg if not given)."""
    if backbone is None and cfg.image_keys:
        backbone = FrozenBackbone.from_config(cfg)
    policy = Policy(cfg, backbone).to(cfg.device)
    apply_export(policy, export)
    return policy.eval()


def export_to_bytes(export: dict) -> bytes:
    """The wire form (torch.save, the serializer LeRobot's parameter push uses too)."""
    buffer = io.BytesIO()
    torch.save(export, buffer)
    return buffer.getvalue()


def export_from_bytes(data: bytes) -> dict:
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
