"""Robot environment config: simulated or real SO-101, human intervention, record mode, learned reward.

Accepts the JSON shapes of LeRobot's ``gym_manipulator`` env configs unchanged: the flat record-mode
fields (mode, repo_id, dataset_root, num_episodes, push_to_hub, fps, number_of_steps_after_success),
``reward_classifier_pretrained_path`` and the newer ``processor.reward_classifier`` block.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from configs.errors import UserError


@dataclass
class CameraConfig:
    """One camera of the real robot (LeRobot OpenCV camera)."""

    index_or_path: str | int = 0
    """OpenCV index or /dev/video path."""
    width: int = 640
    """Capture width."""
    height: int = 480
    """Capture height."""
    fps: int = 30
    """Capture rate."""
    rotation: int = 0
    """Rotation in degrees (0, 90, 180, -90), clockwise; a wrong 180 mirrors the view."""


@dataclass
class RobotConfig:
    """The arm: 'sim' (MuJoCo SO-101) or 'so101' (real follower over the Feetech bus)."""

    type: str = "sim"
    """'sim' or 'so101'."""
    port: str | None = None
    """Serial port of the follower arm (real robot or `hilserl servo-sim`)."""
    id: str = "follower"
    """Robot id; names the calibration file."""
    calibration_dir: str | None = None
    """Folder with <id>.json calibration files."""
    cameras: dict[str, CameraConfig] = field(default_factory=dict)
    """Cameras by name ('front', 'wrist')."""
    max_relative_target: float | None = 10.0
    """Per-step joint delta bound (degrees) enforced before a goal is written."""
    use_degrees: bool = True
    """Joint positions in degrees (else LeRobot's -100..100 range)."""
    end_effector_bounds: dict[str, list[float]] | None = None
    """Workspace bounds {'min': [x, y, z], 'max': [x, y, z]} in metres."""
    end_effector_step_sizes: dict[str, float] | None = None
    """Metres per unit action along x, y, z."""
    urdf_path: str | None = None
    """URDF for LeRobot's kinematics (end-effector control on the real arm); joint space when unset."""
    disable_torque_on_disconnect: bool = True
    """Torque off when the robot stops or faults."""
    camera_source: str = "opencv"
    """Where 'so101' frames come from: 'opencv' (the configured cameras) or 'test_pattern' (synthetic
    frames, to try the real-robot path on `hilserl servo-sim` without cameras)."""
    gripper_step: float = 20.0
    """Gripper units (0-100) moved per 'open'/'close' step on the real arm (LeRobot's speed_factor)."""


@dataclass
class TeleopConfig:
    """Who can take over: 'leader', 'keyboard', 'gamepad', 'scripted' (simulated human) or 'none'."""

    type: str = "scripted"
    """Intervention source."""
    port: str | None = None
    """Serial port of the leader arm."""
    id: str = "leader"
    """Leader id; names its calibration file."""
    calibration_dir: str | None = None
    """Folder with the leader's calibration file."""
    schedule: str = "decay"
    """Scripted human: 'always', 'periodic', 'random', 'decay' (intervenes less as episodes pass) or
    'on_failure' (steps in at the first sign of failure a person can see and drives to the end)."""
    patience_steps: int = 15
    """Scripted human, 'on_failure': no grasp after this many steps of an episode is a failure sign."""
    intervention_prob: float = 0.5
    """Scripted human: probability/fraction of intervening."""
    period_steps: int = 10
    """Scripted human: length in steps of one policy/human cycle ('periodic') or one decision ('random', 'decay')."""
    decay_rate: float = 0.8
    """Scripted human, 'decay': the intervention probability is multiplied by this after each episode."""
    press_success: str = "always"
    """Scripted human: when it presses the success key on the simulator's success. 'always' (a
    person watching every episode) or 'intervening' (only while it holds the controls: once the
    help has tapered off, the reward classifier alone judges success)."""
    grasp_variety_m: float = 0.0
    """Scripted human: vary the grasp per episode, up to this many metres above the usual grasp
    point and 0.4x that to either side (every such grasp holds the cube). The classifier's demos
    need it: trained on one grasp pose it called the policy's other grasps failures."""
    lift_variety_m: float = 0.0
    """Scripted human, pick_lift: once the cube is lifted past the success height, carry it to a
    new point every 4 steps, up to this many metres aside, 0.75x lower and 1.5x higher (never below
    success), so the classifier's positives show lifts a policy makes. Off by default: measured at
    0.04 over three seeds, the held-out false-negative rate fell from 0.09 to 0.06 on average and
    the final success from 0.98 to 0.89 (docs/learning_quality.md)."""
    failure_prob: float = 0.0
    """Scripted human, recording: share of episodes in which it misses on purpose (hovers around the
    cube with the gripper open, closes it beside or above the cube, or waves the arm about opening
    and closing the gripper), never pressing success: the near-miss negatives a reward classifier
    needs besides clean demonstrations."""
    takeover: str = "auto"
    """Leader arm: 'auto' (moving the leader takes over, keeping it still hands back) or 'toggle' (space key)."""
    takeover_threshold_deg: float = 5.0
    """Leader arm, 'auto': a joint moved more than this many degrees starts an intervention."""
    release_after_s: float = 1.0
    """Leader arm, 'auto': the leader held still this long hands control back."""
    keyboard_events: bool = True
    """Leader arm: read the episode keys (s, q, r, space, esc) from the keyboard (needs a display)."""
    deadzone: float = 0.1
    """Gamepad: stick values below this are zero."""


@dataclass
class ImagePreprocessingConfig:
    """Image crop and resize before the policy and the reward classifier."""

    crop_params_dict: dict[str, list[int]] | None = None
    """Per-camera crop (top, left, height, width)."""
    resize_size: list[int] | None = None
    """[H, W] after cropping."""


@dataclass
class RewardClassifierEnvConfig:
    """The frozen learned reward."""

    pretrained_path: str | None = None
    """Classifier checkpoint folder (a pretrained_model/ directory)."""
    success_threshold: float | None = None
    """Probability above which a frame is a success (default: the checkpoint's calibrated threshold)."""
    success_reward: float = 1.0
    """Reward for a success frame."""


@dataclass
class ResetConfig:
    """Episode reset and length."""

    fixed_reset_joint_positions: list[float] | None = None
    """Joint positions (degrees) the arm returns to at reset."""
    reset_time_s: float = 5.0
    """Time allowed for the reset motion."""
    control_time_s: float = 20.0
    """Episode length in seconds (time-limit truncation, not termination)."""
    terminate_on_success: bool = True
    """End the episode when a success is detected."""
    use_ik_reset: bool = False
    """Reset through inverse kinematics (off unless set: it must never switch on by itself)."""


@dataclass
class GripperConfig:
    """Gripper command and penalty."""

    use_gripper: bool = True
    """Discrete gripper action {open, stay, close}."""
    gripper_penalty: float = 0.0
    """Penalty for an effective gripper change (HIL-SERL's grasp penalty, e.g. -0.02); the grasp critic's
    target adds it to the reward. The only place the penalty is set."""


@dataclass
class ProcessorConfig:
    """LeRobot's HIL-SERL processor block."""

    control_mode: str | None = None
    """(LeRobot's name for the intervention device) must agree with `teleop.type`, which selects it here."""
    observation: dict[str, Any] | None = None
    """(LeRobot compatibility) extra observation options."""
    image_preprocessing: ImagePreprocessingConfig | None = None
    """Crop and resize."""
    gripper: GripperConfig | None = None
    """Gripper options."""
    reset: ResetConfig | None = None
    """Reset options."""
    inverse_kinematics: dict[str, Any] | None = None
    """(LeRobot compatibility) IK options; see robot.urdf_path."""
    reward_classifier: RewardClassifierEnvConfig | None = None
    """Learned reward."""
    max_gripper_pos: float | None = 100.0
    """Gripper range upper bound."""


@dataclass
class EnvConfig:
    """A robot environment, for recording and for RL."""

    type: str = "sim"
    """'sim' (MuJoCo SO-101) or 'gym_manipulator' / 'so101' (real arm, see robot)."""
    task: str = "pick_lift"
    """Simulated task: 'pick_lift' or 'reach_grasp'."""
    name: str = "so101"
    """Environment name (LeRobot compatibility)."""
    fps: int = 10
    """Control rate in Hz."""
    realtime: bool | None = None
    """Hold fps in wall-clock time. Default: on, except for the simulator with the scripted human (free-running)."""
    seed: int = 0
    """Seed for cube placement and the scripted human."""
    image_size: int = 128
    """Camera image side in pixels (simulator)."""
    robot: RobotConfig = field(default_factory=RobotConfig)
    """The arm."""
    teleop: TeleopConfig = field(default_factory=TeleopConfig)
    """Human intervention source."""
    processor: ProcessorConfig = field(default_factory=ProcessorConfig)
    """Preprocessing, reset, gripper and learned reward."""
    rehearse: bool = False
    """Rehearse the real-arm config without the arm (`--rehearse`): the follower and the leader are
    simulated servo buses, the cameras the MuJoCo scene's, the person the scripted human
    (``actors.robots.rehearsal``). The config is checked first (``actors.robots.preflight``)."""
    # Record mode (LeRobot's flat fields).
    mode: str | None = None
    """'record' to write a dataset; null for RL."""
    repo_id: str | None = None
    """Dataset name for record mode (a label only; never pushed unless push_to_hub)."""
    dataset_root: str | None = None
    """New dataset root for record mode (must not exist)."""
    num_episodes: int = 10
    """Episodes to record."""
    push_to_hub: bool = False
    """Push the recorded dataset to the hub (off by default)."""
    video: bool = True
    """Store camera frames as video (LeRobot's default: AV1, yuv420p, lossy) or, false, as PNG
    images (lossless). A reward classifier trained on decoded video frames scores live frames that
    never went through the codec; with images both are the same pixels (the simulated demo's
    choice). The checkpoint records which it was trained on."""
    number_of_steps_after_success: int = 0
    """Keep recording this many frames, labeled success, after a success."""
    task_description: str = "pick up the cube"
    """Task string stored with each frame."""
    reward_classifier_pretrained_path: str | None = None
    """(older LeRobot field) same as processor.reward_classifier.pretrained_path."""
    normalize_images: bool = False
    """(LeRobot compatibility) images are always stored as uint8."""
    resize_size: list[int] | None = None
    """(LeRobot compatibility) same as processor.image_preprocessing.resize_size."""

    def check_supported(self) -> None:
        """Refuse, in one line, every LeRobot field this project parses but does not implement."""
        pre = self.processor.image_preprocessing
        if pre is not None and (pre.crop_params_dict or pre.resize_size):
            raise UserError(
                "processor.image_preprocessing (crop_params_dict / resize_size) is not supported: cameras are "
                "resized to env.image_size; remove the block (crop in the camera mount or the camera config)"
            )
        if self.resize_size:
            raise UserError("env.resize_size is not supported: set env.image_size (square) instead")
        if self.normalize_images:
            raise UserError("env.normalize_images is not supported: images are stored as uint8; remove it")
        control = self.processor.control_mode
        aliases = {
            "leader": "leader",
            "keyboard": "keyboard",
            "gamepad": "gamepad",
            "keyboard_ee": "keyboard",
        }
        if control is not None and aliases.get(control, control) != self.teleop.type:
            raise UserError(
                f"processor.control_mode '{control}' disagrees with teleop.type '{self.teleop.type}': "
                "set teleop.type (it selects the intervention device) and drop control_mode"
            )
        for name in ("observation", "inverse_kinematics"):
            if getattr(self.processor, name):
                raise UserError(
                    f"processor.{name} is not supported (LeRobot's processor options); remove it "
                    "(end-effector control uses robot.urdf_path and robot.end_effector_* here)"
                )
        rc = self.processor.reward_classifier
        if (
            rc
            and rc.pretrained_path
            and self.reward_classifier_pretrained_path not in (None, rc.pretrained_path)
        ):
            raise UserError(
                "reward_classifier_pretrained_path and processor.reward_classifier.pretrained_path differ: keep one"
            )

    def reward_classifier(self) -> RewardClassifierEnvConfig | None:
        """The learned-reward block, wherever the JSON put it."""
        block = self.processor.reward_classifier
        if block is None and self.reward_classifier_pretrained_path:
            block = RewardClassifierEnvConfig(pretrained_path=self.reward_classifier_pretrained_path)
        return block


def rehearse_argv(argv: list[str], flag: str = "--rehearse=true") -> list[str]:
    """``--rehearse`` (a bare flag) as the config override it stands for (``--env.rehearse=true`` in a run)."""
    return [flag if a == "--rehearse" else a for a in argv]
