"""`hilserl label` end to end: real LeRobot datasets in, a new labeled v3.0 dataset out, source untouched."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from cluster.cli import main as hilserl
from reward.dataset import read_info
from reward.label_spec import parse_cutoffs
from tests.lerobot_data import make_dataset, open_lerobot_dataset, tree_hash
from tests.v21_data import make_v21_dataset

SEED_002_CUTOFFS = {0: 53, 1: 36, 2: 43, 3: 40, 4: 40, 5: 44, 6: 44, 7: 39, 8: 43, 9: 34}
FRONT = "observation.images.front"


def level(episode: int, frame: int) -> int:
    """The brightness tests.lerobot_data.make_dataset gives frame ``frame`` of episode ``episode``."""
    return (episode * 37 + frame * 5) % 200 + 20


def run_label(capsys, *args) -> tuple[int, str, str]:
    code = hilserl(["label", *(str(a) for a in args), "--no-progress"])
    out, err = capsys.readouterr()
    return code, out, err


def columns(dataset) -> dict[str, np.ndarray]:
    table = dataset.hf_dataset.with_format("numpy")
    return {
        key: np.asarray(table[key])
        for key in ("episode_index", "frame_index", "index", "next.reward", "timestamp")
    }


def brightness(item, key: str = FRONT) -> float:
    return float(item[key].float().mean() * 255)


@pytest.fixture(scope="module")
def seed002_source(tmp_path_factory) -> Path:
    """Ten 100-frame video episodes, as recorded for seed 002 (rewards all 0)."""
    root = tmp_path_factory.mktemp("label") / "pick_lift"
    make_dataset(root, episode_lengths=(100,) * 10, use_videos=True, with_reward=True)
    return root


@pytest.fixture(scope="module")
def image_source(tmp_path_factory) -> Path:
    """Image-backed (PNG, lossless) episodes without a reward column."""
    root = tmp_path_factory.mktemp("label") / "reach_grasp_images"
    make_dataset(root, episode_lengths=(30, 25, 20, 28), use_videos=False, with_reward=False)
    return root


@pytest.fixture(scope="module")
def small_video_source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("label") / "reach_grasp_video"
    make_dataset(root, episode_lengths=(20, 24), use_videos=True, with_reward=True)
    return root


@pytest.mark.slow  # ~6 s: a thousand video frames written twice
def test_seed002_cutoffs_give_584_success_and_416_failure(seed002_source, tmp_path, capsys):
    before = tree_hash(seed002_source)
    out = tmp_path / "pick_lift_labeled"
    code, printed, _ = run_label(
        capsys, seed002_source, "--out", out, "--cutoffs", json.dumps(SEED_002_CUTOFFS)
    )
    assert code == 0
    assert tree_hash(seed002_source) == before
    assert "episodes 10  frames kept 1000  success 584  failure 416  dropped 0" in printed

    dataset = open_lerobot_dataset(out)
    assert (dataset.meta.total_episodes, dataset.meta.total_frames) == (10, 1000)
    data = columns(dataset)
    cutoffs = np.array([SEED_002_CUTOFFS[e] for e in data["episode_index"]])
    assert np.array_equal(data["next.reward"] == 1.0, data["frame_index"] >= cutoffs)
    assert (int((data["next.reward"] == 1.0).sum()), int((data["next.reward"] == 0.0).sum())) == (584, 416)
    assert np.array_equal(data["index"], np.arange(1000))
    assert np.isclose(dataset.meta.stats["next.reward"]["mean"][0], 0.584)
    # Images still belong to their frames: the factory encodes (episode, frame) in brightness.
    for episode in (0, 4, 9):
        for frame in (0, SEED_002_CUTOFFS[episode], 99):
            item = dataset[episode * 100 + frame]
            assert abs(brightness(item) - level(episode, frame)) < 3


def test_csv_drops_reset_frames_and_labels_gaps_on_images(image_source, tmp_path, capsys):
    before = tree_hash(image_source)
    csv = tmp_path / "success_frames.csv"
    # Seed 003's shape: success span, reset frames dropped, a failure gap, nan = no reset frames.
    csv.write_text(
        "episode,success_start,env_reset_start,failure_gaps,notes\n"
        "0,10,25,,\n"
        "1,5,nan,8-10;14,gap like seed 003 episode 4\n"
        "2,,12,,never succeeds\n"
        "3,20.0,28.0,,pandas writes floats next to nan\n"
    )
    out = tmp_path / "labeled"
    code, printed, _ = run_label(capsys, image_source, "--out", out, "--csv", csv)
    assert code == 0, printed
    assert tree_hash(image_source) == before

    kept = {0: 25, 1: 25, 2: 12, 3: 28}
    expected = {
        0: [0.0] * 10 + [1.0] * 15,
        1: [0.0] * 5 + [1.0] * 3 + [0.0] * 3 + [1.0] * 3 + [0.0] + [1.0] * 10,
        2: [0.0] * 12,
        3: [0.0] * 20 + [1.0] * 8,
    }
    assert "episodes 4  frames kept 90  success 39  failure 51  dropped 13" in printed
    dataset = open_lerobot_dataset(out)
    info = read_info(out)
    assert (info["total_episodes"], info["total_frames"]) == (4, 90)
    assert info["features"]["next.reward"]["dtype"] == "float32"
    data = columns(dataset)
    assert np.array_equal(data["index"], np.arange(90))
    assert np.allclose(data["timestamp"], data["frame_index"] / 10)
    for episode, labels in expected.items():
        mask = data["episode_index"] == episode
        assert mask.sum() == kept[episode]
        assert np.array_equal(data["frame_index"][mask], np.arange(kept[episode]))
        assert data["next.reward"][mask].tolist() == labels
    assert [dataset.meta.episodes[e]["length"] for e in range(4)] == [25, 25, 12, 28]
    assert dataset.meta.stats["next.reward"]["count"][0] == 90
    assert np.isclose(dataset.meta.stats["next.reward"]["mean"][0], 39 / 90)
    # PNG images are lossless: every kept frame is exactly the source frame.
    for i in range(0, 90, 7):
        item = dataset[i]
        assert round(brightness(item)) == level(int(item["episode_index"]), int(item["frame_index"]))


def test_csv_on_video_keeps_videos_consistent_with_the_frames_kept(small_video_source, tmp_path, capsys):
    before = tree_hash(small_video_source)
    csv = tmp_path / "labels.csv"
    csv.write_text("episode,success_start,env_reset_start\n0,8,15\n1,12,\n")
    out = tmp_path / "labeled"
    code, _, _ = run_label(capsys, small_video_source, "--out", out, "--csv", csv)
    assert code == 0
    assert tree_hash(small_video_source) == before
    dataset = open_lerobot_dataset(out)
    assert dataset.meta.total_frames == 15 + 24
    for episode, length in ((0, 15), (1, 24)):
        meta = dataset.meta.episodes[episode]
        duration = meta[f"videos/{FRONT}/to_timestamp"] - meta[f"videos/{FRONT}/from_timestamp"]
        assert meta["length"] == length and np.isclose(duration, length / 10)
    for i in range(len(dataset)):
        item = dataset[i]
        episode, frame = int(item["episode_index"]), int(item["frame_index"])
        assert abs(brightness(item) - level(episode, frame)) < 3
        assert float(item["next.reward"]) == float(frame >= (8, 12)[episode])


def make_marked_dataset(root: Path, use_videos: bool) -> None:
    """Frames with a bright block in the top-left corner, so a 180-degree rotation is visible."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    features = {
        "observation.state": {"dtype": "float32", "shape": (2,), "names": None},
        "observation.images.wrist": {
            "dtype": "video" if use_videos else "image",
            "shape": (32, 32, 3),
            "names": ["height", "width", "channels"],
        },
    }
    dataset = LeRobotDataset.create(
        "test/marked", fps=10, features=features, root=root, use_videos=use_videos
    )
    for i in range(6):
        image = np.full((32, 32, 3), 40, dtype=np.uint8)
        image[:8, :8] = 230
        dataset.add_frame(
            {
                "observation.state": np.full(2, i, dtype=np.float32),
                "observation.images.wrist": image,
                "task": "t",
            }
        )
    dataset.save_episode()
    dataset.finalize()


