"""Bad input files as users write them, through the real `hilserl` dispatcher: each is one line on
stderr, exit 2, and nothing is written. Encodings, byte-order marks, duplicate keys, non-finite
numbers, damaged run files (docs/commands.md, Bad input)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cluster.cli import main as hilserl
from tests.lerobot_data import make_dataset, tree_hash


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad") / "src"
    make_dataset(root, episode_lengths=(12, 10), use_videos=False, with_reward=False)
    return root


def _one_line_error(capsys, argv: list[str], match: str, root: Path) -> None:
    before = tree_hash(root)
    assert hilserl(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: ") and match in err[0], err
    assert tree_hash(root) == before  # nothing written


LATIN1 = "café".encode("latin-1")


@pytest.mark.parametrize(
    "content, match",
    [
        (b'{"seed": 1, "seed": 2}', "has the key 'seed' twice; keep one"),
        (b'{"env": {"fps": 10, "fps": 30}}', "has the key 'fps' twice"),
        (b'{"output_dir": "' + LATIN1 + b'"}', "is not UTF-8 text (byte 0xe9"),
        (b'{"learner": {"discount": NaN}}', "holds NaN, which is not a number JSON allows"),
        (b'{"learner": {"discount": Infinity}}', "holds Infinity"),
    ],
    ids=["duplicate key", "duplicate nested key", "latin-1", "NaN", "Infinity"],
)
def test_config_files(tmp_path, capsys, content, match):
    path = tmp_path / "cfg.json"
    path.write_bytes(content)
    _one_line_error(capsys, ["run", "--config_path", str(path)], match, tmp_path)


def test_a_config_with_a_byte_order_mark_reads(tmp_path):
    from configs.parsing import load_config_dict

    path = tmp_path / "cfg.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"seed": 3}).encode())  # Windows editors write one
    assert load_config_dict(path) == {"seed": 3}


@pytest.mark.parametrize(
    "cutoffs, match",
    [
        ('{"0": 5, "0": 7, "1": 3}', "has the key '0' twice"),
        ('{"0": NaN, "1": 3}', "holds NaN"),
    ],
    ids=["duplicate episode", "NaN"],
)
def test_cutoffs(source, tmp_path, capsys, cutoffs, match):
    out = tmp_path / "out"
    _one_line_error(capsys, ["label", str(source), "--out", str(out), "--cutoffs", cutoffs], match, source)
    assert not out.exists()
    path = tmp_path / "cutoffs.json"  # the same from a file
    path.write_text(cutoffs)
    _one_line_error(capsys, ["label", str(source), "--out", str(out), "--cutoffs", str(path)], match, source)
    assert not out.exists()


def test_a_latin1_labels_csv_is_one_line_and_a_bom_one_reads(source, tmp_path, capsys):
    rows = "episode,success_start,env_reset_start\n0,5,12\n1,3,10\n"
    path = tmp_path / "labels.csv"
    path.write_bytes(rows.encode() + b"# " + LATIN1 + b"\n")
    out = tmp_path / "out"
    _one_line_error(
        capsys, ["label", str(source), "--out", str(out), "--csv", str(path)], "is not UTF-8 text", source
    )
    assert not out.exists()
    path.write_bytes(b"\xef\xbb\xbf" + rows.encode())  # Excel's "CSV UTF-8" starts with a BOM
    assert hilserl(["label", str(source), "--out", str(out), "--csv", str(path), "--no-progress"]) == 0
    assert (out / "meta" / "info.json").is_file()


def test_a_damaged_run_file_is_one_row_in_runs_and_one_line_on_resume(tmp_path, capsys):
    from actors.roles.rundir import prepare_run_dir
    from configs.errors import UserError
    from tests.rl_fixtures import tiny_config

    cfg = tiny_config(tmp_path, steps=8).resolve()
    folder = prepare_run_dir(cfg)
    good = folder.parent / "good"
    good.mkdir()
    (good / "run.json").write_text(json.dumps({"name": "good", "env_steps": 5}))
    (folder / "run.json").write_text('{"name": "tiny", "env_st')  # cut off mid-write by a full disk
    assert hilserl(["runs", str(folder.parent)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert any(line.startswith("good ") for line in lines)
    assert any(line.startswith("tiny ") and "unreadable" in line for line in lines)
    cfg.resume = True
    before = tree_hash(folder)
    with pytest.raises(UserError, match=r"run.json is unreadable .*restore it from a copy") as err:
        prepare_run_dir(cfg)
    assert "\n" not in str(err.value) and tree_hash(folder) == before


@pytest.mark.parametrize(
    "flag, match",
    [
        ("--learner.discount=inf", "learner.discount=inf must be a finite number"),
        ("--learner.discount=nan", "learner.discount=nan must be a finite number"),
        ("--learner.discount=1.5", "learner.discount=1.5 must be in (0, 1]"),
        ("--env.fps=-5", "env.fps=-5 must be above 0"),
        ("--learner.critic_lr=0", "learner.critic_lr=0.0 must be above 0"),
        ("--env.processor.gripper.gripper_penalty=-inf", "gripper_penalty=-inf must be a finite number"),
    ],
)
def test_run_numbers_out_of_range_or_not_finite(tmp_path, capsys, flag, match):
    argv = ["run", "--reward.source=sparse", f"--output_dir={tmp_path / 'runs'}", flag]
    _one_line_error(capsys, argv, match, tmp_path)


def test_an_episode_listed_twice_is_one_line(source):
    from configs.errors import UserError
    from reward.dataset_source import SourceDataset

    with pytest.raises(UserError, match="--episodes names episode 0 twice; list each episode once"):
        SourceDataset(source).select_episodes([0, 1, 0], "--episodes")
    assert SourceDataset(source).select_episodes([1, 0], "--episodes") == [1, 0]
