"""Reward classifier training: real LeRobot datasets, tiny shapes, the plain torch loop (no Ray)."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from cluster import train_job as job
from cluster.cli import main as hilserl
from configs.parsing import save_config
from reward.checkpoint import LEROBOT_FIELDS, load_checkpoint, save_checkpoint
from reward.model import build_classifier, module_key
from reward.train import run
from tests.reward_helpers import labeled_dataset, train_config, write_backbone


@pytest.fixture(scope="module")
def backbone(tmp_path_factory):
    return write_backbone(tmp_path_factory.mktemp("weights") / "resnet10")


@pytest.fixture(scope="module")
def data32(tmp_path_factory):
    root = tmp_path_factory.mktemp("data") / "two_cams_32"
    labeled_dataset(root, image_size=32)
    return root


@pytest.mark.parametrize("size,feature_hw", [(84, (3, 3)), (128, (4, 4))])
def test_trains_two_steps_backbone_frozen_embedding_learns(tmp_path, backbone, size, feature_hw):
    root = tmp_path / "ds"
    labeled_dataset(root, image_size=size, cameras=("front",), episodes=(4, 4))
    cfg = train_config(root, backbone, tmp_path / "out", cameras=1, val_fraction=0.5)
    result = run(cfg)

    model, info = load_checkpoint(result.best_checkpoint)
    assert model.feature_hw == feature_hw
    assert info.config.input_features["observation.images.front"].shape == [3, size, size]
    # The frozen backbone is bitwise the source weights after training.
    source = load_file(str(backbone / "model.safetensors"))
    backbone_state = model.backbone.state_dict()
    assert set(source) == set(backbone_state)
    assert all(torch.equal(backbone_state[k], v) for k, v in source.items())
    # Everything after it trained: same seed rebuilds the initial weights, which must differ now.
    torch.manual_seed(cfg.seed)
    initial = build_classifier(info.config)
    key = module_key("observation.images.front")
    assert not torch.equal(
        initial.camera_encoders[key].spatial.kernel, model.camera_encoders[key].spatial.kernel
    )
    assert not torch.equal(
        initial.camera_encoders[key].projection.weight, model.camera_encoders[key].projection.weight
    )
    assert not torch.equal(initial.head[0].weight, model.head[0].weight)
    assert torch.equal(initial.backbone.embedder[0].weight, model.backbone.embedder[0].weight)

    metrics = json.loads((result.best_checkpoint / "metrics.json").read_text())
    assert metrics["step"] == 2
    assert metrics["dataset"]["frames"] == 8 and len(metrics["dataset"]["label_hash"]) == 16
    assert metrics["split"]["val_episodes"] and metrics["split"]["train_episodes"]
    assert set(metrics["split"]["val_episodes"]).isdisjoint(metrics["split"]["train_episodes"])
    assert {"best_f1", "precision_0.99"} <= set(metrics["thresholds"])
    assert len(metrics["confusion_matrix"]) == 2
    assert list((result.run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert list((result.run_dir / "samples").glob("*.png"))


def test_checkpoint_round_trip_is_bitwise(tmp_path, backbone, data32):
    cfg = train_config(data32, backbone, tmp_path / "out")
    from reward.data import load_labeled_frames, replace_features

    frames, features = load_labeled_frames(cfg.dataset, cfg.policy)
    torch.manual_seed(3)
    model = build_classifier(replace_features(cfg.policy, features)).eval()
    with torch.no_grad():  # make the head non-trivial so equality is meaningful
        for p in model.head.parameters():
            p.add_(torch.randn_like(p))
    images = {k: frames.images[k] for k in model.camera_keys}
    before = model.predict_proba(images)
    save_checkpoint(tmp_path / "ckpt", model, thresholds={"best_f1": 0.4}, metrics={"x": 1}, train_config=cfg)
    loaded, info = load_checkpoint(tmp_path / "ckpt")
    after = loaded.predict_proba(images)
    assert torch.equal(before, after)
    assert info.success_threshold == 0.4
    config = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert config["type"] == "reward_classifier"
    assert set(config) <= set(LEROBOT_FIELDS)  # what LeRobot's own config class accepts
    assert set(config["input_features"]) == {"observation.images.front", "observation.images.side"}
    ours = json.loads((tmp_path / "ckpt" / "hilserl.json").read_text())
    assert ours["preprocessing"]["normalize"]["mean"] == [0.485, 0.456, 0.406]
    assert json.loads((tmp_path / "ckpt" / "train_config.json").read_text())["steps"] == cfg.steps
    assert not list((tmp_path / "ckpt").glob("*.bin")) and not list((tmp_path / "ckpt").glob("*.pt"))


def test_augmentation_turns_feature_cache_off_and_trains(tmp_path, backbone, data32, caplog):
    cfg = train_config(data32, backbone, tmp_path / "out", augment=True, steps=1, eval_freq=1)
    with caplog.at_level("INFO"):
        result = run(cfg)
    assert "feature caching is off" in caplog.text
    assert result.best_checkpoint.is_dir()


def test_train_backbone_trains_it_end_to_end_and_the_checkpoint_holds_it(tmp_path, backbone, data32, caplog):
    cfg = train_config(data32, backbone, tmp_path / "out", steps=2, eval_freq=1)
    cfg.train_backbone = True
    with caplog.at_level("INFO"):
        result = run(cfg)
    assert "cached backbone features" not in caplog.text  # every step ran the backbone
    model, _ = load_checkpoint(result.best_checkpoint)
    source = load_file(str(backbone / "model.safetensors"))
    trained = model.backbone.state_dict()
    convs = [k for k, v in source.items() if k.endswith("weight") and v.dim() == 4]
    changed = [k for k in convs if not torch.equal(trained[k], source[k])]
    assert convs and changed == convs, (
        f"train_backbone=true left conv weights as loaded: {set(convs) - set(changed)}"
    )
    # The run-time model is frozen again: inference never builds a graph through the backbone.
    assert not model.backbone_trainable and not any(p.requires_grad for p in model.backbone.parameters())


def test_transformer_backbone_from_local_path(tmp_path, data32):
    from transformers import ViTConfig, ViTModel

    vit = tmp_path / "vit"
    ViTModel(
        ViTConfig(
            image_size=32,
            patch_size=8,
            hidden_size=16,
            num_hidden_layers=1,
            num_attention_heads=2,
            intermediate_size=32,
        ),
        add_pooling_layer=False,
    ).save_pretrained(vit)
    cfg = train_config(data32, vit, tmp_path / "out")
    cfg = dataclasses.replace(
        cfg, policy=dataclasses.replace(cfg.policy, model_type="transformer", image_size=32)
    )
    result = run(cfg)
    model, _ = load_checkpoint(result.best_checkpoint)
    assert not model.is_cnn and model.feature_hw is None


def _bad_input(tmp_path, cfg, capsys):
    path = tmp_path / "cfg.json"
    save_config(cfg, path)
    capsys.readouterr()  # drop the dataset writer's progress bars
    code = hilserl(["train-reward", "--config_path", str(path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err, err
    assert not (tmp_path / "out").exists()
    return err


def test_bad_num_cameras(tmp_path, backbone, data32, capsys):
    err = _bad_input(tmp_path, train_config(data32, backbone, tmp_path / "out", cameras=1), capsys)
    assert "num_cameras is 1" in err and "--policy.num_cameras=2" in err


def test_bad_image_key(tmp_path, backbone, data32, capsys):
    from configs.common import FeatureSpec

    cfg = train_config(data32, backbone, tmp_path / "out", cameras=1)
    cfg.policy.input_features = {"observation.images.wrist": FeatureSpec("VISUAL", [3, 32, 32])}
    err = _bad_input(tmp_path, cfg, capsys)
    assert "observation.images.wrist" in err and "not in the dataset" in err


def test_no_reward_column(tmp_path, backbone, capsys):
    root = tmp_path / "unlabeled"
    labeled_dataset(root, episodes=(3, 3), with_reward=False, reward_fn=None)
    err = _bad_input(tmp_path, train_config(root, backbone, tmp_path / "out"), capsys)
    assert "no 'next.reward' column" in err


def test_only_one_class(tmp_path, backbone, capsys):
    root = tmp_path / "all_failures"
    labeled_dataset(root, episodes=(3, 3), reward_fn=lambda e, i: 0.0)
    err = _bad_input(tmp_path, train_config(root, backbone, tmp_path / "out"), capsys)
    assert "only one class" in err


def test_missing_backbone_weights(tmp_path, data32, capsys, monkeypatch):
    import huggingface_hub.constants as hf_constants

    monkeypatch.setattr(hf_constants, "HF_HUB_CACHE", str(tmp_path / "empty_cache"))
    cfg = train_config(data32, tmp_path / "none", tmp_path / "out")
    cfg.policy.model_name = "helper2424/resnet10"
    err = _bad_input(tmp_path, cfg, capsys)
    assert "neither a local folder nor in the Hugging Face cache" in err


def test_relative_paths_refused_under_ray_job_submit(tmp_path, backbone, data32, monkeypatch):
    from configs.errors import UserError

    monkeypatch.setenv("RAY_JOB_CONFIG_JSON_ENV_VAR", "{}")
    cfg = train_config(data32, backbone, "relative/out")
    with pytest.raises(UserError, match="output_dir 'relative/out' is relative"):
        job.absolute_paths(cfg)


def test_a_separable_dataset_is_learned(tmp_path, backbone):
    """Bright frames are successes: a working loop must find that (validation on held-out episodes)."""

    def level(e, i):
        return (e * 37 + i * 5) % 200 + 20

    root = tmp_path / "separable"
    labeled_dataset(
        root, cameras=("front",), episodes=(12, 12, 12, 12), reward_fn=lambda e, i: float(level(e, i) > 120)
    )
    cfg = train_config(
        root,
        backbone,
        tmp_path / "out",
        cameras=1,
        steps=150,
        batch_size=16,
        eval_freq=50,
        log_freq=50,
        val_fraction=0.25,
    )
    cfg.policy.learning_rate = 3e-3
    result = run(cfg)
    assert result.best_metrics["accuracy"] >= 0.9, result.history


def test_a_one_class_log_is_trained_merged_with_the_labeled_set(tmp_path, backbone, data32, capsys):
    """A run's disagreement log may hold only false positives: alone it is refused, naming
    --dataset.extra_roots; merged with the labeled set it trains, its episodes renumbered."""
    from configs.dataset import DatasetConfig
    from reward.data import load_labeled_frames

    log = tmp_path / "next_classifier"
    labeled_dataset(log, episodes=(3, 2), reward_fn=lambda e, i: 0.0)
    err = _bad_input(tmp_path, train_config(log, backbone, tmp_path / "out"), capsys)
    assert "only one class" in err and "--dataset.extra_roots" in err

    cfg = train_config(data32, backbone, tmp_path / "merged")
    cfg.dataset.extra_roots = [str(log)]
    frames, _ = load_labeled_frames(cfg.dataset, cfg.policy)
    assert len(frames) == 18 + 5
    assert frames.episodes == [0, 1, 2, 3, 4]  # the log's two episodes come after the three labeled ones
    assert frames.labels[18:].sum() == 0 and frames.fingerprint["merged"][0]["frames"] == 5
    result = run(cfg)
    assert result.best_metrics is not None

    other = tmp_path / "other_size"
    labeled_dataset(other, image_size=48, episodes=(3,), reward_fn=lambda e, i: 0.0)
    with pytest.raises(Exception, match="merge only datasets recorded with the same cameras"):
        load_labeled_frames(DatasetConfig(root=str(data32), extra_roots=[str(other)]), cfg.policy)


def test_drop_label_edges_leaves_out_the_frames_where_the_label_changes(tmp_path, backbone):
    """A recorded frame's next.reward rewards the step from its image: the first success-labeled
    image shows the arm before the grasp. drop_label_edges leaves such edge frames out of training
    and, following the checkpoint, out of its evaluation."""
    from reward.checkpoint import read_checkpoint_info
    from reward.data import label_edges, load_labeled_frames
    from reward.evaluate import evaluate_checkpoint

    pattern = {0: [0, 0, 0, 1, 1, 0], 1: [0, 0, 1, 1, 1, 1], 2: [0, 0, 0, 0, 1, 1]}
    root = tmp_path / "ds"
    labeled_dataset(root, episodes=(6, 6, 6), reward_fn=lambda e, i: float(pattern[e][i]))
    assert label_edges(np.array(pattern[0], dtype=np.float32)).tolist() == [
        False,
        False,
        False,
        True,
        False,
        True,
    ]

    cfg = train_config(root, backbone, tmp_path / "out")
    every, _ = load_labeled_frames(cfg.dataset, cfg.policy)
    cfg.dataset.drop_label_edges = True
    kept, _ = load_labeled_frames(cfg.dataset, cfg.policy)
    assert len(every) == 18 and len(kept) == 18 - 2 - 1 - 1
    assert kept.frame_index[kept.episode_index == 0].tolist() == [0, 1, 2, 4]
    assert kept.frame_index[kept.episode_index == 1].tolist() == [0, 1, 3, 4, 5]
    # The kept frames carry their own images and labels, not their neighbours'.
    rows = [
        int(torch.nonzero((every.episode_index == e) & (every.frame_index == f))[0])
        for e, f in zip(kept.episode_index.tolist(), kept.frame_index.tolist(), strict=True)
    ]
    for key in kept.camera_keys:
        assert torch.equal(kept.images[key], every.images[key][rows])
    assert torch.equal(kept.labels, every.labels[rows])

    result = run(cfg)
    assert read_checkpoint_info(result.best_checkpoint).drop_label_edges
    report = evaluate_checkpoint(result.best_checkpoint, root, out_dir=tmp_path / "eval")
    assert sum(map(sum, report["metrics"]["0.5"]["confusion_matrix"])) == 14  # scored as trained
    report = evaluate_checkpoint(
        result.best_checkpoint, root, out_dir=tmp_path / "eval2", drop_label_edges=False
    )
    assert sum(map(sum, report["metrics"]["0.5"]["confusion_matrix"])) == 18