@pytest.mark.parametrize("use_videos", [False, True], ids=["image", "video"])
def test_flip_camera_rotates_images_by_180_degrees(tmp_path, capsys, use_videos):
    source = tmp_path / "marked"
    make_marked_dataset(source, use_videos)
    before = tree_hash(source)
    out = tmp_path / "flipped"
    code, _, _ = run_label(capsys, source, "--out", out, "--cutoffs", '{"0": 3}', "--flip-camera", "wrist")
    assert code == 0
    assert tree_hash(source) == before
    original = open_lerobot_dataset(source)[2]["observation.images.wrist"] * 255
    flipped = open_lerobot_dataset(out)[2]["observation.images.wrist"] * 255
    assert original[:, :8, :8].mean() > 200 and original[:, -8:, -8:].mean() < 60
    assert flipped[:, -8:, -8:].mean() > 200 and flipped[:, :8, :8].mean() < 60
    if not use_videos:
        assert np.array_equal(flipped.round().numpy(), original.flip(1, 2).round().numpy())


def test_v21_source_is_read_and_written_as_v30(tmp_path, capsys, caplog):
    source = make_v21_dataset(tmp_path / "v21", episode_lengths=(12, 9))
    before = tree_hash(source)
    out = tmp_path / "labeled"
    with caplog.at_level(logging.INFO, logger="reward.label"):
        code = hilserl(
            ["label", str(source), "--out", str(out), "--cutoffs", "{0: 5, 1: 9}", "--no-progress"]
        )
    assert code == 0
    assert tree_hash(source) == before
    assert any("v2.1 layout" in r.getMessage() and "left untouched" in r.getMessage() for r in caplog.records)
    dataset = open_lerobot_dataset(out)
    info = read_info(out)
    assert info["codebase_version"] == "v3.0" and (info["fps"], info["robot_type"]) == (10, "so101_follower")
    # The video description comes from the file written, not from the source's (here incomplete) one.
    assert (
        info["features"][FRONT]["info"]["video.height"],
        info["features"][FRONT]["info"]["video.codec"],
    ) == (32, "av1")
    data = columns(dataset)
    assert data["next.reward"].tolist() == [0.0] * 5 + [1.0] * 7 + [0.0] * 9
    assert abs(brightness(dataset[13]) - level(1, 1)) < 3


