"""Intervention sources: event logic fed with synthetic key / button / leader events.

Every source must deliver each event exactly once (seed 003, bug 1) and report intervention
on/off once per change.
"""

import numpy as np
import pytest

from actors.intervention.base import (
    GRIPPER_CLOSE,
    GRIPPER_OPEN,
    GRIPPER_STAY,
    Event,
    EventQueue,
    NullSource,
)
from actors.intervention.factory import make_intervention_source
from actors.intervention.gamepad import (
    AXIS_LEFT_X,
    AXIS_LEFT_Y,
    AXIS_RIGHT_Y,
    BUTTON_A,
    BUTTON_B,
    BUTTON_LT,
    BUTTON_RB,
    BUTTON_RT,
    BUTTON_X,
    BUTTON_Y,
    GamepadSource,
)
from actors.intervention.keyboard import KeyboardSource, start_pynput_listener
from actors.intervention.leader import LeaderArmSource
from actors.intervention.scripted import InterventionSchedule, ScriptedHuman
from actors.robots.sim.expert import MISSES
from configs.env import EnvConfig, TeleopConfig
from configs.errors import UserError

OBS: dict = {}
INFO: dict = {}


def test_event_queue_hands_out_each_event_once():
    queue = EventQueue()
    queue.push(Event.SUCCESS)
    queue.push(Event.RERECORD)
    assert queue.drain() == [Event.SUCCESS, Event.RERECORD]
    assert queue.drain() == []


def test_null_source_never_intervenes():
    state = NullSource().poll(OBS, INFO)
    assert not state.is_intervening and state.action is None and state.events == []


# ---------------------------------------------------------------- keyboard


def test_keyboard_success_is_consumed_once_even_with_auto_repeat():
    source = KeyboardSource()
    source.logic.press("s")
    source.logic.press("s")  # OS auto-repeat while the key is held
    assert source.poll(OBS, INFO).events == [Event.SUCCESS]
    assert source.poll(OBS, INFO).events == []  # seed 003 bug 1: not announced again
    source.logic.release("s")
    source.logic.press("s")  # a second real press is a second event
    assert source.poll(OBS, INFO).events == [Event.SUCCESS]


@pytest.mark.parametrize("key,event", [("q", Event.FAILURE), ("r", Event.RERECORD), ("esc", Event.TERMINATE)])
def test_keyboard_episode_keys(key, event):
    source = KeyboardSource()
    source.logic.press(key)
    assert source.poll(OBS, INFO).events == [event]


def test_keyboard_space_toggles_intervention():
    source = KeyboardSource()
    assert not source.poll(OBS, INFO).is_intervening
    source.logic.press("space")
    source.logic.release("space")
    state = source.poll(OBS, INFO)
    assert state.is_intervening and state.events == [Event.INTERVENTION_ON]
    np.testing.assert_array_equal(state.action, [0, 0, 0, GRIPPER_STAY])
    # Held on without new events.
    state = source.poll(OBS, INFO)
    assert state.is_intervening and state.events == []
    source.logic.press("up")
    source.logic.press("shift_r")
    source.logic.press("ctrl_l")
    state = source.poll(OBS, INFO)
    np.testing.assert_array_equal(state.action, [0, -1, 1, GRIPPER_CLOSE])
    assert state.action.dtype == np.float32
    for key in ("up", "shift_r", "ctrl_l"):
        source.logic.release(key)
    source.logic.press("space")
    state = source.poll(OBS, INFO)
    assert not state.is_intervening and state.action is None and state.events == [Event.INTERVENTION_OFF]


def test_keyboard_movement_key_intervenes_and_a_tap_moves_once():
    source = KeyboardSource()
    source.logic.press("left")
    source.logic.release("left")  # pressed and released between two polls
    state = source.poll(OBS, INFO)
    assert state.is_intervening and state.events == [Event.INTERVENTION_ON]
    np.testing.assert_array_equal(state.action, [1, 0, 0, GRIPPER_STAY])
    state = source.poll(OBS, INFO)
    assert not state.is_intervening and state.events == [Event.INTERVENTION_OFF]


