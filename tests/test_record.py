"""Record mode: labels, intervention flags, re-record, reset frames, uint8 images, never overwrite.

The unit tests drive the recorder with a small fake env (logic only); the end-to-end test runs
``hilserl record`` on the real simulator with the scripted human and reloads the result with
LeRobot.
"""

import json
import os
from pathlib import Path

import numpy as np
import pytest

from actors.intervention.base import GRIPPER_STAY, Event, InterventionSource, InterventionState
from actors.intervention.scripted import InterventionSchedule, ScriptedHuman
from actors.loop.record import INTERVENTION, PENALTY, run
from configs.env import EnvConfig, ResetConfig, TeleopConfig
from configs.errors import UserError
from reward.dataset_source import SourceDataset
from tests.lerobot_data import tree_hash

SIZE = 64  # the smallest frame the AV1 encoder takes


class FakeEnv:
    """A 1-D 'arm': x moves by action[0]; success when x >= goal (then it stays a success).

    ``observation.state[0]`` is the step index in the episode, ``[1]`` counts resets. The reset
    'motion' passes through negative step indices that must never reach the dataset.
    """

    def __init__(self, goal=4.0, max_steps=30, float_images=False):
        self.goal, self.max_steps, self.float_images = goal, max_steps, float_images
        self.resets, self.t, self.x = 0, 0, 0.0
        self.actions = []

    def _obs(self):
        level = (40 + 20 * self.t) % 250
        image = np.full((SIZE, SIZE, 3), level, dtype=np.float32 if self.float_images else np.uint8)
        state = np.zeros(18, dtype=np.float32)
        state[0], state[1], state[2] = self.t, self.resets, self.x
        return {
            "observation.images.front": image,
            "observation.images.wrist": image.copy(),
            "observation.state": state,
        }

    def reset(self, seed=None):
        self.resets += 1
        for self.t in range(-5, 0):  # the reset motion: frames nobody should record
            self._obs()
        self.t, self.x = 0, 0.0
        return self._obs(), {"is_success": False}

    def step(self, action):
        self.actions.append(np.array(action))
        self.t += 1
        self.x += float(action[0])
        success = self.x >= self.goal
        truncated = self.max_steps is not None and self.t >= self.max_steps
        return (
            self._obs(),
            float(success),
            success,
            truncated,
            {"is_success": success, "discrete_penalty": -0.5},
        )

    def close(self):
        pass


class PushRight:
    """Expert: always +1 along x."""

    def act(self, obs, info):
        return np.array([1.0, 0.0, 0.0, GRIPPER_STAY], dtype=np.float32)


class ScriptedKeys(InterventionSource):
    """Always intervening with +1 along x; presses the given keys at (episode attempt, step)."""

    def __init__(self, presses: dict[tuple[int, int], Event]):
        super().__init__()
        self.presses = presses
        self.attempt, self.step = -1, 0

    def _poll(self, obs, info):
        if (self.attempt, self.step) in self.presses:
            self.events.push(self.presses[(self.attempt, self.step)])
        self.step += 1
        return InterventionState(is_intervening=True, action=PushRight().act(obs, info))

    def reset(self):
        super().reset()
        self.attempt, self.step = self.attempt + 1, 0


def config(root, episodes=2, after_success=3, **kw) -> EnvConfig:
    fields = {
        "mode": "record",
        "repo_id": "test/record",
        "dataset_root": str(root),
        "num_episodes": episodes,
        "number_of_steps_after_success": after_success,
        "realtime": False,
    }
    return EnvConfig(**{**fields, **kw})


def load(root):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    dataset = LeRobotDataset("test/record", root=root, video_backend="pyav")
    table = dataset.hf_dataset.with_format(None).to_pandas()
    return dataset, table


def column(table, name):
    return np.stack(table[name].to_numpy()).reshape(len(table), -1)


