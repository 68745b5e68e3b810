"""Config parsing: the seeds' JSON shapes load unchanged; unknown keys name the closest valid key."""

import json

import pytest

from configs.env import EnvConfig
from configs.errors import ConfigError
from configs.parsing import parse_config, save_config
from configs.reward import RewardTrainConfig

SEED_000_TRAIN = {
    "policy": {
        "type": "reward_classifier",
        "model_name": "helper2424/resnet10",
        "model_type": "cnn",
        "num_cameras": 2,
        "num_classes": 2,
        "hidden_dim": 256,
        "dropout_rate": 0.1,
        "learning_rate": 1e-4,
        "device": "cuda",
        "use_amp": True,
        "input_features": {
            "observation.images.front": {"type": "VISUAL", "shape": [3, 128, 128]},
            "observation.images.side": {"type": "VISUAL", "shape": [3, 128, 128]},
        },
    }
}
SEED_002_TRAIN = {
    "policy": {
        "type": "reward_classifier",
        "model_name": "helper2424/resnet10",
        "image_size": 128,
        "num_cameras": 1,
        "num_classes": 2,
        "hidden_dim": 256,
        "latent_dim": 256,
    },
    "dataset": {
        "repo_id": "gtgando/so101_pick_lift_cube_rl_labeled",
        "root": "/home/gota/.cache/huggingface/lerobot/gtgando/so101_pick_lift_cube_rl_labeled",
        "video_backend": "pyav",
    },
}
SEED_000_RECORD = {
    "mode": "record",
    "repo_id": "hf_username/dataset_name",
    "dataset_root": "data/your_dataset",
    "num_episodes": 20,
    "push_to_hub": True,
    "fps": 10,
    "number_of_steps_after_success": 15,
}
SEED_004_ENV = {
    "reward_classifier_pretrained_path": "path/to/old",
    "processor": {
        "reward_classifier": {
            "pretrained_path": "path/to/trained/classifier",
            "success_threshold": 0.7,
            "success_reward": 1.0,
        }
    },
}


def _write(tmp_path, data, name="cfg.json"):
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return str(path)


def test_seed_train_configs_load_unchanged(tmp_path):
    cfg = parse_config(RewardTrainConfig, ["--config_path", _write(tmp_path, SEED_000_TRAIN)])
    assert cfg.policy.num_cameras == 2 and cfg.policy.use_amp is True
    assert cfg.policy.input_features["observation.images.side"].shape == [3, 128, 128]
    cfg = parse_config(RewardTrainConfig, ["--config_path", _write(tmp_path, SEED_002_TRAIN)])
    assert cfg.policy.image_size == 128 and cfg.policy.latent_dim == 256
    assert cfg.dataset.video_backend == "pyav" and cfg.dataset.root.endswith("rl_labeled")


def test_lerobot_06_train_config_loads_unchanged(tmp_path):
    """LeRobot 0.6's form: the classifier under reward_model, as its own config class writes it
    (lerobot/resnet10, MEAN_STD normalization, pretrained_revision), and policy null."""
    import draccus
    from lerobot.configs.rewards import RewardModelConfig
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.rewards.classifier import RewardClassifierConfig as LeRobotClassifierConfig

    front = {"observation.images.front": PolicyFeature(type=FeatureType.VISUAL, shape=(3, 128, 128))}
    block = draccus.encode(
        LeRobotClassifierConfig(device="cpu", num_cameras=1, input_features=front), RewardModelConfig
    )
    assert block["model_name"] == "lerobot/resnet10" and block["type"] == "reward_classifier"
    data = {
        "dataset": {"repo_id": "user/so101_labeled", "root": "data/labeled", "video_backend": "pyav"},
        "policy": None,
        "reward_model": block,
        "output_dir": "outputs/reward_classifier",
        "job_name": "reward-classifier",
        "resume": False,
        "seed": 2,
        "batch_size": 16,
        "steps": 5000,
        "log_freq": 10,
        "save_freq": 1000,
        "wandb": {"enable": False, "project": "reward-classifier"},
    }
    path = _write(tmp_path, data)
    cfg = parse_config(RewardTrainConfig, ["--config_path", path])
    assert cfg.reward_model is None and cfg.policy.model_name == "lerobot/resnet10"
    assert cfg.policy.num_cameras == 1 and cfg.policy.input_features["observation.images.front"].shape == [
        3,
        128,
        128,
    ]
    assert cfg.policy.normalization_mapping == {"VISUAL": "MEAN_STD"} and cfg.steps == 5000
    cfg = parse_config(RewardTrainConfig, ["--config_path", path, "--reward_model.hidden_dim=64"])
    assert cfg.policy.hidden_dim == 64
    with pytest.raises(ConfigError, match="given twice"):
        parse_config(RewardTrainConfig, ["--config_path", path, "--policy.hidden_dim=64"])
    saved = tmp_path / "saved.json"
    save_config(cfg, saved)  # what train-reward keeps with the run parses back under `policy`
    assert parse_config(RewardTrainConfig, ["--config_path", str(saved)]).policy == cfg.policy