def test_keyboard_reset_forgets_pending_events_and_toggle():
    source = KeyboardSource()
    source.logic.press("s")
    source.logic.press("space")
    source.reset()
    state = source.poll(OBS, INFO)
    assert state.events == [] and not state.is_intervening


def test_keyboard_listener_without_display_is_one_line_error(monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.setattr("sys.platform", "linux")
    with pytest.raises(UserError) as err:
        start_pynput_listener(KeyboardSource().logic)
    message = str(err.value)
    assert "\n" not in message and "DISPLAY" in message and "teleop.type" in message


# ---------------------------------------------------------------- gamepad


def test_gamepad_hold_rb_to_intervene():
    source = GamepadSource(deadzone=0.1)
    assert not source.poll(OBS, INFO).is_intervening
    source.logic.button_down(BUTTON_RB)
    source.logic.axis(AXIS_LEFT_Y, -1.0)  # stick forward
    source.logic.axis(AXIS_LEFT_X, 0.05)  # inside the deadzone
    source.logic.axis(AXIS_RIGHT_Y, 0.5)
    source.logic.button_down(BUTTON_RT)
    state = source.poll(OBS, INFO)
    assert state.is_intervening and state.events == [Event.INTERVENTION_ON]
    np.testing.assert_allclose(state.action, [1.0, 0.0, -0.5, GRIPPER_OPEN])
    source.logic.button_up(BUTTON_RT)
    source.logic.button_down(BUTTON_LT)
    assert source.poll(OBS, INFO).action[3] == GRIPPER_CLOSE
    source.logic.button_up(BUTTON_RB)
    state = source.poll(OBS, INFO)
    assert not state.is_intervening and state.events == [Event.INTERVENTION_OFF]


def test_gamepad_buttons_are_events_once_while_held():
    source = GamepadSource()
    source.logic.button_down(BUTTON_Y)
    assert source.poll(OBS, INFO).events == [Event.SUCCESS]
    source.logic.button_down(BUTTON_Y)  # still held: no repeat
    assert source.poll(OBS, INFO).events == []
    source.logic.button_up(BUTTON_Y)
    for button, event in ((BUTTON_A, Event.FAILURE), (BUTTON_X, Event.RERECORD), (BUTTON_B, Event.TERMINATE)):
        source.logic.button_down(button)
        assert source.poll(OBS, INFO).events == [event]


# ---------------------------------------------------------------- leader arm


class FakeLeader:
    def __init__(self) -> None:
        self.q = np.zeros(6)

    def read_joint_positions(self) -> np.ndarray:
        return self.q.copy()


def linear_fk(q_deg: np.ndarray) -> np.ndarray:
    """1 mm of end-effector motion per degree on the first three joints."""
    return np.asarray(q_deg[:3]) * 0.001


def test_leader_takes_over_when_moved_and_hands_back_when_still():
    leader = FakeLeader()
    source = LeaderArmSource(
        leader, fk=linear_fk, step_sizes=(0.01, 0.01, 0.01), threshold_deg=5, release_steps=3
    )
    assert not source.poll(OBS, INFO).is_intervening
    leader.q[0] = 3.0  # under the threshold
    assert not source.poll(OBS, INFO).is_intervening
    leader.q[0] = 9.0  # 9 degrees from rest: takeover
    state = source.poll(OBS, INFO)
    assert state.is_intervening and state.events == [Event.INTERVENTION_ON]
    # 9 mm since rest, 10 mm per action unit -> 0.9 along x
    np.testing.assert_allclose(state.action[:3], [0.9, 0, 0], atol=1e-6)
    leader.q[1] = 30.0  # 30 mm in one step: clipped to 1.0 and the rest carried over
    actions = [source.poll(OBS, INFO).action[1] for _ in range(3)]
    np.testing.assert_allclose(actions, [1.0, 1.0, 1.0], atol=1e-6)
    state = source.poll(OBS, INFO)  # leader still for 3 polls now: hand back
    assert not state.is_intervening and state.events == [Event.INTERVENTION_OFF]
    assert not source.poll(OBS, INFO).is_intervening  # the new rest pose is the anchor


def test_leader_resting_hand_gives_the_step_to_the_policy_until_hand_back():
    """Engaged, a step without leader motion is the policy's (a still step would drive the follower
    nowhere and be stored as the person's demonstration); the next motion is the person's again
    without a new threshold, and only stillness for release_steps hands back."""
    leader = FakeLeader()
    source = LeaderArmSource(
        leader, fk=linear_fk, step_sizes=(0.01, 0.01, 0.01), threshold_deg=5, release_steps=3
    )
    source.poll(OBS, INFO)
    leader.q[0] = 9.0
    assert source.poll(OBS, INFO).is_intervening  # takeover
    state = source.poll(OBS, INFO)  # the hand rests
    assert not state.is_intervening and state.action is None
    leader.q[0] = 11.0  # 2 degrees: under the takeover threshold, but the person is engaged
    state = source.poll(OBS, INFO)
    assert state.is_intervening
    np.testing.assert_allclose(state.action[:3], [0.2, 0, 0], atol=1e-6)
    assert [source.poll(OBS, INFO).is_intervening for _ in range(3)] == [False, False, False]
    assert (source.engagements, source.releases) == (1, 1)
    leader.q[0] = 13.0  # 2 degrees from the new rest pose: not a takeover
    assert not source.poll(OBS, INFO).is_intervening and source.engagements == 1


def test_leader_gripper_open_close():
    leader = FakeLeader()
    leader.q[5] = 50.0
    source = LeaderArmSource(leader, fk=linear_fk, takeover="toggle", gripper_step=5)
    source.poll(OBS, INFO)
    source.keys.press("space")
    assert source.poll(OBS, INFO).action[3] == GRIPPER_STAY
    leader.q[5] = 20.0
    assert source.poll(OBS, INFO).action[3] == GRIPPER_CLOSE
    assert source.poll(OBS, INFO).action[3] == GRIPPER_STAY
    leader.q[5] = 40.0
    assert source.poll(OBS, INFO).action[3] == GRIPPER_OPEN


def test_leader_toggle_mode_and_keys():
    leader = FakeLeader()
    source = LeaderArmSource(leader, fk=linear_fk, takeover="toggle")
    leader.q[0] = 40.0
    assert not source.poll(OBS, INFO).is_intervening  # toggle mode: moving alone does not take over
    source.keys.press("space")
    source.keys.press("s")
    state = source.poll(OBS, INFO)
    assert state.is_intervening and state.events == [Event.SUCCESS, Event.INTERVENTION_ON]
    assert source.poll(OBS, INFO).events == []


def test_leader_without_kinematics_passes_joint_targets():
    leader = FakeLeader()
    source = LeaderArmSource(leader, fk=None, threshold_deg=5)
    source.poll(OBS, INFO)
    leader.q[:] = [10, 0, 0, 0, 0, 30]
    state = source.poll(OBS, INFO)
    assert state.is_intervening and state.action is None
    np.testing.assert_array_equal(state.joint_targets, leader.q)


# ---------------------------------------------------------------- scripted human


class FakeExpert:
    def __init__(self) -> None:
        self.calls = 0
        self.resets = 0

    def act(self, obs, info):
        self.calls += 1
        return np.array([0.5, 0.0, -0.5, GRIPPER_CLOSE], dtype=np.float32)

    def reset(self):
        self.resets += 1


def run_schedule(kind: str, episodes: int, steps: int = 50, **kw) -> np.ndarray:
    human = ScriptedHuman(FakeExpert(), InterventionSchedule(kind, **kw))
    flags = np.zeros((episodes, steps), dtype=bool)
    for e in range(episodes):
        human.reset()
        for t in range(steps):
            flags[e, t] = human.poll(OBS, INFO).is_intervening
    return flags


def test_schedule_always():
    assert run_schedule("always", 2).all()


def test_schedule_periodic_policy_then_human():
    flags = run_schedule("periodic", 1, steps=20, prob=0.3, period_steps=10)[0]
    expected = [False] * 7 + [True] * 3
    assert flags.tolist() == expected * 2


def test_schedule_random_is_seeded_and_blockwise():
    a = run_schedule("random", 20, prob=0.5, period_steps=5, seed=3)
    b = run_schedule("random", 20, prob=0.5, period_steps=5, seed=3)
    c = run_schedule("random", 20, prob=0.5, period_steps=5, seed=4)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    blocks = a.reshape(20, 10, 5)
    assert (blocks.all(axis=2) | ~blocks.any(axis=2)).all()  # whole blocks taken over
    assert 0.35 < a.mean() < 0.65


def test_schedule_decay_intervenes_less_and_less():
    schedule = InterventionSchedule("decay", prob=0.9, decay_rate=0.8)
    probabilities = [schedule.probability(e) for e in range(10)]
    assert all(later < earlier for earlier, later in zip(probabilities, probabilities[1:], strict=False))
    flags = run_schedule("decay", 30, steps=100, prob=0.9, period_steps=5, decay_rate=0.85, seed=0)
    per_episode = flags.mean(axis=1)
    assert per_episode[:5].mean() > 0.6
    assert per_episode[:10].mean() > per_episode[10:20].mean() > per_episode[20:].mean()
    assert per_episode[25:].mean() < 0.15


def test_scripted_human_uses_expert_action_and_presses_success_once():
    expert = FakeExpert()
    human = ScriptedHuman(expert, InterventionSchedule("always"))
    human.reset()
    state = human.poll(OBS, {"is_success": False})
    assert state.is_intervening and state.events == [Event.INTERVENTION_ON]
    np.testing.assert_array_equal(state.action, [0.5, 0.0, -0.5, GRIPPER_CLOSE])
    assert human.poll(OBS, {"is_success": True}).events == [Event.SUCCESS]
    assert human.poll(OBS, {"is_success": True}).events == []  # the sim still says success: no repeat
    human.reset()
    assert expert.resets == 2
    human.poll(OBS, {"is_success": False})
    assert human.poll(OBS, {"is_success": True}).events == [Event.SUCCESS]  # a new episode, a new press


def test_scripted_human_presses_success_only_while_intervening_when_told():
    """press_success='intervening': once the human's help has tapered off, only the classifier
    judges success; 'always' (a person watching every episode) presses whoever acts."""
    for mode, expected in (("intervening", [[], [Event.SUCCESS]]), ("always", [[Event.SUCCESS], []])):
        human = ScriptedHuman(
            FakeExpert(), InterventionSchedule("periodic", prob=0.5, period_steps=2), press_success=mode
        )
        human.reset()
        # step 0: the policy acts (no press in 'intervening'); step 1: the human acts.
        got = [
            [e for e in human.poll(OBS, {"is_success": True}).events if e == Event.SUCCESS] for _ in range(2)
        ]
        assert got == expected, mode
    with pytest.raises(UserError, match="teleop.press_success"):
        ScriptedHuman(FakeExpert(), InterventionSchedule("always"), press_success="sometimes")


def test_scripted_human_expert_runs_while_not_intervening():
    expert = FakeExpert()
    human = ScriptedHuman(expert, InterventionSchedule("periodic", prob=0.5, period_steps=4))
    human.reset()
    states = [human.poll(OBS, INFO) for _ in range(4)]
    assert expert.calls == 4
    assert [s.action is None for s in states] == [True, True, False, False]


def test_scripted_human_misses_on_purpose_in_failure_prob_of_the_episodes():
    expert = FakeExpert()
    expert.miss = None
    human = ScriptedHuman(expert, InterventionSchedule("always"), failure_prob=0.3, seed=5)
    misses = []
    for _ in range(200):
        human.reset()
        misses.append(expert.miss)
    assert 0.2 < sum(m is not None for m in misses) / 200 < 0.4
    assert set(MISSES) == {m for m in misses if m is not None}
    again = ScriptedHuman(FakeExpert(), InterventionSchedule("always"), failure_prob=0.3, seed=5)
    replay = []
    for _ in range(200):
        again.reset()
        replay.append(again.expert.miss)
    assert replay == misses  # seeded
    never = ScriptedHuman(expert, InterventionSchedule("always"))
    for _ in range(20):
        never.reset()
        assert expert.miss is None
    with pytest.raises(UserError, match="teleop.failure_prob"):
        ScriptedHuman(expert, InterventionSchedule("always"), failure_prob=1.5)

    cfg = EnvConfig()
    cfg.teleop.type, cfg.teleop.failure_prob = "keyboard", 0.5
    with pytest.raises(UserError, match="only the scripted human misses on purpose"):
        make_intervention_source(cfg)


def test_bad_schedule_is_user_error():
    with pytest.raises(UserError, match="teleop.schedule"):
        InterventionSchedule("sometimes")
    with pytest.raises(UserError, match="intervention_prob"):
        InterventionSchedule("random", prob=1.5)


def test_factory_errors_name_the_fix():
    with pytest.raises(UserError, match="teleop.type"):
        make_intervention_source(EnvConfig(teleop=TeleopConfig(type="joystick")))
    with pytest.raises(UserError, match="simulator"):
        make_intervention_source(EnvConfig(teleop=TeleopConfig(type="scripted")), env=None)
    assert isinstance(make_intervention_source(EnvConfig(teleop=TeleopConfig(type="none"))), NullSource)


def test_leader_with_the_so101_kinematic_model():
    """Leader joint motion -> end-effector action through the simulated SO-101's forward kinematics."""
    from actors.intervention.leader import default_forward_kinematics
    from actors.robots.sim.env import HOME_JOINTS_DEG

    fk = default_forward_kinematics()
    leader = FakeLeader()
    leader.q = np.array(HOME_JOINTS_DEG, dtype=float)
    source = LeaderArmSource(leader, fk=fk, step_sizes=(0.02, 0.02, 0.02), threshold_deg=5)
    source.poll(OBS, INFO)
    leader.q[1] -= 8.0  # shoulder_lift back: the hand rises and comes back toward the base
    state = source.poll(OBS, INFO)
    expected = fk(leader.q) - fk(np.array(HOME_JOINTS_DEG, dtype=float))
    assert state.is_intervening and np.linalg.norm(expected) > 0.005
    np.testing.assert_allclose(state.action[:3], np.clip(expected / 0.02, -1, 1), atol=1e-5)


def test_gamepad_without_a_pad_is_one_line_error(monkeypatch):
    pygame = pytest.importorskip("pygame")
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    pygame.joystick.init()
    if pygame.joystick.get_count() > 0:
        pytest.skip("a real gamepad is connected")
    with pytest.raises(UserError) as err:
        GamepadSource.with_pygame()
    assert "\n" not in str(err.value) and "no gamepad found" in str(err.value)


def test_pynput_key_names():
    from types import SimpleNamespace

    from actors.intervention.keyboard import pynput_key_name

    assert pynput_key_name(SimpleNamespace(char="S")) == "s"  # shift+s is still the success key
    assert pynput_key_name(SimpleNamespace(char=None, name="space")) == "space"
    assert pynput_key_name(SimpleNamespace(char=None, name="shift_r")) == "shift_r"