def test_success_frames_interventions_and_uint8_images(tmp_path):
    root = tmp_path / "ds"
    env = FakeEnv(goal=4.0, float_images=True)  # float images in [0, 255]: seed 003 bug 2
    human = ScriptedHuman(PushRight(), InterventionSchedule("periodic", prob=0.5, period_steps=2))
    summary = run(config(root, episodes=2, after_success=3), env=env, source=human)

    # Periodic 1-of-2: the arm moves every other step, so x reaches 4 on step 8; 3 more frames follow.
    assert summary.episodes == 2 and summary.episode_lengths == [11, 11]
    assert summary.successes == 2 and summary.success_frames == 8
    dataset, table = load(root)
    assert dataset.num_episodes == 2 and dataset.num_frames == 22
    for episode in range(2):
        rows = table[table["episode_index"] == episode]
        reward = column(rows, "next.reward")[:, 0]
        done = column(rows, "next.done")[:, 0]
        flags = column(rows, INTERVENTION)[:, 0]
        assert reward.tolist() == [0.0] * 7 + [1.0] * 4  # success frame + number_of_steps_after_success
        assert done.tolist() == [False] * 10 + [True]
        assert flags.tolist() == [False, True] * 5 + [False]
        actions = column(rows, "action")
        np.testing.assert_array_equal(actions[flags], [[1, 0, 0, GRIPPER_STAY]] * int(flags.sum()))
        np.testing.assert_array_equal(actions[~flags], [[0, 0, 0, GRIPPER_STAY]] * int((~flags).sum()))
        assert column(rows, PENALTY)[:, 0].tolist() == [-0.5] * 11
    assert summary.intervention_rate == pytest.approx(10 / 22)

    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.front"]["dtype"] == "video"
    item = dataset[3]
    # A float frame of value 100 stored as uint8 100, not clipped to 1 nor divided twice.
    assert float(item["observation.images.front"].mean()) == pytest.approx(100 / 255, abs=0.03)


def test_reset_frames_excluded_and_failure_key(tmp_path):
    root = tmp_path / "ds"
    env = FakeEnv(goal=100.0, max_steps=None)  # never succeeds, never truncates (like the real arm)
    source = ScriptedKeys({(0, 4): Event.FAILURE})
    cfg = config(root, episodes=2, after_success=20)
    cfg.processor.reset = ResetConfig(control_time_s=3.0)
    summary = run(cfg, env=env, source=source)
    assert summary.episode_lengths == [5, 30]  # failure key on step 4; the recorder's 3 s limit at 10 fps
    assert summary.successes == 0 and summary.success_frames == 0
    _, table = load(root)
    state = column(table, "observation.state")
    for episode, length in enumerate(summary.episode_lengths):
        steps = state[table["episode_index"].to_numpy() == episode, 0]
        assert steps.tolist() == list(range(length))  # from the post-reset frame on, none before
    assert column(table, "next.done")[:, 0].sum() == 2
    assert len(env.actions) == 35  # every frame is one env step, nothing else was stepped


def test_rerecord_discards_and_terminate_stops(tmp_path):
    root = tmp_path / "ds"
    env = FakeEnv(goal=3.0)
    # Attempt 0 re-recorded at step 2; attempts 1 and 2 saved; attempt 3 terminated at step 1.
    source = ScriptedKeys({(0, 2): Event.RERECORD, (3, 1): Event.TERMINATE})
    summary = run(config(root, episodes=5, after_success=1), env=env, source=source)
    assert summary.rerecorded == 1 and summary.terminated_early
    assert summary.episodes == 2 and summary.episode_lengths == [4, 4]
    dataset, table = load(root)
    assert dataset.num_episodes == 2
    resets = column(table, "observation.state")[:, 1]
    assert sorted(set(resets.tolist())) == [2.0, 3.0]  # attempts 1 and 2 (reset counts 2, 3) only


class Interrupting(FakeEnv):
    """Raises ``error`` on the given step of the given reset (1-based)."""

    def __init__(self, error, at_reset, at_step, **kw):
        super().__init__(**kw)
        self.error, self.at = error, (at_reset, at_step)

    def step(self, action):
        if (self.resets, self.t) == self.at:
            raise self.error
        return super().step(action)


