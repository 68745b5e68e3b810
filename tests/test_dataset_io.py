"""reward.dataset: layout detection, local-only opening, camera keys, fingerprints and safe output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from configs.errors import UserError
from reward.dataset import (
    V21,
    V30,
    camera_keys,
    check_destination,
    dataset_fingerprint,
    detect_layout,
    read_info,
    require_camera_keys,
    safe_output,
)
from tests.lerobot_data import make_dataset, tree_hash
from tests.v21_data import make_v21_dataset


@pytest.fixture(scope="module")
def image_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("io") / "images"
    make_dataset(
        root,
        episode_lengths=(6, 4),
        cameras=("front", "wrist"),
        use_videos=False,
        reward_fn=lambda e, i: float(i >= 3),
    )
    return root


@pytest.fixture(scope="module")
def video_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("io") / "video"
    make_dataset(root, episode_lengths=(5, 5), use_videos=True)
    return root


@pytest.fixture(scope="module")
def v21_root(tmp_path_factory):
    return make_v21_dataset(tmp_path_factory.mktemp("io") / "v21", episode_lengths=(4, 3))


def test_layouts_are_detected(image_root, v21_root, tmp_path):
    assert detect_layout(image_root) == V30
    assert detect_layout(v21_root) == V21
    root = tmp_path / "old"
    (root / "meta").mkdir(parents=True)
    (root / "meta/info.json").write_text(json.dumps({"codebase_version": "v1.6", "fps": 10, "features": {}}))
    with pytest.raises(UserError, match="v1.6"):
        detect_layout(root)


def test_missing_or_corrupt_info_is_a_one_line_user_error(image_root, tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        read_info(tmp_path / "nowhere")
    with pytest.raises(UserError, match="meta/info.json is missing"):
        read_info(tmp_path)
    broken = tmp_path / "broken"
    shutil.copytree(image_root, broken)
    (broken / "meta/info.json").write_text('{"fps": 10, "features": {')
    with pytest.raises(UserError, match="corrupt") as err:
        read_info(broken)
    assert "\n" not in str(err.value)


def test_camera_keys_and_missing_key_error(image_root):
    assert camera_keys(image_root) == ["observation.images.front", "observation.images.wrist"]
    assert require_camera_keys(image_root, ["wrist", "observation.images.front"]) == [
        "observation.images.wrist",
        "observation.images.front",
    ]
    with pytest.raises(
        UserError, match="no image key 'top'.*observation.images.front, observation.images.wrist"
    ):
        require_camera_keys(image_root, ["top"])


def test_iter_episodes_reads_v30_videos_images_and_v21_one_episode_at_a_time(
    image_root, video_root, v21_root
):
    from reward.dataset_source import iter_episodes

    episodes = list(iter_episodes(video_root, columns=["observation.state", "action", "next.reward"]))
    assert [(e.index, len(e)) for e in episodes] == [(0, 5), (1, 5)]
    frames = episodes[1].frames["observation.images.front"]
    assert frames.dtype == np.uint8 and frames.shape == (5, 32, 32, 3)
    # brightness encodes (episode, frame) in tests.lerobot_data
    assert abs(float(frames[2].mean()) - ((1 * 37 + 2 * 5) % 200 + 20)) < 3
    assert episodes[0].columns["action"].shape == (5, 4) and set(episodes[0].columns) == {
        "observation.state",
        "action",
        "next.reward",
    }
    (only,) = iter_episodes(image_root, image_keys=["wrist"], columns=["next.reward"], episodes=[1])
    assert only.index == 1 and list(only.frames) == ["observation.images.wrist"]
    assert only.columns["next.reward"].reshape(-1).tolist() == [0.0, 0.0, 0.0, 1.0]
    v21 = list(iter_episodes(v21_root, columns=[]))
    assert [len(e) for e in v21] == [4, 3] and v21[0].frames["observation.images.front"].shape[0] == 4
    with pytest.raises(UserError, match="episode 7"):
        list(iter_episodes(image_root, episodes=[7]))
    with pytest.raises(UserError, match="column 'next.done'"):
        list(iter_episodes(image_root, columns=["next.done"]))


def test_damaged_datasets_are_one_line_errors_never_downloads(video_root, tmp_path):
    from reward.dataset_source import iter_episodes

    cases = {
        "missing-video": lambda root: next(root.glob("videos/**/*.mp4")).unlink(),
        "no-meta-episodes": lambda root: shutil.rmtree(root / "meta/episodes"),
        "corrupt-parquet": lambda root: next(root.glob("data/*/*.parquet")).write_bytes(b"PAR1 not really"),
        "corrupt-video": lambda root: next(root.glob("videos/**/*.mp4")).write_bytes(b"\0" * 64),
    }
    for name, damage in cases.items():
        damaged = tmp_path / name
        shutil.copytree(video_root, damaged)
        damage(damaged)
        before = tree_hash(damaged)
        with pytest.raises(UserError) as err:
            list(iter_episodes(damaged))
        assert "\n" not in str(err.value), name
        assert tree_hash(damaged) == before, name


def test_fingerprint_tracks_labels(image_root, tmp_path):
    first = dataset_fingerprint(image_root)
    assert first == dataset_fingerprint(image_root)
    assert (first["episodes"], first["frames"], first["reward_key"]) == (2, 10, "next.reward")
    assert (first["positives"], first["negatives"], first["label_hash"]) == (
        4,
        6,
        first["reward_sha256"][:16],
    )
    only = dataset_fingerprint(image_root, episodes=[1])
    assert (only["episodes"], only["frames"], only["positives"]) == (1, 4, 1)
    relabeled = tmp_path / "relabeled"
    shutil.copytree(image_root, relabeled)
    path = next(relabeled.glob("data/*/*.parquet"))
    table = pq.read_table(path)
    rewards = table.column("next.reward").to_numpy().copy()
    rewards[0] = 1.0
    table = table.set_column(table.schema.get_field_index("next.reward"), "next.reward", pa.array(rewards))
    pq.write_table(table, path)
    assert dataset_fingerprint(relabeled)["reward_sha256"] != first["reward_sha256"]
    with pytest.raises(UserError, match="no 'success' column"):
        dataset_fingerprint(image_root, reward_key="success")


def test_check_destination_refuses_unsafe_places(image_root, tmp_path):
    for inside in (image_root, image_root / "labeled", image_root / "meta"):
        with pytest.raises(UserError, match="inside the source"):
            check_destination(inside, [image_root])
    with pytest.raises(UserError, match="contains the source"):
        check_destination(image_root.parent, [image_root], overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        check_destination(tmp_path / "file", [image_root])
    (tmp_path / "full").mkdir()
    (tmp_path / "full/keep.txt").write_text("x")
    with pytest.raises(UserError, match="--overwrite"):
        check_destination(tmp_path / "full", [image_root])
    with pytest.raises(UserError, match="did not write"):  # --overwrite replaces only what we wrote
        check_destination(tmp_path / "full", [image_root], overwrite=True)
    (tmp_path / "full/meta").mkdir()
    (tmp_path / "full/meta/info.json").write_text("{}")
    assert check_destination(tmp_path / "full", [image_root], overwrite=True) == (tmp_path / "full").resolve()
    (tmp_path / "empty").mkdir()
    assert check_destination(tmp_path / "empty", [image_root]) == (tmp_path / "empty").resolve()


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


def test_safe_output_renames_only_when_complete(tmp_path):
    dest = tmp_path / "out"
    with pytest.raises(RuntimeError, match="interrupted"):
        with safe_output(dest) as tmp:
            tmp.mkdir()
            (tmp / "half.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert not dest.exists() and _siblings(dest) == []

    with safe_output(dest) as tmp:
        assert not tmp.exists() and tmp.parent == dest.parent
        tmp.mkdir()
        (tmp / "data.txt").write_text("new")
    assert (dest / "data.txt").read_text() == "new" and _siblings(dest) == []


def test_safe_output_overwrite_keeps_the_old_root_until_the_new_one_is_complete(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with safe_output(dest, overwrite=True) as tmp:
            tmp.mkdir()
            raise KeyboardInterrupt
    assert (dest / "old.txt").read_text() == "old" and _siblings(dest) == []

    with safe_output(dest, overwrite=True) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new")
    assert sorted(p.name for p in dest.iterdir()) == ["new.txt"] and _siblings(dest) == []


def test_fingerprint_of_v21_reads_its_episode_files(v21_root):
    fingerprint = dataset_fingerprint(v21_root)
    assert (fingerprint["codebase_version"], fingerprint["episodes"], fingerprint["frames"]) == (V21, 2, 7)
    assert np.isclose(len(fingerprint["reward_sha256"]), 64)


FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.mark.parametrize("writer", ["0.4.4", "installed"])
def test_datasets_written_by_lerobot_0_4_and_0_6_read_and_rewrite(writer, tmp_path):
    """A dataset from LeRobot 0.4.4's writer (the committed fixture, made with
    ``make_dataset(root, (3, 4), image_size=64, use_videos=True, reward_fn=lambda e, i: float(i >= 2))``
    under LeRobot 0.4.4) and one from the installed writer (0.6): both read frame by frame, doctor finds
    them clean, LeRobot opens them, and the installed writer copies them (``rewrite_dataset``, doctor
    --fix's and the v2.1 conversion's path)."""
    from cluster.cli import main as hilserl
    from reward.dataset_checks import check_dataset
    from reward.dataset_source import SourceDataset, iter_episodes
    from reward.dataset_write import rewrite_dataset
    from tests.lerobot_data import open_lerobot_dataset

    root = tmp_path / "data"
    if writer == "0.4.4":
        shutil.copytree(FIXTURES / "lerobot_0.4.4", root)
    else:
        make_dataset(
            root, episode_lengths=(3, 4), image_size=64, use_videos=True, reward_fn=lambda e, i: float(i >= 2)
        )
    before = tree_hash(root)
    assert detect_layout(root) == V30 and check_dataset(SourceDataset(root)) == []
    episodes = list(iter_episodes(root, columns=["next.reward"]))
    assert [len(e) for e in episodes] == [3, 4]
    assert episodes[1].columns["next.reward"].reshape(-1).tolist() == [0.0, 0.0, 1.0, 1.0]
    for episode in episodes:  # brightness encodes (episode, frame) in tests.lerobot_data
        frames = episode.frames["observation.images.front"]
        assert frames.shape == (len(episode), 64, 64, 3)
        for i, frame in enumerate(frames):
            assert abs(float(frame.mean()) - ((episode.index * 37 + i * 5) % 200 + 20)) < 3
    assert open_lerobot_dataset(root).num_frames == 7
    assert hilserl(["doctor", str(root)]) == 0
    rewrite_dataset(root, tmp_path / "copy", progress=False)
    assert check_dataset(SourceDataset(tmp_path / "copy")) == []
    copy = list(iter_episodes(tmp_path / "copy", columns=["next.reward"]))
    assert [e.columns["next.reward"].reshape(-1).tolist() for e in copy] == [
        e.columns["next.reward"].reshape(-1).tolist() for e in episodes
    ]
    assert tree_hash(root) == before  # reading never writes into the source
