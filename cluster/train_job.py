"""`hilserl train-reward`: train the reward classifier as a Ray Train job and export ``pretrained_model``.

    hilserl train-reward --config_path cfg.json [--steps=500 --dataset.root=/abs/path ...]
    ray job submit --address http://127.0.0.1:8265 --working-dir . -- hilserl train-reward --config_path cfg.json

The training loop is ``reward.train.run`` (pure torch, no Ray); here it runs inside a ``TorchTrainer``
(workers, CPUs and GPUs from ``cfg.scaling``) under a unique run name per launch, because Ray
Train V2 silently resumes a run whose name it has seen. Under ``ray job submit`` the job
supervisor sets ``RAY_ADDRESS`` and we attach to that cluster; without it we start a private local
Ray for the run and stop it afterwards. ``--use_ray=false`` runs the same loop in this process.

The best checkpoint (reported to Ray under ``<storage_path>/<run_name>/``) is exported to
``<output_dir>/pretrained_model`` and its path is the last line printed. An existing non-empty
``output_dir`` needs ``--overwrite=true``, which replaces only what train-reward wrote there
(``pretrained_model``, ``runs``, ``ray``, ``eval``). An output inside the dataset is refused. Ctrl-C
removes the partial run and says so.

Heavy imports (torch, Ray, LeRobot) happen after the arguments are parsed, so ``--help`` and
argument errors answer at once.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import shutil
import signal
from pathlib import Path

from configs.errors import UserError
from configs.reward import RewardTrainConfig

logger = logging.getLogger(__name__)
UNDER_RAY_JOB = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray's job supervisor for the entrypoint


def absolute_paths(cfg: RewardTrainConfig) -> RewardTrainConfig:
    """Make dataset, output and storage paths absolute (workers may run in another directory).

    Under ``ray job submit`` the working directory is Ray's temporary copy of the package, so a
    relative path would point inside it: refuse it instead of writing there.
    """
    under_job = UNDER_RAY_JOB in os.environ
    paths = [
        ("dataset.root", cfg.dataset.root),
        ("output_dir", cfg.output_dir),
        ("storage_path", cfg.storage_path),
    ]
    paths += [("dataset.extra_roots", r) for r in cfg.dataset.extra_roots or []]
    for name, value in paths:
        if value and under_job and not Path(value).expanduser().is_absolute():
            raise UserError(
                f"{name} '{value}' is relative, but under ray job submit the working directory is Ray's temporary "
                f"copy of the package; pass an absolute path (--{name}=/abs/path)"
            )
    dataset = cfg.dataset
    if dataset.root:
        dataset = dataclasses.replace(dataset, root=str(Path(dataset.root).expanduser().resolve()))
    if dataset.extra_roots:
        extra = [str(Path(r).expanduser().resolve()) for r in dataset.extra_roots]
        dataset = dataclasses.replace(dataset, extra_roots=extra)
    output_dir = Path(cfg.output_dir).expanduser().resolve()
    storage = Path(cfg.storage_path).expanduser().resolve() if cfg.storage_path else output_dir / "ray"
    policy = cfg.policy
    if Path(policy.model_name).expanduser().exists():
        policy = dataclasses.replace(policy, model_name=str(Path(policy.model_name).expanduser().resolve()))
    return dataclasses.replace(
        cfg, dataset=dataset, output_dir=str(output_dir), storage_path=str(storage), policy=policy
    )


# What train-reward writes into output_dir; --overwrite replaces only these.
OWN_ENTRIES = {"pretrained_model", "runs", "ray", "eval"}


def check_outputs(cfg: RewardTrainConfig) -> None:
    """Refuse outputs inside the dataset, and an existing output_dir without ``overwrite``."""
    from reward.dataset import refuse_inside

    output_dir = Path(cfg.output_dir)
    sources = cfg.dataset.roots()
    if sources:
        refuse_inside(output_dir, sources, "--output_dir")
        if cfg.storage_path:
            refuse_inside(Path(cfg.storage_path), sources, "--storage_path")
    if output_dir.exists() and not output_dir.is_dir():
        raise UserError(f"output_dir {output_dir} exists and is not a folder; pass another --output_dir")
    entries = sorted(p.name for p in output_dir.iterdir()) if output_dir.is_dir() else []
    if not entries:
        return
    if not cfg.overwrite:
        raise UserError(
            f"output_dir {output_dir} already exists and is not empty; pass --overwrite=true to replace "
            "its pretrained_model or choose another --output_dir"
        )
    foreign = [name for name in entries if name not in OWN_ENTRIES]
    if foreign:
        raise UserError(
            f"output_dir {output_dir} holds '{foreign[0]}', which train-reward did not write, so --overwrite "
            "will not replace it; choose another --output_dir"
        )


def check_inputs(cfg: RewardTrainConfig) -> None:
    """Every user error we can find before starting Ray or writing anything."""
    from reward.data import preflight
    from reward.model import build_backbone

    if cfg.steps < 1 or cfg.batch_size < 1 or cfg.eval_freq < 1 or cfg.log_freq < 1:
        raise UserError("steps, batch_size, eval_freq and log_freq must be positive; fix the config")
    if not 0 <= cfg.val_fraction < 1:
        raise UserError(f"val_fraction is {cfg.val_fraction}; use a value in [0, 1), e.g. 0.2")
    if cfg.scaling.num_workers < 1:
        raise UserError("scaling.num_workers must be at least 1 (use --use_ray=false for a plain process)")
    if cfg.num_workers:
        raise UserError(
            f"num_workers={cfg.num_workers}: there is no DataLoader to give workers (frames are decoded once per "
            "episode and their backbone features cached); remove it (scaling.num_workers sets Ray Train workers)"
        )
    check_outputs(cfg)
    preflight(cfg.dataset, cfg.policy, cfg.reward_key)
    build_backbone(cfg.policy, load_weights=True, allow_random=cfg.allow_random_backbone)


def export_checkpoint(source: Path, output_dir: Path) -> Path:
    """Copy a checkpoint to ``<output_dir>/pretrained_model`` atomically (replacing an older export)."""
    from reward.dataset import safe_output

    target = output_dir / "pretrained_model"
    with safe_output(target, overwrite=True) as tmp:
        shutil.copytree(source, tmp)
    return target


def _train_loop_per_worker(config: dict) -> None:
    """Runs on every Ray Train worker."""
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    from configs.parsing import decode_config
    from reward.train import TrainHooks, run

    # Ray sets the worker's root logger to ERROR (quiet Ray internals); our own lines still show,
    # and the driver already warned about a random backbone.
    ours = logging.getLogger("reward")
    if not ours.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        ours.addHandler(handler)
        ours.setLevel(logging.INFO)
        ours.propagate = False
    logging.getLogger("vision.resnet10").setLevel(logging.ERROR)
    try:  # Ray Train logs "Reporting training result ..." on a logger named by its file path, outside ray.train
        from ray.train.v2._internal.execution import context as train_context

        logging.getLogger(train_context.__file__).setLevel(logging.WARNING)
    except ImportError:  # pragma: no cover - another Ray layout: only noisier
        pass

    cfg = decode_config(RewardTrainConfig, config["cfg"])
    context = ray.train.get_context()
    world_size = context.get_world_size()

    def report(metrics: dict, checkpoint_dir: Path | None) -> None:
        # A barrier: every rank reports at every evaluation; only rank 0 ever has a checkpoint.
        checkpoint = Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)

    hooks = TrainHooks(
        rank=context.get_world_rank(),
        world_size=world_size,
        device=ray.train.torch.get_device(),
        wrap_model=(lambda m: ray.train.torch.prepare_model(m)) if world_size > 1 else (lambda m: m),
        report=report,
    )
    run(cfg, run_name=config["run_name"], hooks=hooks)


def start_ray(cfg: RewardTrainConfig, quiet: bool = False) -> bool:
    """Attach to the job's cluster (RAY_ADDRESS) or start a private local Ray. True if we started one."""
    from cluster.ray_session import start_ray as start

    needed = cfg.scaling.num_workers * cfg.scaling.cpus_per_worker
    return start(
        num_cpus=max(2, math.ceil(needed)),
        num_gpus=cfg.scaling.num_workers if cfg.scaling.use_gpu else 0,
        quiet=quiet,
        object_store_mb=100,  # only small metrics travel through it
    )


