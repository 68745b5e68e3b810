"""The runtime roles as plain classes, and the in-process runner (no Ray)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import numpy as np
import pytest

from actors.roles.local import LocalRunner
from actors.roles.peers import LocalPeer
from actors.roles.replay import ReplayRole
from actors.roles.reward import BatchingScorer, RewardRole
from actors.roles.rundir import list_runs
from configs.errors import UserError
from learner.types import Transition
from tests.rl_fixtures import KEYS, SIZE, tiny_config, write_classifier


def _transition(i: int, end: bool = False, intervention: bool = False) -> Transition:
    def frame(v):
        obs = {k: np.full((3, SIZE, SIZE), v % 255, np.uint8) for k in KEYS}
        obs["observation.state"] = np.full(18, v, np.float32)
        return obs

    return Transition(frame(i), np.zeros(4, np.float32), float(i), frame(i + 1), False, end, intervention)


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    return write_classifier(tmp_path_factory.mktemp("clf") / "pretrained_model")


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, classifier):
    tmp = tmp_path_factory.mktemp("local")
    cfg = tiny_config(tmp, classifier, steps=40)
    runner = LocalRunner(cfg)
    digest = runner.reward.weights_digest()
    sent = runner.robots[0].writer.sent_versions
    summary = runner.run()
    return cfg, runner, summary, digest, sent


def test_local_run_learns_pushes_weights_and_tags_versions(local_run):
    cfg, runner, summary, _, sent = local_run
    learner, robot = summary["learner"], summary["robots"][0]
    assert robot.env_steps == 40 and robot.acked == 40
    assert learner.updates > 5
    # The robot swapped weights during the run and every transition names its producer's version.
    assert robot.policy_version > 0
    policy_versions = [v for v in sent if v >= 0]
    assert policy_versions and len(set(policy_versions)) > 1
    assert sorted(policy_versions) == policy_versions  # versions only move forward
    assert learner.replay["online"] == 40 and learner.replay["demo"] > 0  # interventions in both
    # The simulator's own success is kept apart from the classifier's judgement, episode by episode.
    episodes = robot.recent
    assert episodes and all(isinstance(e["true_success"], bool) for e in episodes)
    assert robot.true_success_rate == pytest.approx(
        sum(e["true_success"] for e in runner.robots[0].recent) / len(runner.robots[0].recent)
    )


def test_classifier_is_frozen_and_recorded(local_run, classifier):
    cfg, runner, summary, digest, _ = local_run
    assert runner.reward.weights_digest() == digest
    assert not any(p.requires_grad for p in runner.reward.model.parameters())
    recorded = json.loads((runner.folder / "classifier.json").read_text())
    assert recorded[-1]["weights_sha256"] == runner.reward.info.weights_sha256
    assert recorded[-1]["path"] == str(classifier.resolve())
    rows = list_runs(cfg.output_dir)
    assert rows[0]["env_steps"] == 40 and rows[0]["classifier_sha256"]
    assert (runner.folder / "checkpoints" / "latest").is_file()
    assert list(runner.folder.glob("events.out.tfevents.*"))  # the run folder is the TensorBoard run


def test_resume_continues_the_learner_and_refuses_another_classifier(local_run, tmp_path):
    cfg, runner, summary, _, _ = local_run
    cfg.resume = True
    other = write_classifier(tmp_path / "other", seed=1)
    cfg.env.processor.reward_classifier.pretrained_path = str(other)
    with pytest.raises(UserError, match="allow_classifier_change"):
        LocalRunner(cfg)
    cfg.allow_classifier_change = True
    cfg.runtime.total_env_steps = 8
    again = LocalRunner(cfg)
    assert again.learner.resumed_from == summary["learner"].updates
    assert len(again.replay.replay.online) == 40  # snapshot + log: every acknowledged transition
    # The scripted human's help goes on tapering from the run's episode count, not from episode 0.
    done = summary["robots"][0].episodes
    assert done >= 1 and again.robots[0].episodes == done
    human = again.robots[0].source
    human.reset()
    assert human.episode == done  # the taper's episode (0.8 x 0.97^episode under 'decay')


def test_reward_role_refuses_a_checkpoint_that_does_not_match_the_robot(classifier):
    with pytest.raises(UserError, match="64x64"):
        RewardRole(classifier, KEYS, 64)
    with pytest.raises(UserError, match="camera"):
        RewardRole(classifier, ["observation.images.front"], SIZE)


def test_batching_serves_every_queued_request_in_one_pass(classifier):
    role = RewardRole(classifier, KEYS, SIZE)
    scorer = BatchingScorer(role, max_batch=64)
    frames = {k: np.zeros((3, SIZE, SIZE), np.uint8) for k in KEYS}

    async def burst():
        return await asyncio.gather(*[scorer.score(frames) for _ in range(8)])

    results = asyncio.run(burst())
    assert len(results) == 8 and all(set(r) == {"probability", "reward", "success"} for r in results)
    assert scorer.batch_sizes == [8]  # all eight were queued when the pass started

    async def lone():
        return await scorer.score(frames)

    asyncio.run(lone())
    assert scorer.batch_sizes == [8, 1]  # a lone request does not wait for company
    single = role.score_batch([frames])[0]
    assert results[0]["probability"] == pytest.approx(single["probability"], abs=1e-6)


def test_replay_role_recovers_every_acknowledged_chunk_and_drops_duplicates(tmp_path):
    cfg = tiny_config(tmp_path).resolve().learner
    role = ReplayRole(cfg, tmp_path / "replay", snapshot_every=6)
    for seq in range(5):  # 5 chunks x 3: one snapshot after 6, then the log
        chunk = [_transition(3 * seq + i, end=i == 2, intervention=i == 0) for i in range(3)]
        assert role.add("robot-0", seq, chunk)["added"] == 3
    assert role.add("robot-0", 4, chunk)["duplicate"] == 1
    before = role.sizes()
    # A killed process: no close, no final snapshot; plus a torn, never-acknowledged record.
    log = sorted((tmp_path / "replay").glob("log-*.bin"))[-1]
    with open(log, "ab") as f:
        f.write(b"\x10\x00\x00\x00\x00\x00\x00\x00partial")
    recovered = ReplayRole(cfg, tmp_path / "replay", snapshot_every=6)
    assert recovered.sizes() == before == {"online": 15, "demo": 5, "added": 15}
    assert recovered.add("robot-0", 4, chunk)["duplicate"] == 1
    assert recovered.add("robot-0", 5, chunk)["added"] == 3


def test_robot_holds_while_the_replay_is_down_and_loses_nothing(tmp_path):
    cfg = tiny_config(tmp_path, steps=24, learning_starts=1000, max_queued_chunks=64)
    runner = LocalRunner(cfg)
    robot, peer = runner.robots[0], runner.replay_peer
    calls = {"n": 0}

    def outage():  # the replay is down from the 4th to the 12th step
        calls["n"] += 1
        peer.down = 4 <= calls["n"] < 12

    robot.on_step.insert(0, outage)
    summary = runner.run()
    status = summary["robots"][0]
    assert status.holds > 0 and status.acked == status.env_steps == 24
    assert runner.replay.sizes()["online"] == 24


def test_the_replay_sees_the_policy_version_of_every_transition(local_run):
    _, runner, summary, _, sent = local_run
    versions = runner.replay.status()["versions"]
    assert sum(versions.values()) == 40
    assert versions == {v: sent.count(v) for v in set(sent)}  # what the robot sent, version by version
    assert -1 in versions and any(v >= 0 for v in versions)  # the human's steps and the policy's


def test_local_peer_reports_an_outage():
    from actors.roles.peers import PeerUnavailable

    peer = LocalPeer(object())
    peer.down = True
    with pytest.raises(PeerUnavailable):
        peer.call("anything").result()


def test_disagreements_become_a_labeled_dataset_train_reward_reads(tmp_path):
    from actors.roles.relabel import DisagreementLog
    from reward.dataset_source import iter_episodes

    log = DisagreementLog(tmp_path / "next", fps=10, image_keys=KEYS, state_key="observation.state")
    rng = np.random.default_rng(0)
    for truths in [(True, False, False), (True,)]:
        for truth in truths:
            obs = {k: rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for k in KEYS}
            obs["observation.state"] = np.zeros(18, np.float32)
            log.add(obs, truth, probability=0.2 if truth else 0.9)
        log.end_episode()
    log.close()
    episodes = list(iter_episodes(tmp_path / "next", KEYS, ["next.reward"]))
    labels = [e.columns["next.reward"].reshape(-1).tolist() for e in episodes]
    assert labels == [[1.0, 0.0, 0.0], [1.0]]
    assert episodes[0].frames[KEYS[0]].shape == (3, SIZE, SIZE, 3)
    assert (log.false_positives, log.false_negatives) == (2, 2)
    assert log.confirmed == 0
    again = DisagreementLog(
        tmp_path / "next", fps=10, image_keys=KEYS, state_key="observation.state", max_confirmed=1
    )
    assert again.root == tmp_path / "next.2"  # a restarted robot never writes into the old log
    # Confirmed successes (both said success) are kept too, up to max_confirmed, so the log holds
    # the policy's own success frames; an agreed failure is never logged.
    for truth, agreed in [(True, True), (True, True), (False, True), (False, False)]:
        obs = {k: rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8) for k in KEYS}
        obs["observation.state"] = np.zeros(18, np.float32)
        again.add(obs, truth, probability=0.9, agreed=agreed)
    again.end_episode()
    again.close()
    labels = [
        e.columns["next.reward"].reshape(-1).tolist()
        for e in iter_episodes(again.root, KEYS, ["next.reward"])
    ]
    assert labels == [[1.0, 0.0]] and (again.confirmed, again.false_positives) == (1, 1)


def test_the_disagreement_log_spreads_its_frames_over_the_whole_run():
    from actors.roles.relabel import EARLY_ALLOWANCE, DisagreementLog

    log = DisagreementLog(
        Path("unused"),
        fps=10,
        image_keys=KEYS,
        state_key="observation.state",
        max_frames=100,
        max_confirmed=50,
    )
    obs = {k: np.zeros((SIZE, SIZE, 3), np.uint8) for k in KEYS} | {
        "observation.state": np.zeros(18, np.float32)
    }
    kept = []
    for step in range(1000):  # a disagreement on every step of a 1,000-step run
        log.add(obs, truth=False, probability=0.9, progress=step / 1000)
        log.add(obs, truth=True, probability=0.9, agreed=True, progress=step / 1000)
        kept.append((log.false_positives, log.confirmed))
    # The first tenth of the run took its tenth of the budget (plus the allowance), not all of it.
    assert kept[99][0] <= 10 + EARLY_ALLOWANCE + 1 and kept[99][1] <= 5 + EARLY_ALLOWANCE + 1
    assert kept[-1] == (100, 50)  # and the whole budget is used by the end
    assert kept[499][0] < 100 and kept[599][0] > kept[499][0]  # frames still come in late in the run
    # Without a known run length (the real arm's open-ended run), first come, first kept.
    open_ended = DisagreementLog(
        Path("unused"), fps=10, image_keys=KEYS, state_key="observation.state", max_frames=5
    )
    for _ in range(10):
        open_ended.add(obs, truth=False, probability=0.9)
    assert open_ended.false_positives == 5


def test_the_run_records_the_validation_metrics_train_reward_wrote(tmp_path):
    from actors.roles.reward import RewardRole
    from reward.checkpoint import load_checkpoint, save_checkpoint

    model, _ = load_checkpoint(write_classifier(tmp_path / "a"))
    metrics = {"step": 40, "eval": {"accuracy": 0.97, "f1": 0.95, "confusion_matrix": [[1, 0], [0, 1]]}}
    path = save_checkpoint(tmp_path / "b", model, thresholds={"best_f1": 0.5}, metrics=metrics)
    identity = RewardRole(path, KEYS, SIZE).identity()
    assert identity["val_metrics"] == {"accuracy": 0.97, "f1": 0.95}


def test_classifier_agreement_counts_the_policys_frames_and_each_episodes_grasp_frame(tmp_path, classifier):
    """FN/FP against the simulator's truth count the frames the policy drove to; the grasp frame
    (each episode's first true success, where a run ends when the classifier agrees) apart."""
    from actors.roles.peers import Done
    from actors.roles.rundir import RunMonitor

    runner = LocalRunner(tiny_config(tmp_path, classifier, steps=4))
    robot = runner.robots[0]
    verdicts = []

    class Scripted:  # the classifier's verdicts, in order
        def score(self, frames):
            return Done({"success": verdicts.pop(0), "probability": 0.5})

    robot.reward, robot.disagreements = Scripted(), None
    frame = {k: np.zeros((32, 32, 3), np.uint8) for k in robot.cfg.learner.image_keys}
    frame["observation.state"] = np.zeros(18, np.float32)

    def episode(steps):  # (simulator's truth, classifier's verdict, human driving)
        robot._episode_truth = None
        for truth, verdict, human in steps:
            verdicts.append(verdict)
            robot.source._was_intervening = human
            robot._success(frame, {"is_success": truth})

    episode([(False, False, False), (True, False, False), (True, True, False)])  # grasp frame missed
    episode([(False, True, False), (True, True, False)])  # a false positive, then the grasp seen
    episode([(True, False, True), (True, False, False)])  # the human's grasp frame is not counted
    assert robot.agreement == {"tp": 2, "fp": 1, "fn": 2, "tn": 1, "first_tp": 1, "first_fn": 1}
    status = robot.status()
    point = RunMonitor(runner.folder, runner.cfg).scalars([status], runner.learner.status(), None)
    runner.replay.close()
    assert (
        point["classifier_false_negative_rate"] == 0.5 and point["classifier_first_success_miss_rate"] == 0.5
    )


def test_missing_vision_weights_are_one_line_before_the_run_folder_and_random_ones_are_said(tmp_path, caplog):
    import logging

    from actors.roles.rundir import prepare_run_dir

    cfg = tiny_config(tmp_path, steps=8).resolve()
    cfg.learner.allow_random_vision_weights = False
    with pytest.raises(UserError, match="neither a local folder nor in the Hugging Face cache") as err:
        prepare_run_dir(cfg)
    assert "\n" not in str(err.value) and not (tmp_path / "runs").exists()  # nothing written
    cfg.learner.allow_random_vision_weights = True
    with caplog.at_level(logging.WARNING, logger="vision.resnet10"):
        folder = prepare_run_dir(cfg)
    assert "the learner's vision encoder" in caplog.text and "RANDOM" in caplog.text
    assert json.loads((folder / "run.json").read_text())["vision_backbone"] == "random"


def test_recorded_evaluation_episodes_hold_success_frames_of_the_policys_own(tmp_path):
    """A recorded evaluation episode goes on after its success, so the held-out on-policy set has
    success frames besides the label edge (which classifiers leave out): FN is defined on it."""
    from actors.roles.evaluate import EVAL_HELD_FRAMES, evaluation_env_config

    cfg = tiny_config(tmp_path).resolve()
    assert evaluation_env_config(cfg, recording=False).number_of_steps_after_success == 0
    env_cfg = evaluation_env_config(cfg, recording=True)
    assert env_cfg.number_of_steps_after_success == EVAL_HELD_FRAMES
    # The loop with that config: an episode that succeeds keeps EVAL_HELD_FRAMES more rewarded steps
    # (the scripted expert stands in for a policy that grasps).
    from actors.intervention.scripted import InterventionSchedule, ScriptedHuman
    from actors.loop.episode import EpisodeLoop
    from actors.robots.sim.env import SO101SimEnv
    from actors.robots.sim.expert import ScriptedExpert

    env = SO101SimEnv(env_cfg)
    steps = []

    class Sink:
        def add(self, step):
            steps.append(step)

        def end_episode(self, result): ...

        def discard_episode(self): ...

    try:
        human = ScriptedHuman(ScriptedExpert(env, seed=3), InterventionSchedule("always"))
        loop = EpisodeLoop(env_cfg, env, human)
        obs, info = loop.reset()
        result = loop.run_episode(obs, info, Sink())[0]
    finally:
        env.close()
    assert result.success
    rewards = [s.reward for s in steps]
    first = rewards.index(1.0)
    assert rewards[first:] == [1.0] * (EVAL_HELD_FRAMES + 1) and steps[-1].terminated


def test_every_client_method_is_a_method_of_its_role_and_of_its_ray_actor():
    """The typed clients are the seams: each method exists, with the same parameters, on the role
    that answers it in process and on the Ray actor, whose forwarders ``forwards`` generates from the
    clients (FORWARDED records each with its parameters)."""
    import inspect

    from actors.roles import clients
    from actors.roles.learner import LearnerRole
    from cluster.ray_roles import FORWARDED, LearnerActor, ReplayActor, RewardActor

    pairs = [
        (clients.ReplayClient, ReplayRole, ReplayActor, "ReplayActor"),
        (clients.LearnerClient, LearnerRole, LearnerActor, "LearnerActor"),
        (clients.RewardClient, BatchingScorer, RewardActor, "RewardActor"),
    ]
    checked = 0
    for client, role, handle, actor in pairs:
        for name, method in inspect.getmembers(client, inspect.isfunction):
            if name.startswith("_"):
                continue
            params = list(inspect.signature(method).parameters)[1:]
            assert list(inspect.signature(getattr(role, name)).parameters)[1:] == params, (role, name)
            assert FORWARDED[actor].get(name) == params, (actor, name, FORWARDED[actor].get(name))
            assert hasattr(handle, name), (actor, name)  # a method of the Ray actor class itself
            checked += 1
    assert checked == 9


def test_forwarders_call_the_built_role_with_its_signature_and_await_coroutines():
    import inspect

    from cluster.ray_roles import forwards

    class Role:
        def add(self, robot: str, seq: int) -> str:
            """Adds."""
            return f"{robot}:{seq}"

        async def score(self, frames: dict) -> int:
            return len(frames)

    class Client:
        def add(self, robot: str, seq: int): ...

    @forwards(Role, Client)
    class Plain:
        role = Role()

    @forwards(Role, "add", "score", to="target")
    class Async:
        target = Role()

        async def ready(self) -> bool:
            return True

    assert Plain().add("robot-0", seq=3) == "robot-0:3"
    assert list(inspect.signature(Plain.add).parameters) == ["self", "robot", "seq"]
    assert Plain.add.__doc__ == "Adds." and not inspect.iscoroutinefunction(Plain.add)
    assert inspect.iscoroutinefunction(Async.add)  # an async actor's forwarders never block its loop
    assert asyncio.run(Async().add("r", 1)) == "r:1" and asyncio.run(Async().score({"a": 1})) == 1
    with pytest.raises(AttributeError):
        forwards(Role, "missing")(type("Broken", (), {}))
