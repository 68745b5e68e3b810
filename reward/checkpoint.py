"""Reward classifier checkpoints: one directory, LeRobot's pretrained-model layout, no pickle.

pretrained_model/
  config.json         LeRobot 0.6's reward_classifier config: exactly the fields its
                      RewardClassifierConfig takes, so LeRobot's own Classifier.from_pretrained reads it
  hilserl.json        the rest of ours: image_size and the other fields LeRobot lacks,
                      "preprocessing" (what preprocess_images does), calibrated "thresholds",
                      weights_sha256, format
  model.safetensors   every weight under LeRobot's names, the frozen backbone included once (no
                      network needed to load); a transformer backbone keeps our names
  metrics.json        validation metrics, confusion matrix, thresholds, dataset fingerprint
  train_config.json   the full training config

save_checkpoint(dir, model, thresholds=..., metrics=..., train_config=...)
model, info = load_checkpoint(dir)             # also reads LeRobot 0.4/0.6 save_pretrained folders
                                               # and this project's format-1 folders (all in config.json)
verify_against_features(info, dataset_features) # cameras and image size must match the data
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from configs.errors import UserError
from configs.parsing import config_to_dict, decode_config
from configs.reward import RewardClassifierConfig
from reward.dataset import safe_output
from reward.model import RewardClassifier, build_classifier, camera_keys, input_hw
from vision.preprocess import preprocessing_spec

CONFIG_FILE = "config.json"
HILSERL_FILE = "hilserl.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
TRAIN_CONFIG_FILE = "train_config.json"
# Keys of ours next to the policy fields (in hilserl.json; in config.json in format 1).
EXTRA_KEYS = ("preprocessing", "thresholds", "feature_map", "weights_sha256", "format")
FORMAT = "hilserl_ray.reward_classifier/2"
FORMATS = (FORMAT, "hilserl_ray.reward_classifier/1")  # 1: everything in config.json, our weight names
# The fields of LeRobot 0.6's RewardClassifierConfig (and its base class), the only keys config.json
# holds: its draccus parser refuses any other.
LEROBOT_FIELDS = (
    "type", "input_features", "output_features", "device", "pretrained_path", "push_to_hub", "repo_id",
    "license", "tags", "private", "name", "num_classes", "hidden_dim", "latent_dim",
    "image_embedding_pooling_dim", "dropout_rate", "model_name", "model_type", "num_cameras",
    "learning_rate", "weight_decay", "grad_clip_norm", "normalization_mapping",
)  # fmt: skip


@dataclass
class CheckpointInfo:
    """What a checkpoint says about itself besides its weights."""

    path: Path
    config: RewardClassifierConfig
    preprocessing: dict = field(default_factory=dict)
    thresholds: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    weights_sha256: str | None = None
    source: str = "hilserl_ray"

    @property
    def drop_label_edges(self) -> bool:
        """Whether training left out the label-edge frames (``DatasetConfig.drop_label_edges``); an
        evaluation scores the same kind of frames."""
        path = self.path / TRAIN_CONFIG_FILE
        if not path.is_file():
            return False
        try:
            return bool(json.loads(path.read_text()).get("dataset", {}).get("drop_label_edges", False))
        except (OSError, ValueError, AttributeError):
            return False

    @property
    def success_threshold(self) -> float:
        """Calibrated default for run time: the best-F1 threshold, else 0.5."""
        return float(self.thresholds.get("best_f1", 0.5))


def _json_dump(data: Any, path: Path) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def save_checkpoint(
    directory: str | Path,
    model: RewardClassifier,
    thresholds: dict | None = None,
    metrics: dict | None = None,
    train_config: Any = None,
) -> Path:
    """Write the checkpoint directory atomically (a temp folder renamed into place)."""
    from reward.interop import to_lerobot_state_dict

    directory = Path(directory)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    if model.is_cnn:
        state = to_lerobot_state_dict(state)
    with safe_output(directory, overwrite=True) as tmp:
        tmp.mkdir()
        save_file(state, str(tmp / WEIGHTS_FILE), metadata={"format": "pt"})
        sha = hashlib.sha256((tmp / WEIGHTS_FILE).read_bytes()).hexdigest()
        config = config_to_dict(model.config)
        ours = {key: config.pop(key) for key in list(config) if key not in LEROBOT_FIELDS}
        ours["preprocessing"] = preprocessing_spec(model.config.image_size)
        ours["thresholds"] = thresholds or {"default": 0.5}
        ours["feature_map"] = list(model.feature_hw) if model.feature_hw else None
        ours["weights_sha256"] = sha
        ours["format"] = FORMAT
        _json_dump(config, tmp / CONFIG_FILE)
        _json_dump(ours, tmp / HILSERL_FILE)
        _json_dump(metrics or {}, tmp / METRICS_FILE)
        if train_config is not None:
            data = train_config if isinstance(train_config, dict) else config_to_dict(train_config)
            _json_dump(data, tmp / TRAIN_CONFIG_FILE)
    return directory


def read_checkpoint_info(directory: str | Path) -> CheckpointInfo:
    """Read and check config.json (and metrics.json) without building the model."""
    directory = Path(directory).expanduser()
    config_path = directory / CONFIG_FILE
    if not config_path.is_file() or not (directory / WEIGHTS_FILE).is_file():
        raise UserError(
            f"{directory} is not a reward classifier checkpoint (needs {CONFIG_FILE} and {WEIGHTS_FILE}); "
            "pass the pretrained_model folder that hilserl train-reward printed"
        )
    raw = _read_json_object(config_path)
    if raw.get("type") != "reward_classifier":
        raise UserError(
            f"{config_path} has type '{raw.get('type')}', not 'reward_classifier'; pass a classifier checkpoint"
        )
    if (directory / HILSERL_FILE).is_file():
        raw.update(_read_json_object(directory / HILSERL_FILE))
    extras = {k: raw.pop(k) for k in EXTRA_KEYS if k in raw}
    known = {f.name for f in dataclasses.fields(RewardClassifierConfig)}
    ignored = sorted(set(raw) - known)
    for key in ignored:  # LeRobot writes a few fields we have no use for (e.g. use_amp in newer versions)
        raw.pop(key)
    config = decode_config(RewardClassifierConfig, raw, str(config_path))
    metrics_path = directory / METRICS_FILE
    try:
        metrics = json.loads(metrics_path.read_text()) if metrics_path.is_file() else {}
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise UserError(f"{metrics_path} is corrupt; re-export the checkpoint or restore a copy") from None
    source = "hilserl_ray" if extras.get("format") in FORMATS else "lerobot"
    return CheckpointInfo(
        path=directory,
        config=config,
        preprocessing=extras.get("preprocessing") or {},
        thresholds=extras.get("thresholds") or metrics.get("thresholds") or {},
        metrics=metrics,
        weights_sha256=extras.get("weights_sha256"),
        source=source,
    )


def _read_json_object(path: Path) -> dict:
    try:
        raw = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        reason = (
            f"{err.msg} at line {err.lineno}" if isinstance(err, json.JSONDecodeError) else "not UTF-8 text"
        )
        raise UserError(f"{path} is corrupt ({reason}); re-export the checkpoint or restore a copy") from None
    if not isinstance(raw, dict):
        raise UserError(f"{path} does not hold a JSON object; re-export the checkpoint or restore a copy")
    return raw


def load_checkpoint(
    directory: str | Path, device: str | torch.device = "cpu"
) -> tuple[RewardClassifier, CheckpointInfo]:
    """Build the classifier and load its weights (strict: every key and shape must match).

    A checkpoint written here is verified first: the SHA-256 of model.safetensors must equal the
    config's ``weights_sha256`` and the recorded ``preprocessing`` must be what ``preprocess_images``
    does for its image size. A mismatch is a `UserError` naming the file: a run always knows which
    classifier, with which input transform, it uses.
    """
    info = read_checkpoint_info(directory)
    verify_checkpoint(info)
    weights = info.path / WEIGHTS_FILE
    try:
        state = load_file(str(weights))
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error type for a damaged file
        reason = " ".join(str(err).split())[:120]
        raise UserError(
            f"{weights} cannot be read ({reason}); it is damaged or truncated, re-export the checkpoint"
        ) from None
    if any(
        key.startswith("classifier_head.") for key in state
    ):  # LeRobot's names (its folders, our format 2)
        from reward.interop import convert_lerobot_state_dict

        state = convert_lerobot_state_dict(state, info.config)
    model = build_classifier(info.config, load_weights=False)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        what = f"lacks {missing[0]}" if missing else f"has an unexpected weight {unexpected[0]}"
        raise UserError(
            f"{info.path / WEIGHTS_FILE} {what}; it does not match its config.json (re-export the checkpoint)"
        )
    for key, value in expected.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise UserError(
                f"{info.path / WEIGHTS_FILE}: {key} has shape {tuple(state[key].shape)}, config.json implies "
                f"{tuple(value.shape)}; re-export the checkpoint"
            )
    model.load_state_dict(state, strict=True)
    model.to(device).eval()
    return model, info


def verify_checkpoint(info: CheckpointInfo) -> None:
    """The weights hash and the preprocessing spec we recorded must match (our checkpoints)."""
    if info.source != "hilserl_ray":
        return  # a LeRobot save_pretrained folder records neither
    config_path, weights = info.path / HILSERL_FILE, info.path / WEIGHTS_FILE
    if not config_path.is_file():
        config_path = info.path / CONFIG_FILE  # format 1
    if not info.weights_sha256:
        raise UserError(
            f"{config_path} has no weights_sha256; re-export the checkpoint with hilserl train-reward"
        )
    digest = hashlib.sha256()
    with weights.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != info.weights_sha256:
        raise UserError(
            f"{weights} does not match the weights_sha256 in {config_path} (the file changed after export); "
            "restore the checkpoint or re-export it"
        )
    # "function" says where the code lives (it moved from reward/ to vision/), not what it does.
    expected = {k: v for k, v in preprocessing_spec(info.config.image_size).items() if k != "function"}
    recorded = {k: v for k, v in info.preprocessing.items() if k != "function"}
    if recorded != expected:
        differs = sorted(k for k in set(expected) | set(recorded) if expected.get(k) != recorded.get(k))
        raise UserError(
            f"the preprocessing recorded in {config_path} differs from this version's preprocess_images "
            f"({', '.join(differs)}); retrain the classifier or use the release that wrote it"
        )


def verify_against_features(info: CheckpointInfo, dataset_features: dict[str, dict]) -> None:
    """The data must have the checkpoint's cameras at the image size it was trained on."""
    keys = camera_keys(info.config)
    cameras = {k: ft for k, ft in dataset_features.items() if ft.get("dtype") in ("video", "image")}
    missing = [k for k in keys if k not in cameras]
    if missing:
        raise UserError(
            f"the checkpoint uses camera '{missing[0]}' but the data has {', '.join(cameras) or 'no cameras'}; "
            "evaluate on data recorded with the same cameras or retrain the classifier"
        )
    for key in keys:
        spec = info.config.input_features[key]
        want = list(spec.shape)[1:]
        shape = list(cameras[key]["shape"])
        names = list(cameras[key].get("names") or [])
        have = shape[1:] if names[:1] == ["channels"] else shape[:2]
        if want and want != have:
            raise UserError(
                f"camera '{key}' is {have[0]}x{have[1]} in the data but the checkpoint was trained on "
                f"{want[0]}x{want[1]} images; use data at that size or retrain the classifier on this data"
            )
    input_hw(info.config)  # consistent sizes
