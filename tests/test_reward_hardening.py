"""train-reward / eval-reward on bad input: one-line errors, no hub, no writes inside datasets, no silent overwrites."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cluster.cli import main as hilserl
from configs.parsing import save_config
from reward.train import run
from tests.lerobot_data import tree_hash
from tests.reward_helpers import labeled_dataset, train_config, write_backbone

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A two-camera video dataset, a backbone folder and a checkpoint trained on it for two steps."""
    base = tmp_path_factory.mktemp("hard")
    data = base / "data"
    labeled_dataset(data, image_size=32, episodes=(5, 5), use_videos=True)
    backbone = write_backbone(base / "resnet10")
    checkpoint = run(train_config(data, backbone, base / "trained", val_fraction=0.5)).best_checkpoint
    return data, backbone, checkpoint


def one_line_error(capsys, argv, code=2) -> str:
    capsys.readouterr()
    assert hilserl(argv) == code
    err = capsys.readouterr().err.strip()
    assert err.startswith(("error: ", "interrupted: ")) and "\n" not in err, err
    return err


def no_hub(monkeypatch):
    """Any attempt to reach the hub fails the test loudly."""
    import huggingface_hub

    def refuse(*args, **kwargs):
        raise AssertionError("the hub was consulted")

    for name in ("snapshot_download", "hf_hub_download", "list_repo_refs"):
        monkeypatch.setattr(huggingface_hub, name, refuse)
        monkeypatch.setattr(huggingface_hub.HfApi, name, refuse, raising=False)


def train_argv(tmp_path, cfg) -> list[str]:
    path = tmp_path / "cfg.json"
    save_config(cfg, path)
    return ["train-reward", "--config_path", str(path)]


def eval_argv(checkpoint, data, out) -> list[str]:
    return ["eval-reward", "--checkpoint", str(checkpoint), "--dataset", str(data), "--out", str(out)]


@pytest.mark.parametrize("damage", ["missing-video", "no-meta-episodes", "corrupt-parquet"])
def test_damaged_data_is_one_line_and_never_the_hub(damage, setup, tmp_path, capsys, monkeypatch):
    data, backbone, checkpoint = setup
    no_hub(monkeypatch)
    damaged = tmp_path / "damaged"
    shutil.copytree(data, damaged)
    if damage == "missing-video":
        next(damaged.glob("videos/**/*.mp4")).unlink()
    elif damage == "no-meta-episodes":
        shutil.rmtree(damaged / "meta/episodes")
    else:
        next(damaged.glob("data/*/*.parquet")).write_bytes(b"PAR1 truncated")
    before = tree_hash(damaged)
    one_line_error(capsys, eval_argv(checkpoint, damaged, tmp_path / "ev"))
    one_line_error(capsys, train_argv(tmp_path, train_config(damaged, backbone, tmp_path / "out")))
    assert tree_hash(damaged) == before
    assert not (tmp_path / "ev").exists() and not (tmp_path / "out").exists()


def test_outputs_inside_the_dataset_are_refused(setup, tmp_path, capsys):
    data, backbone, checkpoint = setup
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    before = tree_hash(copy)
    err = one_line_error(capsys, train_argv(tmp_path, train_config(copy, backbone, copy / "model")))
    assert "inside the source dataset" in err and "--output_dir" in err
    err = one_line_error(capsys, eval_argv(checkpoint, copy, copy / "eval"))
    assert "inside the source dataset" in err and "--out" in err
    assert tree_hash(copy) == before


def test_existing_outputs_need_overwrite_which_replaces_only_ours(setup, tmp_path, capsys):
    data, backbone, checkpoint = setup
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    cfg = train_config(data, backbone, out)
    assert "--overwrite" in one_line_error(capsys, train_argv(tmp_path, cfg))
    cfg.overwrite = True
    assert "did not write" in one_line_error(capsys, train_argv(tmp_path, cfg))
    assert [p.name for p in out.iterdir()] == ["notes.txt"]

    ev = tmp_path / "ev"
    capsys.readouterr()
    assert hilserl(eval_argv(checkpoint, data, ev)) == 0
    before = tree_hash(ev)
    assert "--overwrite" in one_line_error(capsys, eval_argv(checkpoint, data, ev))
    assert tree_hash(ev) == before
    assert hilserl([*eval_argv(checkpoint, data, ev), "--overwrite"]) == 0
    assert sorted(p.name for p in ev.iterdir()) == ["confusion_matrix.png", "pr_curve.png", "report.json"]


def _damaged_checkpoint(checkpoint: Path, tmp_path: Path, how: str) -> Path:
    broken = tmp_path / f"ckpt_{how}"
    shutil.copytree(checkpoint, broken)
    weights = broken / "model.safetensors"
    if how == "flipped-byte":
        raw = bytearray(weights.read_bytes())
        raw[-5] ^= 0x01  # one weight byte
        weights.write_bytes(bytes(raw))
    elif how == "truncated":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif how == "corrupt-config":
        (broken / "config.json").write_text('{"type": "reward_classifier", ')
    elif how == "preprocessing":
        config = json.loads((broken / "hilserl.json").read_text())
        config["preprocessing"]["normalize"]["mean"] = [0.5, 0.5, 0.5]
        (broken / "hilserl.json").write_text(json.dumps(config))
    return broken