def fit_with_ray(cfg: RewardTrainConfig, run_name: str, quiet: bool = False) -> Path:
    """Run the TorchTrainer; return the local path of the best reported checkpoint."""
    import ray
    from ray.train import CheckpointConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from configs.parsing import config_to_dict

    started = start_ray(cfg, quiet=quiet)
    try:
        resources = {"CPU": cfg.scaling.cpus_per_worker}
        if cfg.scaling.use_gpu:
            resources["GPU"] = 1
        trainer = TorchTrainer(
            _train_loop_per_worker,
            train_loop_config={"cfg": config_to_dict(cfg), "run_name": run_name},
            scaling_config=ScalingConfig(
                num_workers=cfg.scaling.num_workers,
                use_gpu=cfg.scaling.use_gpu,
                resources_per_worker=resources,
            ),
            run_config=RunConfig(
                name=run_name,
                storage_path=cfg.storage_path,
                # Only improved evaluations carry a checkpoint, so the latest is the best.
                checkpoint_config=CheckpointConfig(num_to_keep=2),
                # Ray Train's console lines ("Reporting training result ...", "Checkpoint successfully
                # created ...", worker-group start-up, and under CPU load "Failed to send resource request"
                # and "Failed to query Ray Train Controller actor state" warnings) would bury the progress
                # bar; they stay in Ray's session log files, and errors still show.
                logging_config=LoggingConfig(log_level="ERROR"),
            ),
        )
        # fit() installs Ray Train's own SIGINT handler (abort the controller) and leaves it behind:
        # a later Ctrl-C in the same process (the demo's RL run) would call it on a dead controller.
        previous_sigint = signal.getsignal(signal.SIGINT)
        try:
            result = trainer.fit()
        finally:
            signal.signal(signal.SIGINT, previous_sigint)
        if result.checkpoint is None:
            raise RuntimeError(f"Ray Train run {run_name} finished without a checkpoint")
        logger.info("Ray Train run %s stored at %s", run_name, result.path)
        return Path(result.checkpoint.path)
    finally:
        if started:
            ray.shutdown()