def test_seed_env_configs_load_unchanged(tmp_path):
    cfg = parse_config(EnvConfig, ["--config_path", _write(tmp_path, SEED_000_RECORD)])
    assert cfg.mode == "record" and cfg.number_of_steps_after_success == 15 and cfg.push_to_hub is True
    cfg = parse_config(EnvConfig, ["--config_path", _write(tmp_path, SEED_004_ENV)])
    assert cfg.reward_classifier().pretrained_path == "path/to/trained/classifier"
    assert cfg.reward_classifier().success_threshold == 0.7
    cfg = parse_config(EnvConfig, ["--reward_classifier_pretrained_path=only/old"])
    assert cfg.reward_classifier().pretrained_path == "only/old"


def test_dotted_overrides_beat_the_file(tmp_path):
    path = _write(tmp_path, SEED_000_TRAIN)
    cfg = parse_config(RewardTrainConfig, ["--config_path", path, "--policy.hidden_dim=512", "--steps", "7"])
    assert cfg.policy.hidden_dim == 512 and cfg.steps == 7


@pytest.mark.parametrize(
    "argv, key, suggestion",
    [
        (["--policy.hiden_dim=3"], "policy.hiden_dim", "policy.hidden_dim"),
        (["--dataset.rooot=/x"], "dataset.rooot", "dataset.root"),
        (["--stepz=3"], "stepz", "steps"),
    ],
)
def test_unknown_cli_key_names_closest(argv, key, suggestion):
    with pytest.raises(ConfigError, match=f"unknown config key '{key}'.*'{suggestion}'"):
        parse_config(RewardTrainConfig, argv)


@pytest.mark.parametrize(
    "cls_name, argv, key, suggestion",
    [
        # `hilserl record` takes the env's options at the top: the section the user typed is not there
        ("EnvConfig", ["--env.task=pick_lift"], "env.task", "task"),
        # `hilserl run` keeps them under env: the option of that name inside a section
        ("TrainRLConfig", ["--task=pick_lift"], "task", "env.task"),
        ("TrainRLConfig", ["--bc_weight=2"], "bc_weight", "learner.bc_weight"),
    ],
)
def test_unknown_cli_key_names_the_flag_the_user_meant(cls_name, argv, key, suggestion):
    from configs.env import EnvConfig
    from configs.rl import TrainRLConfig

    cls = {"EnvConfig": EnvConfig, "TrainRLConfig": TrainRLConfig}[cls_name]
    with pytest.raises(ConfigError) as caught:
        parse_config(cls, argv)
    assert (
        str(caught.value) == f"unknown config key '{key}' in the command line; did you mean '{suggestion}'?"
    )


def test_unknown_file_key_names_closest(tmp_path):
    data = json.loads(json.dumps(SEED_000_TRAIN))
    data["policy"]["num_camera"] = 2
    with pytest.raises(ConfigError, match="'policy.num_camera'.*'policy.num_cameras'"):
        parse_config(RewardTrainConfig, ["--config_path", _write(tmp_path, data)])
    data = {"processor": {"reward_classifier": {"succes_threshold": 0.5}}}
    with pytest.raises(ConfigError, match="processor.reward_classifier.success_threshold"):
        parse_config(EnvConfig, ["--config_path", _write(tmp_path, data)])


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        parse_config(RewardTrainConfig, ["--config_path", str(tmp_path / "missing.json")])
    bad = tmp_path / "bad.json"
    bad.write_text("{ not json")
    with pytest.raises(ConfigError, match="not valid JSON"):
        parse_config(RewardTrainConfig, ["--config_path", str(bad)])
    with pytest.raises(ConfigError, match="reward_classifier"):
        parse_config(RewardTrainConfig, ["--policy.type=sac"])


def test_saved_config_parses_back(tmp_path):
    cfg = parse_config(RewardTrainConfig, ["--config_path", _write(tmp_path, SEED_000_TRAIN), "--steps=3"])
    save_config(cfg, tmp_path / "saved.json")
    again = parse_config(RewardTrainConfig, ["--config_path", str(tmp_path / "saved.json")])
    assert again == cfg