def test_v21_image_source_keeps_exact_pixels(tmp_path, capsys):
    source = make_v21_dataset(
        tmp_path / "v21_images", episode_lengths=(6, 5), use_videos=False, with_reward=False
    )
    before = tree_hash(source)
    out = tmp_path / "labeled"
    code, printed, _ = run_label(capsys, source, "--out", out, "--cutoffs", '{"0": 2, "1": 0}')
    assert code == 0 and "success 9  failure 2" in printed
    assert tree_hash(source) == before
    dataset = open_lerobot_dataset(out)
    assert read_info(out)["features"][FRONT]["dtype"] == "image"
    for i in range(11):
        item = dataset[i]
        assert round(brightness(item)) == level(int(item["episode_index"]), int(item["frame_index"]))


def test_cutoffs_accept_json_python_dicts_and_files(tmp_path):
    path = tmp_path / "cutoffs.json"
    path.write_text('{"0": 53, "1": 36}')
    assert (
        parse_cutoffs('{"0": 53, "1": 36}')
        == parse_cutoffs("{0: 53, 1: 36}")
        == parse_cutoffs(str(path))
        == {0: 53, 1: 36}
    )


def test_overwrite_replaces_only_when_asked(small_video_source, tmp_path, capsys):
    out = tmp_path / "existing"
    args = (small_video_source, "--out", out, "--cutoffs", '{"0": 1, "1": 2}')
    assert run_label(capsys, *args)[0] == 0
    before = tree_hash(out)
    code, _, err = run_label(capsys, *args)
    assert code == 2 and "--overwrite" in err and tree_hash(out) == before
    relabel = (small_video_source, "--out", out, "--cutoffs", '{"0": 5, "1": 2}', "--overwrite")
    code, _, _ = run_label(capsys, *relabel)
    assert code == 0 and tree_hash(out) != before and read_info(out)["total_frames"] == 44
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_overwrite_never_deletes_a_folder_that_is_not_a_dataset(small_video_source, tmp_path, capsys):
    out = tmp_path / "my_documents"
    out.mkdir()
    (out / "thesis.txt").write_text("years of work")
    code, _, err = run_label(
        capsys, small_video_source, "--out", out, "--cutoffs", '{"0": 1, "1": 2}', "--overwrite"
    )
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "did not write" in err
    assert (out / "thesis.txt").read_text() == "years of work"