def test_ctrl_c_keeps_saved_episodes(tmp_path):
    root = tmp_path / "ds"
    env = Interrupting(KeyboardInterrupt(), at_reset=2, at_step=1, goal=2.0)
    summary = run(config(root, episodes=3, after_success=0), env=env, source=ScriptedKeys({}))
    assert summary.terminated_early and summary.episodes == 1
    dataset, _ = load(root)
    assert dataset.num_episodes == 1 and dataset.num_frames == 2


def test_failure_before_any_episode_leaves_nothing(tmp_path):
    root = tmp_path / "ds"
    env = Interrupting(UserError("servo 3 stopped answering"), at_reset=1, at_step=3, goal=9.0)
    with pytest.raises(UserError, match="servo 3"):
        run(config(root), env=env, source=ScriptedKeys({}))
    assert not root.exists()  # the same --dataset_root can be used again
    terminated = run(config(root), env=FakeEnv(), source=ScriptedKeys({(0, 0): Event.TERMINATE}))
    assert terminated.episodes == 0 and not root.exists() and "nothing written" in terminated.text()


def test_existing_root_is_refused_and_untouched(tmp_path, capsys):
    from tests.lerobot_data import make_dataset

    root = tmp_path / "existing"
    make_dataset(root, episode_lengths=(3,), image_size=SIZE)
    before = tree_hash(root)
    with pytest.raises(UserError, match="already exists"):
        run(config(root), env=FakeEnv(), source=ScriptedKeys({}))
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"mode": "record", "repo_id": "test/record", "dataset_root": str(root)}))
    capsys.readouterr()
    from cluster.cli import main as cli_main

    assert cli_main(["record", "--config_path", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: dataset root") and "\n" not in err
    assert tree_hash(root) == before


def test_bad_record_config_is_one_line_error(tmp_path):
    with pytest.raises(UserError, match="repo_id"):
        run(
            EnvConfig(mode="record", dataset_root=str(tmp_path / "x")), env=FakeEnv(), source=ScriptedKeys({})
        )
    with pytest.raises(UserError, match="mode"):
        run(config(tmp_path / "x", mode="replay"), env=FakeEnv(), source=ScriptedKeys({}))
    assert not (tmp_path / "x").exists()


def test_terminate_on_success_off_labels_each_frame(tmp_path):
    root = tmp_path / "ds"
    env = FakeEnv(goal=3.0, max_steps=6)
    cfg = config(root, episodes=1, after_success=10)
    cfg.processor.reset = ResetConfig(terminate_on_success=False)
    summary = run(cfg, env=env, source=ScriptedKeys({}))
    assert summary.episode_lengths == [6]  # runs to the time limit
    _, table = load(root)
    assert column(table, "next.reward")[:, 0].tolist() == [0, 0, 1, 1, 1, 1]


@pytest.mark.slow
def test_record_end_to_end_on_the_simulator(tmp_path, capsys):
    """`hilserl record` with the MuJoCo SO-101 and the scripted human: a demo dataset, no keyboard."""
    from cluster.cli import main as hilserl

    root = tmp_path / "demo"
    cfg = {
        "mode": "record",
        "repo_id": "test/record",
        "dataset_root": str(root),
        "num_episodes": 2,
        "fps": 10,
        "image_size": SIZE,
        "number_of_steps_after_success": 4,
        "seed": 1,
        "teleop": {"type": "scripted", "schedule": "periodic", "intervention_prob": 0.8, "period_steps": 5},
        "processor": {"reset": {"control_time_s": 8.0}},
    }
    path = tmp_path / "sim_record.json"
    path.write_text(json.dumps(cfg))
    assert hilserl(["record", "--config_path", str(path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["episodes"] == 2 and summary["successes"] == 2
    assert summary["rate"]["steps"] == summary["frames"]

    dataset, table = load(root)
    assert dataset.num_episodes == 2 and dataset.num_frames == summary["frames"]
    for episode in range(2):
        rows = table[table["episode_index"] == episode]
        reward = column(rows, "next.reward")[:, 0]
        first = int(np.argmax(reward > 0))
        assert reward[:first].sum() == 0 and reward[first:].tolist() == [1.0] * 5  # success + 4 after
        assert column(rows, "next.done")[:, 0].tolist() == [False] * (len(rows) - 1) + [True]
        flags = column(rows, INTERVENTION)[:, 0]
        assert flags.any() and not flags.all()  # the periodic human hands back 1 step in 5
    item = dataset[0]
    assert tuple(item["observation.images.front"].shape) == (3, SIZE, SIZE)
    assert tuple(item["observation.state"].shape) == (18,)
    info = json.loads((root / "meta" / "info.json").read_text())
    assert info["features"]["observation.images.wrist"]["dtype"] == "video"

    # A second run into the same root writes nothing.
    before = tree_hash(root)
    assert hilserl(["record", "--config_path", str(path)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert tree_hash(root) == before


def test_teleop_config_schedules_parse():
    cfg = EnvConfig(teleop=TeleopConfig(type="scripted", schedule="decay", decay_rate=0.5))
    assert cfg.teleop.decay_rate == 0.5


def test_make_env_chooses_the_backend():
    from actors.robots.factory import backend, make_env
    from actors.robots.sim.env import SO101SimEnv
    from configs.env import RobotConfig

    assert backend(EnvConfig()) == "sim"
    assert backend(EnvConfig(type="gym_manipulator", robot=RobotConfig(type="so101"))) == "real"
    with pytest.raises(UserError, match="robot.type"):
        backend(EnvConfig(type="gym_manipulator"))
    with pytest.raises(UserError, match="robot.type"):
        backend(EnvConfig(robot=RobotConfig(type="franka")))
    with pytest.raises(UserError, match="leader"):
        make_env(EnvConfig(teleop=TeleopConfig(type="leader")))
    env = make_env(EnvConfig(image_size=SIZE))
    try:
        assert isinstance(env, SO101SimEnv)
        obs, _ = env.reset(seed=0)
        assert obs["observation.images.front"].shape == (SIZE, SIZE, 3)
    finally:
        env.close()
    # The real backend: a port that does not exist is a one-line error naming the fix.
    with pytest.raises(UserError) as err:
        make_env(EnvConfig(robot=RobotConfig(type="so101", port="/dev/does-not-exist")))
    assert "\n" not in str(err.value) and "/dev/does-not-exist" in str(err.value)


def test_realtime_pacing_follows_the_backend_not_the_default_type():
    from actors.loop.record import is_realtime

    sim = EnvConfig()
    assert is_realtime(sim) is False  # simulator + scripted human runs free
    real = EnvConfig()
    real.robot.type = "so101"  # top-level type left at its default 'sim'
    real.teleop = TeleopConfig(type="none")
    assert is_realtime(real) is True  # the real arm always holds fps
    sim.realtime = True
    assert is_realtime(sim) is True


@pytest.mark.parametrize(
    "point",
    ["_save_episode_data", "_save_episode_video", "_save_episode_metadata"],
)
def test_ctrl_c_during_an_episode_save_finishes_the_save_then_stops(point, tmp_path, monkeypatch):
    """A real SIGINT delivered inside LeRobot's save_episode: the episode is saved whole, then the
    session stops, and doctor finds the dataset clean."""
    import os
    import signal

    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata
    from lerobot.datasets.dataset_writer import DatasetWriter

    from reward.dataset_checks import check_dataset
    from reward.dataset_source import SourceDataset

    owner = LeRobotDatasetMetadata if point == "_save_episode_metadata" else DatasetWriter
    original = getattr(owner, point)
    fired = []

    def interrupted(self, *args, **kwargs):
        if not fired:
            fired.append(point)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C, in the middle of the save
        return original(self, *args, **kwargs)

    monkeypatch.setattr(owner, point, interrupted)
    root = tmp_path / "ds"
    summary = run(config(root, episodes=3, after_success=0), env=FakeEnv(goal=2.0), source=ScriptedKeys({}))
    assert fired == [point]
    assert summary.terminated_early and summary.episodes == 1  # saved whole, then stopped
    assert check_dataset(SourceDataset(root)) == []
    assert not list(root.rglob("tmp*"))


KILL_SCRIPT = """
import logging, os, signal, sys
logging.basicConfig(level=logging.INFO)  # before LeRobot's import-time log calls configure the root logger
from lerobot.datasets.dataset_writer import DatasetWriter
point, at, root = sys.argv[1], int(sys.argv[2]), sys.argv[3]
owner = DatasetWriter
original = getattr(owner, point)
calls = [0]
def patched(self, *args, **kwargs):
    calls[0] += 1
    result = original(self, *args, **kwargs)
    if calls[0] == at:  # this part of the save is done, the rest is not
        os.kill(os.getpid(), signal.SIG{signal})
    return result
setattr(owner, point, patched)
from cluster.cli import main
sys.exit(main(["record", "--config_path", "configs/sim_record.json", "--dataset_root", root, "--num_episodes", "4",
               "--image_size", "32", "--task", "reach_grasp", "--video", "true"]))
"""


def _record_and_signal(tmp_path, point: str, at: int, signal_name: str):
    import subprocess
    import sys

    root = tmp_path / "session"
    script = tmp_path / "record.py"
    script.write_text(KILL_SCRIPT.replace("{signal}", signal_name))
    repo = Path(__file__).resolve().parent.parent
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.run(
        [sys.executable, str(script), point, str(at), str(root)],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    return proc, root


@pytest.mark.slow
@pytest.mark.parametrize("point,at", [("_save_episode_data", 3), ("_save_episode_video", 5)])
def test_a_session_killed_while_saving_loses_only_that_episode(point, at, tmp_path, capsys):
    """SIGKILL inside LeRobot's save of the third episode, once its data (or its first video) is
    written (no handler can run): the two episodes saved before it survive, doctor names the broken file, and --fix --drop-lost recovers them."""
    from cluster.cli import main as hilserl

    proc, root = _record_and_signal(tmp_path, point, at, "KILL")
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert proc.stderr.count("saved:") == 2
    assert hilserl(["doctor", str(root)]) == 1
    out = capsys.readouterr().out
    assert "[files-unreadable]" in out and "--drop-lost" in out
    assert hilserl(["doctor", str(root), "--fix", "--out", str(tmp_path / "plain")]) == 1
    assert not (tmp_path / "plain").exists()
    capsys.readouterr()
    assert (
        hilserl(
            [
                "doctor",
                str(root),
                "--fix",
                "--drop-lost",
                "--out",
                str(tmp_path / "recovered"),
                "--no-progress",
            ]
        )
        == 0
    )
    assert "doctor finds the copy clean" in capsys.readouterr().out
    recovered = SourceDataset(tmp_path / "recovered")
    assert len(recovered.lengths) == 2 and all(n > 0 for n in recovered.lengths.values())


@pytest.mark.slow
@pytest.mark.parametrize("signal_name", ["TERM", "HUP"])
def test_kill_or_a_closed_terminal_stops_like_ctrl_c(signal_name, tmp_path):
    """SIGTERM and SIGHUP inside a save: the episode is finished, the session stops, the dataset is clean."""
    from reward.dataset_checks import check_dataset

    proc, root = _record_and_signal(tmp_path, "_save_episode_data", 2, signal_name)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"SIG{signal_name}: finishing the episode being saved" in proc.stderr
    assert "stopped early" in proc.stdout
    source = SourceDataset(root)
    assert len(source.lengths) == 2 and check_dataset(source) == []
