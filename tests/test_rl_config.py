"""TrainRLConfig: one source per fact, seed-config compatibility, one-line refusals."""

import json

import pytest

from configs.env import EnvConfig, ImagePreprocessingConfig, ProcessorConfig
from configs.errors import ConfigError, UserError
from configs.parsing import decode_config, load_config_dict, parse_config
from configs.rl import TrainRLConfig


def _resolved(**overrides) -> TrainRLConfig:
    cfg = TrainRLConfig(**overrides)
    cfg.reward.source = "sparse" if "reward" not in overrides else cfg.reward.source
    return cfg.resolve()


def test_presets_load_and_resolve(tmp_path):
    from pathlib import Path

    configs = Path(__file__).resolve().parents[1] / "configs"
    sim = parse_config(
        TrainRLConfig, ["--config_path", str(configs / "sim_rl.json"), "--reward.source=sparse"]
    )
    sim.resolve()
    assert sim.learner.image_size == sim.env.image_size == 128 and sim.learner.action_dim == 4
    real = decode_config(TrainRLConfig, load_config_dict(configs / "so101_rl.json"))
    assert real.classifier().pretrained_path.endswith("pretrained_model")
    assert real.runtime.robot_resource == "so101"


def test_layout_is_derived_from_the_env_and_contradictions_are_refused():
    cfg = _resolved(env=EnvConfig(image_size=64), seed=7)
    assert cfg.learner.image_size == 64 and cfg.learner.seed == cfg.env.seed == 7
    cfg = TrainRLConfig(env=EnvConfig(image_size=64))
    cfg.reward.source = "sparse"
    cfg.learner.image_size = 96
    with pytest.raises(ConfigError, match="learner.image_size=96 contradicts"):
        cfg.resolve()


def test_seed_config_classifier_keys_load_unchanged(tmp_path):
    old = {"env": {"reward_classifier_pretrained_path": "/ckpt"}}
    new = {
        "env": {"processor": {"reward_classifier": {"pretrained_path": "/ckpt2", "success_threshold": 0.7}}}
    }
    for data, path in ((old, "/ckpt"), (new, "/ckpt2")):
        file = tmp_path / "c.json"
        file.write_text(json.dumps(data))
        cfg = parse_config(TrainRLConfig, ["--config_path", str(file)])
        assert cfg.classifier().pretrained_path == path
        cfg.resolve()


def test_classifier_reward_without_a_checkpoint_is_one_line():
    with pytest.raises(ConfigError, match="pretrained_path") as err:
        TrainRLConfig().resolve()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "processor, match",
    [
        (
            ProcessorConfig(
                image_preprocessing=ImagePreprocessingConfig(crop_params_dict={"a": [0, 0, 10, 10]})
            ),
            "crop",
        ),
        (ProcessorConfig(control_mode="gamepad"), "control_mode"),
        (ProcessorConfig(inverse_kinematics={"urdf": "x"}), "inverse_kinematics"),
    ],
)
def test_parsed_but_unimplemented_fields_are_refused(processor, match):
    with pytest.raises(UserError, match=match):
        EnvConfig(processor=processor).check_supported()
    EnvConfig(processor=ProcessorConfig(control_mode="scripted")).check_supported()  # agrees: fine


def test_a_real_arm_refuses_the_drivers_final_evaluation_and_paces_its_evaluations():
    """The final evaluation (runtime.eval_episodes) opens its own env in the driver: a real arm has
    one, held by the robot actor, so it is one line; a rehearsal's arm is simulated and may. Every
    evaluation on an arm keeps the control rate the policy trained at; the simulator's run free."""
    from pathlib import Path

    from actors.roles.evaluate import evaluation_env_config, evaluation_rate

    path = Path(__file__).resolve().parents[1] / "configs" / "so101_rl.json"
    argv = ["--config_path", str(path), "--reward.source=sparse", "--runtime.eval_episodes=5"]
    with pytest.raises(ConfigError, match="runtime.eval_episodes=5 needs a simulated robot"):
        parse_config(TrainRLConfig, argv).resolve()
    rehearsed = parse_config(TrainRLConfig, [*argv, "--env.rehearse=true"]).resolve()
    assert evaluation_rate(evaluation_env_config(rehearsed, recording=False)).period == pytest.approx(0.1)
    sim = _resolved(env=EnvConfig(fps=10))
    assert evaluation_rate(evaluation_env_config(sim, recording=False)).period is None