def _remove_partial_run(cfg: RewardTrainConfig, run_name: str, created_output: bool) -> list[str]:
    """After Ctrl-C: delete what this launch wrote (its run folders); return what was removed."""
    output_dir = Path(cfg.output_dir)
    removed = []
    for path in (output_dir / "runs" / run_name, Path(cfg.storage_path or output_dir / "ray") / run_name):
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)
            removed.append(str(path))
    for parent in (output_dir / "runs", Path(cfg.storage_path or output_dir / "ray")):
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    if created_output and output_dir.is_dir() and not any(output_dir.iterdir()):
        output_dir.rmdir()
    return removed


def train_and_export(cfg: RewardTrainConfig, quiet: bool = False) -> Path:
    """The whole command: checks, training (Ray Train or in-process), export. Returns pretrained_model."""
    from reward.train import make_run_name, run

    cfg = absolute_paths(cfg)
    check_inputs(cfg)
    run_name = make_run_name(cfg.job_name)
    created_output = not Path(cfg.output_dir).exists()
    logger.info("run %s: dataset %s -> %s", run_name, cfg.dataset.root, cfg.output_dir)
    try:
        if cfg.use_ray:
            best = fit_with_ray(cfg, run_name, quiet=quiet)
        else:
            best = run(cfg, run_name=run_name).best_checkpoint
            if best is None:
                raise RuntimeError("training finished without an evaluation; check eval_freq and steps")
        return export_checkpoint(best, Path(cfg.output_dir))
    except KeyboardInterrupt:
        removed = _remove_partial_run(cfg, run_name, created_output)
        what = f"removed the partial run ({', '.join(removed)})" if removed else "nothing was written"
        raise KeyboardInterrupt(f"train-reward stopped: {what}; no pretrained_model was exported") from None


def main(argv: list[str]) -> int:
    from configs.parsing import parse_config

    cfg = parse_config(RewardTrainConfig, argv, prog="hilserl train-reward")
    path = train_and_export(cfg)
    print(f"pretrained_model: {path}")
    return 0
