"""`hilserl doctor`: seed 003's hand-fixed defects are found, repaired into a clean copy, never in place."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cluster.cli import main as hilserl
from reward.dataset import read_info
from tests.lerobot_data import make_dataset, open_lerobot_dataset, tree_hash
from tests.v21_data import level, make_v21_dataset, truncate_episode_by_hand

FRONT = "observation.images.front"


def run_doctor(capsys, *args) -> tuple[int, str, str]:
    code = hilserl(["doctor", *(str(a) for a in args), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def clean_video(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("doctor") / "clean"
    make_dataset(root, episode_lengths=(12, 10, 14), use_videos=True, reward_fn=lambda e, i: float(i >= 6))
    return root


def break_v30(source: Path, root: Path) -> Path:
    """A copy with seed 003's hand-edit damage: rewards changed, index shifted, stale lengths and totals."""
    shutil.copytree(source, root)
    path = next(root.glob("data/*/*.parquet"))
    table = pq.read_table(path)
    index = table.column("index").to_numpy().copy()
    index[12:] += 5
    rewards = table.column("next.reward").to_numpy().copy()
    rewards[:3] = 1.0
    table = table.set_column(table.schema.get_field_index("index"), "index", pa.array(index))
    table = table.set_column(table.schema.get_field_index("next.reward"), "next.reward", pa.array(rewards))
    pq.write_table(table, path)
    episodes_path = next(root.glob("meta/episodes/*/*.parquet"))
    episodes = pq.read_table(episodes_path).to_pandas()
    episodes.loc[1, "length"] = 8
    pq.write_table(pa.Table.from_pandas(episodes, preserve_index=False), episodes_path)
    info = json.loads((root / "meta/info.json").read_text())
    info["total_frames"] = 30
    (root / "meta/info.json").write_text(json.dumps(info, indent=4))
    return root


def test_clean_dataset_exits_0(clean_video, capsys):
    before = tree_hash(clean_video)
    code, out, _ = run_doctor(capsys, clean_video)
    assert code == 0 and "no defects found" in out
    assert tree_hash(clean_video) == before


def test_v30_defects_are_found_and_fixed_into_a_clean_copy(clean_video, tmp_path, capsys):
    broken = break_v30(clean_video, tmp_path / "broken")
    before = tree_hash(broken)
    code, out, _ = run_doctor(capsys, broken)
    assert code == 1
    for check in ("[episode-lengths]", "[global-index]", "[totals]", "[episode-stats]", "[stats]"):
        assert check in out, out
    assert "episode 1: meta 8, data 10" in out and "total_frames 30 (data: 36)" in out
    assert "fix:" in out
    assert tree_hash(broken) == before

    fixed = tmp_path / "fixed"
    code, out, _ = run_doctor(capsys, broken, "--fix", "--out", fixed)
    assert code == 0 and "doctor finds the copy clean" in out
    assert tree_hash(broken) == before
    assert run_doctor(capsys, fixed)[0] == 0
    dataset = open_lerobot_dataset(fixed)
    assert (dataset.meta.total_episodes, dataset.meta.total_frames) == (3, 36)
    data = dataset.hf_dataset.with_format("numpy")
    assert np.array_equal(np.asarray(data["index"]), np.arange(36))
    rewards = np.asarray(data["next.reward"])
    assert rewards[:3].tolist() == [1.0] * 3  # the data's labels are kept, only derived fields change
    assert np.isclose(dataset.meta.stats["next.reward"]["mean"][0], rewards.mean())
    item = dataset[20]
    assert (
        abs(float(item[FRONT].mean() * 255) - level(int(item["episode_index"]), int(item["frame_index"]))) < 3
    )


def test_missing_video_cannot_be_fixed_and_nothing_is_written(clean_video, tmp_path, capsys):
    damaged = tmp_path / "damaged"
    shutil.copytree(clean_video, damaged)
    video = next(damaged.glob("videos/**/*.mp4"))
    video.unlink()
    before = tree_hash(damaged)
    code, out, _ = run_doctor(capsys, damaged)
    assert code == 1 and "[videos-missing]" in out and video.name in out
    fixed = tmp_path / "fixed"
    code, out, _ = run_doctor(capsys, damaged, "--fix", "--out", fixed)
    assert code == 1 and "cannot repair" in out and "nothing was written" in out
    assert not fixed.exists() and tree_hash(damaged) == before