@pytest.mark.parametrize("how", ["flipped-byte", "truncated", "corrupt-config", "preprocessing"])
def test_damaged_checkpoints_are_refused_naming_the_file(how, setup, tmp_path, capsys):
    data, _, checkpoint = setup
    broken = _damaged_checkpoint(checkpoint, tmp_path, how)
    err = one_line_error(capsys, eval_argv(broken, data, tmp_path / "ev"))
    assert str(broken) in err
    assert not (tmp_path / "ev").exists()


def test_a_checkpoint_from_before_the_vision_package_still_loads(setup, tmp_path):
    """Its preprocessing spec names reward.preprocess (where the code lived); the transform is the same."""
    from reward.checkpoint import load_checkpoint

    data, _, checkpoint = setup
    older = tmp_path / "ckpt_older"
    shutil.copytree(checkpoint, older)
    config = json.loads((older / "hilserl.json").read_text())
    config["preprocessing"]["function"] = "reward.preprocess.preprocess_images"
    (older / "hilserl.json").write_text(json.dumps(config))
    load_checkpoint(older)


@pytest.mark.parametrize(
    "extra,expected",
    [
        (["--batch_size", "0"], "--batch_size"),
        (["--device", "cuda"], "no GPU"),
        (["--threshold", "2"], "--threshold"),
    ],
)
def test_bad_eval_flags_are_one_line(extra, expected, setup, tmp_path, capsys):
    if "cuda" in extra and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    data, _, checkpoint = setup
    err = one_line_error(capsys, [*eval_argv(checkpoint, data, tmp_path / "ev"), *extra])
    assert expected in err


def test_out_naming_a_file_and_flags_that_exist(setup, tmp_path, capsys):
    data, _, checkpoint = setup
    (tmp_path / "file.txt").write_text("x")
    err = one_line_error(capsys, eval_argv(checkpoint, data, tmp_path / "file.txt"))
    assert "not a folder" in err and "--out" in err
    # Every --flag an eval-reward error suggests is one eval-reward takes.
    (tmp_path / "empty").mkdir()
    err = one_line_error(capsys, eval_argv(checkpoint, tmp_path / "empty", tmp_path / "ev"))
    assert "--dataset.root" not in err and "--dataset" in err
    err = one_line_error(capsys, [*eval_argv(checkpoint, data, tmp_path / "ev"), "--reward_key", "success"])
    assert "--reward_key" in err and "--dataset.root" not in err


def test_ctrl_c_during_training_removes_the_partial_run_and_says_so(setup, tmp_path, capsys, monkeypatch):
    import reward.train

    data, backbone, _ = setup

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(reward.train, "save_sample_grid", interrupt)
    cfg = train_config(data, backbone, tmp_path / "out")
    capsys.readouterr()
    assert hilserl(train_argv(tmp_path, cfg)) == 130
    lines = capsys.readouterr().err.replace("\r", "\n").strip().splitlines()
    err = lines[-1]  # after the (closed) progress bar
    assert err.startswith("interrupted: ") and sum("interrupted" in line for line in lines) == 1
    assert "removed the partial run" in err and "no pretrained_model" in err
    assert not (tmp_path / "out").exists()


def test_random_backbone_warning_appears_once(setup, tmp_path, capsys, caplog):
    import vision.resnet10

    data, _, _ = setup
    vision.resnet10._WARNED_RANDOM.clear()
    cfg = train_config(data, tmp_path / "no_such_weights", tmp_path / "out", allow_random_backbone=True)
    capsys.readouterr()
    with caplog.at_level("WARNING"):
        assert hilserl(train_argv(tmp_path, cfg)) == 0
    assert caplog.text.count("RANDOM backbone weights") == 1


@pytest.mark.parametrize(
    "argv",
    [
        ["train-reward", "--help"],
        ["eval-reward", "--help"],
        ["eval-reward", "--checkpoint"],  # an argument error
        ["train-reward", "--no_such_key=1"],
    ],
)
def test_help_and_argument_errors_import_no_torch(argv):
    probe = (
        "import sys\nfrom cluster.cli import main\n"
        "try:\n    code = main(sys.argv[1:])\nexcept SystemExit as e:\n    code = e.code\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO_TORCH', file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, *argv], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.stderr.strip().endswith("NO_TORCH"), result.stderr[-500:]


def test_broken_pipe_is_quiet(setup):
    """`hilserl doctor ... | head`: the reader has gone; the command stops without a traceback."""
    data, _, _ = setup
    probe = (
        "import os, sys\nfrom cluster.cli import main\n"
        "class Gone:\n"
        "    def write(self, text): raise BrokenPipeError(32, 'Broken pipe')\n"
        "    def flush(self): pass\n"
        "    def fileno(self): return os.dup(1)\n"
        "sys.stdout = Gone()\n"
        "code = main(sys.argv[1:])\n"
        "sys.stdout = sys.__stdout__\n"
        "sys.exit(code)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe, "doctor", str(data), "--no-progress"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in result.stderr and "BrokenPipeError" not in result.stderr, result.stderr[-800:]
    assert result.returncode == 141


def test_num_workers_is_refused_not_ignored(setup, tmp_path, capsys):
    data, backbone, _ = setup
    err = one_line_error(
        capsys, train_argv(tmp_path, train_config(data, backbone, tmp_path / "m", num_workers=4))
    )
    assert "num_workers=4" in err