def test_interrupted_run_leaves_nothing_half_written(small_video_source, tmp_path, capsys, monkeypatch):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    save_episode = LeRobotDataset.save_episode
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return save_episode(self, *args, **kwargs)

    monkeypatch.setattr(LeRobotDataset, "save_episode", interrupted)
    before = tree_hash(small_video_source)
    fresh, existing = tmp_path / "fresh", tmp_path / "existing"
    existing.mkdir(parents=True)
    (existing / "meta").mkdir()
    (existing / "meta/info.json").write_text("{}")  # an earlier output (a dataset root)
    (existing / "old.txt").write_text("old")
    for out, extra in ((fresh, []), (existing, ["--overwrite"])):
        calls.clear()
        code, _, err = run_label(
            capsys, small_video_source, "--out", out, "--cutoffs", '{"0": 1, "1": 2}', *extra
        )
        assert code == 130 and "no output was written" in err
    assert not fresh.exists()
    assert sorted(p.name for p in existing.iterdir()) == ["meta", "old.txt"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert tree_hash(small_video_source) == before


def test_whole_episodes_are_dropped_by_flag_or_csv(tiny_source, tmp_path, capsys):
    """--drop-episodes (no label needed for them) and a CSV env_reset_start of 0 leave episodes out;
    the rest are renumbered and the summary says what was dropped."""
    before = tree_hash(tiny_source)
    out = tmp_path / "flag"
    code, printed, _ = run_label(
        capsys, tiny_source, "--out", out, "--cutoffs", '{"1": 3}', "--drop-episodes", "0"
    )
    assert code == 0 and "episodes 1 (1 dropped whole)" in printed and "dropped whole" in printed
    dataset = open_lerobot_dataset(out)
    assert dataset.meta.total_episodes == 1 and dataset.meta.total_frames == 8
    values = columns(dataset)
    assert (
        values["episode_index"].tolist() == [0] * 8
        and values["next.reward"].reshape(-1).tolist() == [0] * 3 + [1] * 5
    )
    assert brightness(dataset[0]) == pytest.approx(level(1, 0), abs=1)  # it is the source's episode 1

    csv = tmp_path / "labels.csv"
    csv.write_text("episode,success_start,env_reset_start\n0,4,\n1,,0\n")
    code, printed, _ = run_label(capsys, tiny_source, "--out", tmp_path / "csv", "--csv", csv)
    assert code == 0 and "(1 dropped whole)" in printed
    dataset = open_lerobot_dataset(tmp_path / "csv")
    assert dataset.meta.total_episodes == 1 and dataset.meta.total_frames == 10
    assert tree_hash(tiny_source) == before


# ------------------------------------------------------------------------------------------------ bad input


@pytest.fixture(scope="module")
def tiny_source(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bad") / "tiny"
    make_dataset(root, episode_lengths=(10, 8), use_videos=False)
    return root


@pytest.fixture(scope="module")
def empty_source(tmp_path_factory) -> Path:
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root = tmp_path_factory.mktemp("bad") / "empty"
    features = {"observation.state": {"dtype": "float32", "shape": (2,), "names": None}}
    LeRobotDataset.create("test/empty", fps=10, features=features, root=root, use_videos=False).finalize()
    return root


def _corrupt_copy(source: Path, where: Path, corruption: str) -> Path:
    root = where / f"corrupt_{corruption}"
    shutil.copytree(source, root)
    if corruption == "info-json":
        (root / "meta/info.json").write_text('{"codebase_version": "v3.0", "fps": ')
    elif corruption == "shape-mismatch":
        info = json.loads((root / "meta/info.json").read_text())
        info["features"][FRONT]["shape"] = [16, 16, 3]  # the images are 32x32
        (root / "meta/info.json").write_text(json.dumps(info))
    else:
        (root / "meta/info.json").unlink()
    return root


BAD_INPUTS = {
    "cutoffs-miss-an-episode": (["--cutoffs", '{"0": 5}'], "no label for episode(s) 1"),
    "cutoff-exceeds-length": (
        ["--cutoffs", '{"0": 5, "1": 9}'],
        "cutoff 9 of episode 1 is outside its 8 frames",
    ),
    "cutoffs-unknown-episode": (
        ["--cutoffs", '{"0": 5, "1": 3, "7": 1}'],
        "episode(s) 7 that the dataset lacks",
    ),
    "cutoffs-not-a-number": (["--cutoffs", '{"0": "five", "1": 3}'], "'five', not a number"),
    "csv-unknown-episode": (
        ["--csv", "episode,success_start,env_reset_start\n0,2,\n1,3,\n5,1,\n"],
        "episode(s) 5 that the dataset lacks",
    ),
    "csv-not-a-number": (
        ["--csv", "episode,success_start,env_reset_start\n0,two,\n1,3,\n"],
        "success_start is 'two', not a number",
    ),
    "csv-reset-beyond-length": (
        ["--csv", "episode,success_start,env_reset_start\n0,2,11\n1,3,\n"],
        "env_reset_start 11 of episode 0",
    ),
    "csv-gap-outside-success": (
        ["--csv", "episode,success_start,env_reset_start,failure_gaps\n0,5,,1-2\n1,3,,\n"],
        "failure gap 1-2",
    ),
    "drop-unknown-episode": (
        ["--cutoffs", '{"0": 5}', "--drop-episodes", "1,4"],
        "episode(s) 4 that the dataset lacks",
    ),
    "drop-every-episode": (
        ["--cutoffs", '{"0": 5}', "--drop-episodes", "0-1"],
        "every episode would be dropped",
    ),
    "drop-not-a-list": (["--cutoffs", '{"0": 5}', "--drop-episodes", "one"], "--drop-episodes 'one'"),
    "csv-dropped-with-success": (
        ["--csv", "episode,success_start,env_reset_start\n0,2,0\n1,3,\n"],
        "env_reset_start 0 (dropped whole) but success_start 2",
    ),
    "flip-unknown-camera": (
        ["--cutoffs", '{"0": 5, "1": 3}', "--flip-camera", "observation.images.wrist"],
        "no image key 'observation.images.wrist'",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_labels_are_one_line_errors_and_write_nothing(case, tiny_source, tmp_path, capsys):
    args, message = BAD_INPUTS[case]
    if args[0] == "--csv":
        path = tmp_path / "labels.csv"
        path.write_text(args[1])
        args = ["--csv", path]
    before = tree_hash(tiny_source)
    out = tmp_path / "out"
    code, printed, err = run_label(capsys, tiny_source, "--out", out, *args)
    assert code == 2
    assert message in err and err.startswith("error: ") and err.count("\n") == 1
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    assert tree_hash(tiny_source) == before and printed == ""


@pytest.mark.parametrize(
    "case",
    [
        "empty-dataset",
        "inside-source",
        "source-itself",
        "existing-destination",
        "info-json",
        "no-info-json",
        "shape-mismatch",
    ],
)
def test_bad_places_are_one_line_errors_and_write_nothing(case, tiny_source, empty_source, tmp_path, capsys):
    source, out = tiny_source, tmp_path / "out"
    if case == "empty-dataset":
        source = empty_source
    elif case == "inside-source":
        out = tiny_source / "labeled"
    elif case == "source-itself":
        out = tiny_source
    elif case == "existing-destination":
        out.mkdir()
        (out / "precious.txt").write_text("keep me")
    else:
        source = _corrupt_copy(tiny_source, tmp_path, case)
    before = tree_hash(source)
    out_before = tree_hash(out) if out.exists() else None
    code, _, err = run_label(capsys, source, "--out", out, "--cutoffs", '{"0": 5, "1": 3}')
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1, err
    expected = {
        "empty-dataset": "empty dataset",
        "inside-source": "inside the source",
        "source-itself": "inside the source",
        "existing-destination": "--overwrite",
        "info-json": "corrupt",
        "no-info-json": "meta/info.json is missing",
        "shape-mismatch": "does not match its own meta/info.json features",
    }[case]
    assert expected in err
    assert tree_hash(source) == before
    assert (tree_hash(out) if out.exists() else None) == out_before
    assert [p.name for p in out.parent.iterdir() if p.name.startswith(".")] == []