def test_short_video_is_found_and_blocks_fix(tmp_path, capsys):
    root = make_v21_dataset(tmp_path / "short", episode_lengths=(10, 12), video_frames={1: 7})
    before = tree_hash(root)
    code, out, _ = run_doctor(capsys, root)
    assert code == 1 and "[videos-short]" in out
    assert "episode 1 observation.images.front: 7 of 12 frames" in out
    code, out, _ = run_doctor(capsys, root, "--fix", "--out", tmp_path / "fixed")
    assert code == 1 and "nothing was written" in out and not (tmp_path / "fixed").exists()
    assert tree_hash(root) == before


def test_drop_lost_writes_a_copy_without_the_episodes_whose_frames_are_gone(tmp_path, capsys):
    root = make_v21_dataset(tmp_path / "short", episode_lengths=(10, 12, 9), video_frames={1: 7})
    before = tree_hash(root)
    code, out, _ = run_doctor(capsys, root, "--fix", "--out", tmp_path / "plain")
    assert code == 1 and "--drop-lost: episode(s) [1]" in out and not (tmp_path / "plain").exists()
    code, out, _ = run_doctor(capsys, root, "--fix", "--drop-lost", "--out", tmp_path / "fixed")
    assert code == 0 and "leaving out episode(s) [1]" in out and "doctor finds the copy clean" in out
    dataset = open_lerobot_dataset(tmp_path / "fixed")
    assert dataset.meta.total_episodes == 2 and dataset.meta.total_frames == 10 + 9
    assert tree_hash(root) == before
    with pytest.raises(SystemExit):
        run_doctor(capsys, root, "--drop-lost")
    assert "--drop-lost is only used with --fix" in capsys.readouterr().err


def test_missing_reward_column_is_reported_not_invented(tmp_path, capsys):
    root = tmp_path / "unlabeled"
    make_dataset(root, episode_lengths=(5, 5), use_videos=False, with_reward=False)
    before = tree_hash(root)
    code, out, _ = run_doctor(capsys, root)
    assert code == 1 and "[reward]" in out and "hilserl label" in out
    assert "found 1 defect(s)" in out  # an image-backed dataset gets no other (false) findings
    code, out, _ = run_doctor(capsys, root, "--fix", "--out", tmp_path / "copy")
    assert code == 1 and "still 1 defect(s)" in out
    assert "next.reward" not in read_info(tmp_path / "copy")["features"]
    assert tree_hash(root) == before


def test_seed003_hand_edited_v21_dataset_is_converted_and_repaired(tmp_path, capsys):
    # Seed 003: reset frames cut from the parquet files by hand, meta left as it was.
    root = make_v21_dataset(tmp_path / "reach_grasp", episode_lengths=(14, 16, 12))
    truncate_episode_by_hand(root, 1, 9)
    before = tree_hash(root)
    code, out, _ = hilserl_doctor(capsys, root)
    assert code == 1
    for check in ("[layout]", "[episode-lengths]", "[global-index]", "[totals]", "[episode-stats]"):
        assert check in out, out
    assert "episode 1: meta 16, data 9" in out
    fixed = tmp_path / "fixed"
    code, out, _ = hilserl_doctor(capsys, root, "--fix", "--out", fixed)
    assert code == 0 and "doctor finds the copy clean" in out
    assert tree_hash(root) == before
    dataset = open_lerobot_dataset(fixed)
    assert read_info(fixed)["codebase_version"] == "v3.0"
    assert [dataset.meta.episodes[e]["length"] for e in range(3)] == [14, 9, 12]
    assert dataset.meta.total_frames == 35
    for i in (0, 14, 22, 23, 34):
        item = dataset[i]
        assert (
            abs(float(item[FRONT].mean() * 255) - level(int(item["episode_index"]), int(item["frame_index"])))
            < 3
        )


def hilserl_doctor(capsys, *args) -> tuple[int, str, str]:
    code = hilserl(["doctor", *map(str, args), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("case", ["no-info-json", "inside-source", "empty-dataset"])
def test_bad_input_is_a_one_line_error(case, clean_video, tmp_path, capsys):
    source, args = clean_video, []
    if case == "no-info-json":
        source = tmp_path / "not_a_dataset"
        source.mkdir()
    elif case == "inside-source":
        args = ["--fix", "--out", clean_video / "fixed"]
    else:
        source = tmp_path / "empty"
        (source / "meta").mkdir(parents=True)
        (source / "meta/info.json").write_text(
            json.dumps({"codebase_version": "v3.0", "fps": 10, "features": {}})
        )
    before = tree_hash(source)
    code, out, err = run_doctor(capsys, source, *args)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert tree_hash(source) == before and out == ""
