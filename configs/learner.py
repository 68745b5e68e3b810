"""SAC + DrQ-v2 learner and replay storage settings (HIL-SERL defaults).

Defaults follow HIL-SERL's code and the LeRobot HIL-SERL guide configs: discount 0.97, UTD 2,
batch 256 mixed 50/50 online/demo (RLPD), initial temperature 0.01, target entropy -|A|/2, two
critics, frozen ResNet-10 with per-camera spatial learned embeddings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from configs.errors import ConfigError

FEATURE_AUGMENTS = ("none", "map_shift", "pixel_shifts")


@dataclass
class LearnerConfig:
    """The learner: networks, SAC hyperparameters, augmentation and the replay buffers."""

    # --- observation and action layout ---
    image_keys: list[str] = field(
        default_factory=lambda: ["observation.images.front", "observation.images.wrist"]
    )
    """Camera keys; frames arrive as uint8 (3, image_size, image_size), stored as such or (feature_cache) as their backbone maps. Empty: state-only agent."""
    image_size: int = 128
    """Camera images are (3, image_size, image_size) uint8 in the buffer and at the encoder."""
    state_key: str = "observation.state"
    """Key of the proprioceptive state vector."""
    state_dim: int = 18
    """Size of the state vector (float32)."""
    action_dim: int = 4
    """Size of the stored action; with the grasp critic on, the last entry is the gripper command in {0, 1, 2} (close, stay, open: LeRobot's, learner.types.Gripper)."""

    normalize_state: bool = False
    """Scale the state vector per entry to zero mean and unit spread before the networks, with the
    demo dataset's statistics (filled in by the driver when the run starts, stored in
    ``state_loc``/``state_scale`` in the run's config and carried by every checkpoint and export).
    Off by default: on the simulated reach_grasp it lowered success after 1,500 steps (3 seeds);
    the joint angles in degrees already carry the hand's position, and scaled joint velocities
    (noisy, a constant wrist roll's included) crowd it out after the state layer's LayerNorm."""
    state_loc: list[float] | None = None
    """Per-entry offset subtracted from the state (filled in from the demo dataset; None: 0)."""
    state_scale: list[float] | None = None
    """Per-entry divisor of the state after the offset (filled in from the demo dataset; None: 1)."""

    # --- SAC ---
    discount: float = 0.97
    """Discount factor gamma (HIL-SERL default; the paper uses 0.96-0.985 per task)."""
    tau: float = 0.005
    """Polyak weight of the soft target update, applied after every critic update."""
    utd_ratio: int = 2
    """Critic updates (each on a fresh batch) per actor update (HIL-SERL's cta_ratio)."""
    batch_size: int = 256
    """Transitions per batch, online and demo together."""
    num_critics: int = 2
    """Critic ensemble size (2 in HIL-SERL; 10 with num_subsample_critics=2 for REDQ-style SERL)."""
    num_subsample_critics: int | None = None
    """Critics drawn at random for the min in the TD target (None: all of them)."""
    critic_lr: float = 3e-4
    """Adam learning rate of the critic ensemble and the shared observation encoder heads."""
    actor_lr: float = 3e-4
    """Adam learning rate of the actor."""
    temperature_lr: float = 3e-4
    """Adam learning rate of log(temperature)."""
    grasp_critic_lr: float = 3e-4
    """Adam learning rate of the discrete gripper critic."""
    initial_temperature: float = 0.01
    """Initial entropy temperature alpha (LeRobot's docs: higher makes interventions ineffective)."""
    target_entropy: float | None = None
    """Entropy target; None means -action_dim / 2 (the gripper dimension included, as in HIL-SERL)."""
    backup_entropy: bool = False
    """Subtract alpha * log pi(a'|s') in the TD target (HIL-SERL: False)."""
    bc_weight: float = 0.0
    """Weight of a behaviour-cloning term on the human's steps (demos and interventions, the
    ``is_intervention`` samples of each batch): the actor's mean action is pulled toward the human's
    action (squared error), and the grasp critic gets DQfD's large-margin loss on the human's
    gripper command. 0: HIL-SERL's pure RLPD. With few hundred env steps and a handful of demos
    the critic alone is slow to find the 1 cm that separates a grasp from a miss."""
    bc_margin: float = 0.8
    """DQfD's margin: the human's gripper command must beat every other by this much in Q."""
    grad_clip_norm: float | None = None
    """Gradient-norm clip for every optimizer (None: no clipping, as in HIL-SERL)."""

    # --- networks ---
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    """MLP widths of the actor, each critic head and the grasp critic (LayerNorm + tanh after each)."""
    latent_dim: int = 256
    """Per-camera embedding size after the spatial embedding projection."""
    state_latent_dim: int = 64
    """Size of the state MLP output (HIL-SERL's proprio encoder size)."""
    image_embedding_pooling_dim: int = 8
    """Learned spatial kernels per channel (HIL-SERL's num_features)."""
    dropout: float = 0.1
    """Dropout on the pooled image embedding."""
    log_std_min: float = -5.0
    """Lower clamp of the actor's log standard deviation."""
    log_std_max: float = 2.0
    """Upper clamp of the actor's log standard deviation."""
    vision_model_name: str = "helper2424/resnet10"
    """ResNet-10 weights: a local folder, or a hub id resolved from the local cache only."""
    encoder_chunk_size: int | None = 512
    """Images per frozen-backbone call (bounds peak activation memory; None: the whole batch at once)."""
    allow_random_vision_weights: bool = False
    """Use a randomly initialised backbone when the weights are missing (tests only)."""

    # --- grasp critic ---
    grasp_critic: bool = True
    """Learn the gripper with HIL-SERL's discrete critic (3 actions: close, stay, open) instead of the actor.
    Its penalty for a gripper change is the env's ``processor.gripper.gripper_penalty`` (one source),
    which the robot writes into every transition's ``complementary_info['grasp_penalty']``."""

    # --- augmentation ---
    augment: bool | None = None
    """DrQ-v2 random shift of every camera image (obs and next obs independently) on the learner's
    device. None: on with pixel replay; with feature replay ``feature_augment`` decides (the frames
    are gone, so pixel shifts cannot be applied there; asking for them is an error)."""
    pad: int = 4
    """Random-shift padding in pixels (replicate padding, shift in [-pad, pad])."""

    # --- feature replay ---
    feature_cache: bool = True
    """Store the frozen backbone's float16 feature maps in the replay instead of uint8 frames; updates skip the backbone."""
    feature_augment: str = "none"
    """Feature-replay augmentation: 'none', 'map_shift' (shift the feature map) or 'pixel_shifts' (K stored DrQ shifts)."""
    feature_shifts: int = 2
    """K, the pixel shifts encoded and stored per frame with feature_augment='pixel_shifts' (K x storage)."""
    feature_pad: int = 1
    """Shift range in feature-map cells with feature_augment='map_shift' (1 cell = 32 px at 128 px)."""

    # --- replay ---
    online_ratio: float = 0.5
    """Share of each batch drawn from the online buffer; the rest comes from the demo buffer (RLPD)."""
    online_capacity: int = 100_000
    """Frame slots of the online buffer (one slot per step, plus one per episode end)."""
    demo_capacity: int = 100_000
    """Frame slots of the demo buffer (offline demos and interventions)."""

    # --- runtime ---
    device: str = "cpu"
    """Torch device of the learner ('cuda' when available)."""
    seed: int = 0
    """Seed of torch, numpy and the buffers' samplers."""

    def __post_init__(self) -> None:
        if self.num_subsample_critics is not None and not 1 <= self.num_subsample_critics <= self.num_critics:
            raise ConfigError(
                f"num_subsample_critics={self.num_subsample_critics} must be between 1 and num_critics="
                f"{self.num_critics}; lower it or raise num_critics"
            )
        if not 0.0 <= self.online_ratio <= 1.0:
            raise ConfigError(f"online_ratio={self.online_ratio} must be in [0, 1]; 0.5 is HIL-SERL's value")
        if self.feature_augment not in FEATURE_AUGMENTS:
            raise ConfigError(
                f"feature_augment='{self.feature_augment}' must be one of {list(FEATURE_AUGMENTS)}"
            )
        if self.feature_augment == "pixel_shifts" and self.feature_shifts < 1:
            raise ConfigError(
                f"feature_shifts={self.feature_shifts} must be at least 1 with feature_augment='pixel_shifts'"
            )
        if self.augment and self.uses_feature_replay and self.feature_augment == "none":
            raise ConfigError(
                "learner.augment=true asks for DrQ pixel shifts, which feature replay cannot apply (it stores "
                "backbone maps, not frames): set learner.feature_augment=pixel_shifts or map_shift, "
                "learner.feature_cache=false, or drop learner.augment"
            )
        if self.bc_weight < 0 or self.bc_margin < 0:
            raise ConfigError(
                f"learner.bc_weight={self.bc_weight} and bc_margin={self.bc_margin} must be >= 0"
            )
        if self.utd_ratio < 1:
            raise ConfigError(f"utd_ratio={self.utd_ratio} must be at least 1")
        for name in ("state_loc", "state_scale"):
            values = getattr(self, name)
            if values is not None and len(values) != self.state_dim:
                raise ConfigError(
                    f"learner.{name} has {len(values)} entries but the state has {self.state_dim}: drop it "
                    "(it is filled in from the demo dataset)"
                )
        if self.state_scale is not None and min(self.state_scale) <= 0:
            raise ConfigError("learner.state_scale must be positive everywhere: drop it to recompute it")
        if self.grasp_critic and self.action_dim < 2:
            raise ConfigError(
                "grasp_critic needs action_dim >= 2 (continuous dims + the gripper); turn it off"
            )

    @property
    def uses_feature_replay(self) -> bool:
        """The replay stores backbone features (feature_cache on and at least one camera)."""
        return self.feature_cache and bool(self.image_keys)

    @property
    def pixel_augment(self) -> bool:
        """DrQ shifts of pixel batches (``augment``, on unless set false)."""
        return self.augment is not False

    @property
    def continuous_action_dim(self) -> int:
        """Actions the actor outputs: all of them, or all but the gripper when the grasp critic owns it."""
        return self.action_dim - 1 if self.grasp_critic else self.action_dim

    @property
    def resolved_target_entropy(self) -> float:
        """-|A| / 2 unless set."""
        return -self.action_dim / 2.0 if self.target_entropy is None else self.target_entropy
